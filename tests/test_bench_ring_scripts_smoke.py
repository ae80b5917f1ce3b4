"""The ejection-storm and ring-weight benchmarks run end to end (no timing asserted): every
strategy asked for gets a row, and the weight benchmark's point counts are the formats'."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def rows(out: str) -> list[list[str]]:
    lines = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[1:]]


def test_storm_reports_every_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_ejection_storm")
    strategies = ["IPHash", "Maglev", "BoundedLoadHash"]
    argv = ["-n", "60", "--bad", "6", "--budget", "20", "--strategy", *strategies]
    assert bench.main(argv) == 0
    table = rows(capsys.readouterr().out)
    assert [row[1] for row in table] == strategies
    for row in table:
        assert "error" not in " ".join(row), row
        assert row[4] == "6/6" and row[5] == "0", row  # all ejected; no membership change


def test_storm_churn_changes_the_membership(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_ejection_storm")
    argv = ["-n", "60", "--bad", "6", "--budget", "20", "--cpu-budget", "--strategy", "Maglev"]
    assert bench.main([*argv, "--churn-every", "5"]) == 0
    (row,) = rows(capsys.readouterr().out)
    assert row[4] == "6/6" and int(row[5].replace(",", "")) > 0, row


def test_weight_bench_counts_moved_points(capsys: pytest.CaptureFixture[str]) -> None:
    n = 120
    bench = load("bench_ring_weight")
    assert bench.main(["-n", str(n), "--ketama-peer-n", "40"]) == 0
    table = rows(capsys.readouterr().out)
    by = {(row[0], row[2]): row for row in table}
    for compat in ("libketama", "uhashring"):  # ks = f(w / W): every server's count moves
        row = by[(f"Ketama:{compat}", "set_weight 1 -> 2")]
        assert int(row[7]) == n, row
    for name in ("IPHash", "BoundedLoadHash"):  # only the endpoint's own tail of points
        row = by[(name, "set_weight 1 -> 2")]
        assert (row[5], row[6], row[7]) == ("0", "160", "1"), row
        back = by[(name, "set_weight 2 -> 1")]
        assert (back[5], back[6], back[7]) == ("160", "0", "1"), back
    assert by[("uhashring", "remove_node + add_node(w=2)")][7] == "1"
    (peer,) = [row for row in table if row[0] == "uhashring ketama mode"]
    assert int(peer[7]) == 40  # its own ketama mode moves every server too (continua checked)


def test_weight_bench_refuses_an_unknown_subject() -> None:
    with pytest.raises(SystemExit):
        load("bench_ring_weight").main(["--only", "NoSuchRing", "-n", "10"])
