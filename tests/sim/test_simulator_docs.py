"""docs/simulator.md's strategy list and default run are generated and must be current."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest

from balancekit import sim

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "regen_simulator_docs.py"
STALE = "docs/simulator.md is stale: run python scripts/regen_simulator_docs.py"


@pytest.fixture(scope="module")
def script() -> dict[str, Any]:
    return runpy.run_path(str(SCRIPT))


def test_docs_strategy_list_matches_the_registry(script: dict[str, Any]) -> None:
    listed = script["block"](script["DOC"].read_text(), "strategies")
    assert listed == script["strategies_block"](), STALE
    names = re.findall(r"`(\w+)`", listed)
    assert names == sim.available()
    for name in sim.STRATEGY_NAMES:  # every name the simulator can build is in the docs
        assert f"`{name}`" in listed or name not in sim.available()


def test_docs_default_run_is_the_output_of_the_default_command(script: dict[str, Any]) -> None:
    document = script["DOC"].read_text()
    scenario, results = script["default_results"]()
    assert script["block"](document, "default-run") == script["default_run_block"](
        scenario, results
    ), STALE
    assert "== recommendation: " in document


def test_docs_show_the_committed_plot(script: dict[str, Any]) -> None:
    document = script["DOC"].read_text()
    assert "](img/simulate-default.png)" in document
    assert script["IMAGE"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replace_block_needs_exactly_one_block(script: dict[str, Any]) -> None:
    replace = script["replace_block"]
    one = "a\n<!-- generated: x -->\nold\n<!-- end: x -->\nb"
    assert replace(one, "x", "new") == "a\n<!-- generated: x -->\nnew\n<!-- end: x -->\nb"
    with pytest.raises(ValueError, match="exactly one"):
        replace(one + "\n" + one, "x", "new")
    with pytest.raises(ValueError, match="exactly one"):
        replace("nothing here", "x", "new")
