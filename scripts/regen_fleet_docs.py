"""Regenerate the fleet tables of docs/simulator.md and docs/many-clients.md.

Blocks between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``:

* ``fleet-sre`` (both pages): the SRE book's subsetting figures (Site Reliability Engineering,
  ch. 20, figures 20-3 and 20-5) beside balancekit's, each averaged over :data:`SEEDS`;
* ``fleet-run`` (docs/simulator.md): what :data:`COMMAND` prints (tests/sim/test_fleet.py
  checks that the command prints what ``fleet_report.text`` renders);
* ``fleet-aperture`` (docs/many-clients.md): that run's connections and request spread as a
  Markdown table.

Run ``PYTHONPATH=src python scripts/regen_fleet_docs.py`` after changing a subsetter or the fleet
simulator (about 10 s of CPU); ``--check`` only says (exit 1) whether the pages are stale.
tests/sim/test_fleet_docs.py fails when they drift.
"""

from __future__ import annotations

import shlex
import statistics
import sys
from pathlib import Path

from balancekit.__main__ import build_parser
from balancekit.sim.fleet import Fleet, FleetResult, Spread, connection_counts, simulate
from balancekit.sim.fleet_report import fleets, text

# runpy.run_path (the docs tests) does not put this folder on sys.path: the shared helper's
# folder goes there first, so the script runs the same from the shell and from the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _generated_blocks import block, replace_block  # noqa: F401 (the docs tests read block)

ROOT = Path(__file__).resolve().parents[1]
SIMULATOR = ROOT / "docs" / "simulator.md"
MANY = ROOT / "docs" / "many-clients.md"
#: The fleet seeds the SRE figures are averaged over.
SEEDS = tuple(range(1, 11))
#: The run shown in docs/simulator.md and summarised in docs/many-clients.md.
COMMAND = (
    "python -m balancekit simulate --scenario fleet --subset-size 12 --requests 150000"
    " --open-loop 0.7"
)


def spreads(fleet: Fleet) -> list[Spread]:
    """The connection spread of ``fleet``'s layout for each seed of :data:`SEEDS`."""
    return [Spread.of(connection_counts(fleet, seed)) for seed in SEEDS]


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _row(figure: str, setup: str, book: str, found: list[Spread]) -> str:
    mean = found[0].mean
    low = statistics.fmean(s.min for s in found)
    high = statistics.fmean(s.max for s in found)
    lows = f"{_pct(min(s.min for s in found))}-{_pct(max(s.min for s in found))}"
    highs = f"{_pct(min(s.max for s in found))}-{_pct(max(s.max for s in found))}"
    ours = f"{_pct(low)} ({low * mean:.1f}) / {_pct(high)} ({high * mean:.1f})"
    ranges = "exact, every seed" if lows == highs == "100 %-100 %" else f"{lows} / {highs}"
    return f"| {figure} | {setup} | {book} | {ours} | {ranges} |"


def sre_block() -> str:
    """The SRE figures beside balancekit's, as a Markdown table."""
    seeds = f"{SEEDS[0]}-{SEEDS[-1]}"
    lines = [
        "| book figure | fleet (300 clients x 300 backends) | book: least / most loaded"
        f" backend, % of mean (connections) | balancekit, mean over seeds {seeds}"
        " | range over the seeds |",
        "| --- | --- | --- | --- | --- |",
        _row(
            "20-3, random subsetting",
            "`RandomSubset(90)`, a random seed per client",
            "63 % (57) / 121 % (109)",
            spreads(Fleet(subset="random", k=90)),
        ),
        _row(
            "20-5, deterministic subsetting",
            "`DeterministicSubset(10)`, client ids 0-299",
            "100 % / 100 % (every backend the same)",
            spreads(Fleet(subset="deterministic", k=10)),
        ),
        _row(
            "(not in the book)",
            "`DeterministicSubset(90)`: 300 is not a multiple of 90",
            "-",
            spreads(Fleet(subset="deterministic", k=90)),
        ),
        _row(
            "(not in the book)",
            "`DeterministicAperture`, minimum aperture 12",
            "-",
            spreads(Fleet(subset="aperture")),
        ),
    ]
    return "\n".join(lines)


def fleet_results() -> list[FleetResult]:
    """The results of :data:`COMMAND`: its arguments parsed by the real command line, the
    fleets built and run as ``simulate --scenario fleet`` builds and runs them."""
    args = build_parser().parse_args(shlex.split(COMMAND)[3:])
    return [simulate(fleet, args.seed) for fleet in fleets(args, args.requests)]


def fleet_run_block(results: list[FleetResult]) -> str:
    """What :data:`COMMAND` prints (the same ``text`` function), as a code block."""
    return f"```text\n$ {COMMAND}\n{text(results)}```"


def aperture_block(results: list[FleetResult]) -> str:
    """The run of :data:`COMMAND` summarised as a Markdown table."""
    lines = [
        "| subsetting (P2C in each client) | connections per client | connections per server,"
        " min / max of mean | requests per server, min / p99 / max of mean | latency p50 / p99 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result in results:
        c, r = result.connections, result.requests
        lines.append(
            f"| {result.fleet.label} | {result.per_client:.0f}"
            f" (used: {result.used_per_client:.0f}) | {_pct(c.min)} / {_pct(c.max)}"
            f" | {_pct(r.min)} / {_pct(r.p99)} / {_pct(r.max)}"
            f" | {result.p50 * 1000:.1f} / {result.p99 * 1000:.1f} ms |"
        )
    return "\n".join(lines)


def render() -> dict[Path, str]:
    """Both pages with fresh blocks."""
    sre, results = sre_block(), fleet_results()
    simulator = replace_block(SIMULATOR.read_text(), "fleet-sre", sre)
    simulator = replace_block(simulator, "fleet-run", fleet_run_block(results))
    many = replace_block(MANY.read_text(), "fleet-sre", sre)
    many = replace_block(many, "fleet-aperture", aperture_block(results))
    return {SIMULATOR: simulator, MANY: many}


def main(argv: list[str]) -> int:
    fresh = render()
    if "--check" in argv:
        return 0 if all(path.read_text() == page for path, page in fresh.items()) else 1
    for path, page in fresh.items():
        path.write_text(page)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
