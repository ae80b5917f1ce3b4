"""A ``clock=`` that raises during ``select`` or ``select_override`` changes nothing.

Regression: every strategy's select (BalancerBase's and the inlined fast paths of RoundRobin,
WeightedRoundRobin, Random, WeightedRandom, LeastConnections and PowerOfTwoChoices) read the
clock for the lease's start *after* the pick was counted (``selected``, ``_outstanding``, the
strategy's load), so a clock that raised there left an in-flight request no lease could ever
release: the endpoint looked busy for good to the load-aware strategies. The clock is now read
before the pick, as PeakEWMA's and LeastResponseTime's fast paths already did.
"""

from __future__ import annotations

import pytest

import balancekit as bk

from ..conformance.registry import Case, all_cases


class _Clock:
    def __init__(self) -> None:
        self.now, self.fail = 0.0, False

    def __call__(self) -> float:
        if self.fail:
            raise RuntimeError("clock failed")
        return self.now


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.name)
@pytest.mark.parametrize("call", ["select", "select_override"])
def test_a_raising_clock_in_select_leaves_nothing_in_flight(case: Case, call: str) -> None:
    clock = _Clock()
    endpoints = [bk.Endpoint(f"10.7.0.{i}:80", weight=1 + i % 2) for i in range(4)]
    lb = case.factory(endpoints, clock)
    assert isinstance(lb, bk.BalancerBase)
    context = "some-key" if case.keyed else None
    lb.release(lb.select(context))
    before = lb.stats()
    clock.fail = True
    with pytest.raises(RuntimeError):
        if call == "select":
            lb.select(context)
        else:
            lb.select_override(endpoints[1].address)
    clock.fail = False
    assert lb.stats() == before  # nothing selected, nothing in flight
    lb._check_invariants()
    lease = lb.select(context)
    lb.release(lease)
    assert all(stats.in_flight == 0 for stats in lb.stats().values())
