"""The non-hashing strategies of issue 3: random, power of two choices, peak EWMA, A58 WRR.

Every random strategy is seeded, so each case is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import balancekit as bk

from .registry import Case


def _reported(
    endpoints: Sequence[bk.Endpoint], clock: Callable[[], float]
) -> bk.LoadReportWeightedRoundRobin:
    """A58 WRR whose servers each report a load giving exactly their configured weight."""
    lb = bk.LoadReportWeightedRoundRobin(endpoints, blackout_period=0, clock=clock)
    for endpoint in endpoints:
        lb.report(endpoint.address, bk.LoadReport(cpu_utilization=1.0, qps=endpoint.weight))
    return lb


CASES = [
    # "ignored" draws only 20 x sum(weights) picks (as few as 40), sized for exact rotations;
    # for a uniform random draw that needs a wide tolerance (the seed's worst case over the
    # suite's weight lists is 0.15). The tight uniformity check is tests/strategies/test_random.py.
    Case(
        "Random",
        lambda eps, clock: bk.Random(eps, seed=1, clock=clock),
        weights="ignored",
        tolerance=0.2,
    ),
    Case(
        "WeightedRandom",
        lambda eps, clock: bk.WeightedRandom(eps, seed=2, clock=clock),
        weights="statistical",
        tolerance=0.05,
    ),
    Case(
        "PowerOfTwoChoices",
        lambda eps, clock: bk.PowerOfTwoChoices(eps, seed=3, clock=clock),
        weights="concurrent",
        tolerance=0.05,
    ),
    Case(
        "PowerOfTwoChoices-sequential",
        lambda eps, clock: bk.PowerOfTwoChoices(eps, seed=4, clock=clock),
        weights="statistical",
        tolerance=0.05,
    ),
    Case(
        "PeakEWMA",
        lambda eps, clock: bk.PeakEWMA(eps, seed=5, clock=clock),
        weights="concurrent",
        tolerance=0.05,
    ),
    Case(
        "PeakEWMA-scan",
        lambda eps, clock: bk.PeakEWMA(eps, choices="all", seed=6, clock=clock),
        weights="concurrent",
        tolerance=0.05,
    ),
    # Without reports A58 is plain round robin: configured weights are not A58's input.
    Case(
        "LoadReportWeightedRoundRobin",
        lambda eps, clock: bk.LoadReportWeightedRoundRobin(eps, clock=clock),
        weights="ignored",
    ),
    Case("LoadReportWeightedRoundRobin-reported", _reported, weights="statistical", tolerance=0.03),
    Case(
        "WeightedRoundRobin-envoy",
        lambda eps, clock: bk.WeightedRoundRobin(eps, order="envoy", clock=clock),
    ),
]
