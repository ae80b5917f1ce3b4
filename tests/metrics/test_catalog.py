"""The catalog follows its naming rules, and docs/observability.md lists it as it is."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from balancekit.metrics import CATALOG

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
PROMETHEUS_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def test_names_follow_the_otel_and_prometheus_conventions() -> None:
    names = [metric.name for metric in CATALOG]
    assert len(set(names)) == len(names)
    assert len({metric.prometheus for metric in CATALOG}) == len(names)
    for metric in CATALOG:
        assert metric.name.startswith("balancekit.")
        assert PROMETHEUS_NAME.fullmatch(metric.prometheus)
        assert not metric.prometheus.endswith("_total")  # the client library adds it
        assert metric.prometheus.endswith("_seconds") == (metric.unit == "s")
        assert metric.unit == "s" or metric.unit.startswith("{")
        assert metric.per_endpoint == ("endpoint" in metric.labels)
        assert "target" not in metric.labels  # always first, added by every reader


def test_the_observability_page_lists_every_metric_as_the_catalog_has_it() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `balancekit.")]
    documented = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) != 7:  # the adapters' table
            continue
        documented[cells[0].strip("`")] = (cells[1].strip("`"), cells[2], cells[3].strip("`"),
                                           cells[4])  # fmt: skip
    expected = {
        metric.name: (
            metric.prometheus + ("_total" if metric.kind == "counter" else ""),
            metric.kind,
            metric.unit,
            ", ".join(("target", *metric.labels)),
        )
        for metric in CATALOG
    }
    assert documented == expected


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("balancekit.metrics.otel", "opentelemetry", "otel"),
        ("balancekit.metrics.prometheus", "prometheus_client", "prometheus"),
    ],
)
def test_a_missing_extra_names_the_pip_install(module: str, missing: str, extra: str) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None  # as if not installed\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as error:\n"
        "    import balancekit\n"
        "    print(error.name, '|', isinstance(error, balancekit.MissingExtra), '|', error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == (  # the MissingExtra all the extras raise (test_user_errors)
        f"{missing} | True | {module} needs the optional"
        f" {'opentelemetry-api' if extra == 'otel' else 'prometheus_client'!r} package:"
        f" pip install 'balancekit[{extra}]'"
    )
