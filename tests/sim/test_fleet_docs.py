"""The fleet tables of docs/simulator.md and docs/many-clients.md are generated and current."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "regen_fleet_docs.py"
STALE = "the fleet tables are stale: run PYTHONPATH=src python scripts/regen_fleet_docs.py"


@pytest.fixture(scope="module")
def script() -> dict[str, Any]:
    return runpy.run_path(str(SCRIPT))


def test_sre_figures_in_both_pages_are_current(script: dict[str, Any]) -> None:
    fresh = script["sre_block"]()
    for page in (script["SIMULATOR"], script["MANY"]):
        assert script["block"](page.read_text(), "fleet-sre") == fresh, STALE
    assert "| 63 % (57) / 121 % (109) |" in fresh  # the book's own figures, beside ours


def test_fleet_run_and_its_summary_are_current(script: dict[str, Any]) -> None:
    results = script["fleet_results"]()
    simulator = script["SIMULATOR"].read_text()
    assert script["block"](simulator, "fleet-run") == script["fleet_run_block"](results), STALE
    many = script["MANY"].read_text()
    assert script["block"](many, "fleet-aperture") == script["aperture_block"](results), STALE
    assert script["COMMAND"] in simulator


def test_replace_block_needs_exactly_one_block(script: dict[str, Any]) -> None:
    replace = script["replace_block"]
    one = "a\n<!-- generated: x -->\nold\n<!-- end: x -->\nb"
    assert replace(one, "x", "new") == "a\n<!-- generated: x -->\nnew\n<!-- end: x -->\nb"
    with pytest.raises(ValueError, match="exactly one"):
        replace(one + "\n" + one, "x", "new")
