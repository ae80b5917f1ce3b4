"""select + release cost of the random and load-aware strategies at N = 10 .. 10,000 endpoints.

Run from the repository root::

    python benchmarks/bench_load_strategies.py          # full run, about a minute
    python benchmarks/bench_load_strategies.py --quick  # fewer, shorter repeats: a few seconds

Method (benchmarks/_harness.py): each case is a loop of ``lb.release(lb.select())`` with the
bound methods in locals, over N endpoints of weights 1..5 (seeded), default clock
(``time.monotonic``). Cases run interleaved; each figure is the median of the rounds, in ns per
select+release, and as a ratio to a bound no-op method call measured in the same rounds.
LoadReportWeightedRoundRobin gets one report per endpoint first (blackout 0), so it runs its
stride scheduler, not the round-robin fallback. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Case, interleaved, machine, markdown_table, method_call_floor
from bench_select import select_release

import balancekit as bk

SIZES = (10, 100, 1_000, 10_000)


def pool(n: int) -> list[bk.Endpoint]:
    rng = random.Random(n)
    return [
        bk.Endpoint(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:80", weight=rng.randint(1, 5))
        for i in range(n)
    ]


def reported(endpoints: list[bk.Endpoint]) -> bk.LoadReportWeightedRoundRobin:
    lb = bk.LoadReportWeightedRoundRobin(endpoints, blackout_period=0)
    for endpoint in endpoints:
        lb.report(endpoint.address, bk.LoadReport(cpu_utilization=0.5, qps=10 * endpoint.weight))
    lb._refresh()  # take the reports now instead of at the next 1 s weight update
    return lb


STRATEGIES: dict[str, Callable[[list[bk.Endpoint]], bk.Balancer]] = {
    "RoundRobin (reference)": lambda eps: bk.RoundRobin(eps),
    "LeastConnections (reference)": lambda eps: bk.LeastConnections(eps),
    "Random": lambda eps: bk.Random(eps, seed=1),
    "WeightedRandom": lambda eps: bk.WeightedRandom(eps, seed=1),
    "PowerOfTwoChoices": lambda eps: bk.PowerOfTwoChoices(eps, seed=1),
    "PeakEWMA": lambda eps: bk.PeakEWMA(eps, seed=1),
    'PeakEWMA choices="all"': lambda eps: bk.PeakEWMA(eps, choices="all", seed=1),
    "LoadReportWeightedRoundRobin": reported,
    'WeightedRoundRobin order="nginx"': lambda eps: bk.WeightedRoundRobin(eps),
    'WeightedRoundRobin order="envoy"': lambda eps: bk.WeightedRoundRobin(eps, order="envoy"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 short rounds instead of 9")
    args = parser.parse_args()
    repeats, min_time = (3, 0.02) if args.quick else (9, 0.1)
    skip_scan = 10_000 if args.quick else None  # the O(n) scan at 10,000 is slow to calibrate

    cases: dict[str, Case] = {"floor": method_call_floor()}
    for name, build in STRATEGIES.items():
        for n in SIZES:
            if name.startswith("PeakEWMA choices") and n == skip_scan:
                continue
            cases[f"{name}|{n}"] = select_release(build(pool(n)), None)
    results = interleaved(
        cases,
        repeats=repeats,
        min_time=min_time,
        progress=lambda text: print(text, file=sys.stderr),
    )
    floor = results["floor"].median
    rows = []
    for name in STRATEGIES:
        row: list[object] = [name]
        for n in SIZES:
            m = results.get(f"{name}|{n}")
            row.append("—" if m is None else f"{m.median:,.0f} ({m.median / floor:.0f}x)")
        rows.append(row)
    info = machine()
    print(f"Python {info['python']} on {info['cpu']} ({info['cpus']} CPUs), {info['date_utc']} UTC")
    print(f"no-op method call: {floor:.1f} ns; {repeats} interleaved rounds; ns (x no-op call)\n")
    print(markdown_table(["strategy", *(f"N={n:,}" for n in SIZES)], rows))


if __name__ == "__main__":
    main()
