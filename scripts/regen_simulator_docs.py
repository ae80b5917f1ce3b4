"""Regenerate the generated parts of docs/simulator.md, and docs/img/simulate-default.png.

docs/simulator.md has blocks between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``:

* ``strategies``: the strategies ``simulate`` compares (``balancekit.sim.available()``);
* ``default-run``: the output of ``python -m balancekit simulate`` (the default scenario, every
  strategy, seed 1), recommendation included.

The picture of the default run is written to docs/img/simulate-default.png (``--plot``).
Run ``python scripts/regen_simulator_docs.py`` after changing a strategy or the simulator
(about 10 s); ``--check`` only says (exit 1) whether the docs are stale. tests/sim/
test_simulator_docs.py fails when the strategy list or the default run drifts.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from balancekit import sim
from balancekit.sim.cli import text
from balancekit.sim.plot import plot

# runpy.run_path (the docs tests) does not put this folder on sys.path: the shared helper's
# folder goes there first, so the script runs the same from the shell and from the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _generated_blocks import block, replace_block  # noqa: F401 (the docs tests read block)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "simulator.md"
IMAGE = ROOT / "docs" / "img" / "simulate-default.png"
SEED = 1


def strategies_block() -> str:
    """The strategy list, as Markdown."""
    names = sim.available()
    line = f"{len(names)} strategies, in report order: " + ", ".join(f"`{n}`" for n in names)
    return textwrap.fill(line + ".", width=100, break_on_hyphens=False)


def default_results() -> tuple[sim.Scenario, list[sim.Result]]:
    """The default run: what ``python -m balancekit simulate`` runs."""
    scenario = sim.SCENARIOS["degrade"](sim.DEFAULT_REQUESTS)
    results = [
        sim.run(scenario, sim.factory(name, SEED), seed=SEED, name=name) for name in sim.available()
    ]
    return scenario, results


def default_run_block(scenario: sim.Scenario, results: list[sim.Result]) -> str:
    """The default run's report, as a Markdown code block."""
    return "```text\n" + text(scenario, SEED, results) + "```"


def render(document: str) -> tuple[str, sim.Scenario, list[sim.Result]]:
    scenario, results = default_results()
    document = replace_block(document, "strategies", strategies_block())
    document = replace_block(document, "default-run", default_run_block(scenario, results))
    return document, scenario, results


def main(argv: list[str]) -> int:
    current = DOC.read_text()
    fresh, scenario, results = render(current)
    if "--check" in argv:
        return 0 if fresh == current and IMAGE.exists() else 1
    DOC.write_text(fresh)
    IMAGE.parent.mkdir(exist_ok=True)
    plot(scenario, results, IMAGE, seed=SEED)
    print(f"wrote {DOC.relative_to(ROOT)} and {IMAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
