"""Picks whose scheduled endpoint is avoided, in RoundRobin (issue 10: the breaker's pass).

The docstring says such picks are spread over the endpoints left. In RoundRobin the schedule is
the ring the fallback walks, so the walk from the pick's own position always began at the
avoided endpoint and took its successor: every such pick went to one endpoint. A caller that
keeps avoiding one endpoint (one it distrusts without marking it down) doubled its successor's
share: avoid={a} over five endpoints gave the next one 40 % and the others 20 % each.
"""

from __future__ import annotations

from collections import Counter

import pytest

import balancekit as bk

ADDRESSES = [f"10.0.0.{i}:80" for i in range(1, 6)]


@pytest.mark.parametrize("cls", [bk.RoundRobin, bk.WeightedRoundRobin])
@pytest.mark.parametrize("avoided", [[0], [2], [1, 2], [4, 0]], ids=str)
def test_always_avoiding_some_endpoints_spreads_picks_over_the_rest(
    cls: type[bk.RoundRobin], avoided: list[int]
) -> None:
    lb = cls(ADDRESSES)
    avoid = {ADDRESSES[i] for i in avoided}
    n = len(ADDRESSES)
    left = n - len(avoid)
    picks = Counter(lb.select(avoid=avoid).address for _ in range(20 * n * left))
    assert set(picks) == set(ADDRESSES) - avoid
    assert len(set(picks.values())) == 1, picks  # exactly equal shares


def test_avoided_picks_share_exactly_within_one_rotation() -> None:
    lb = bk.RoundRobin(ADDRESSES)
    n = len(ADDRESSES)
    picks = Counter(lb.select(avoid={ADDRESSES[0]}).address for _ in range(n * (n - 1)))
    assert sorted(picks.values()) == [5, 5, 5, 5]


@pytest.mark.parametrize("avoided", [[0], [2], [1, 2], [4, 0]], ids=str)
def test_load_report_round_robin_spreads_avoided_picks_alike(avoided: list[int]) -> None:
    """Before two endpoints have weights LoadReportWeightedRoundRobin is plain round robin,
    whose avoided picks took the successor in the same way."""
    lb = bk.LoadReportWeightedRoundRobin(ADDRESSES)
    avoid = {ADDRESSES[i] for i in avoided}
    n = len(ADDRESSES)
    left = n - len(avoid)
    picks = Counter(lb.select(avoid=avoid).address for _ in range(20 * n * left))
    assert set(picks) == set(ADDRESSES) - avoid
    assert len(set(picks.values())) == 1, picks


def test_load_report_weighted_avoided_heavy_endpoint_spreads_over_the_rest() -> None:
    """With weights, a pick whose AVOID_CANDIDATES candidates were all avoided took the next
    endpoint after the last candidate: always avoiding the heavy endpoint sent 95 % of the
    picks to the one after it and 1.3 % to each of the other four."""
    from balancekit.strategies._orca import LoadReport

    now = [0.0]
    lb = bk.LoadReportWeightedRoundRobin(ADDRESSES, blackout_period=0, clock=lambda: now[0])
    lb.report(ADDRESSES[0], LoadReport(cpu_utilization=0.01, qps=1000))  # ~600x the others
    for address in ADDRESSES[1:]:
        lb.report(address, LoadReport(cpu_utilization=1, qps=100))
    now[0] += 2  # the next weight update
    picks = Counter(lb.select(avoid={ADDRESSES[0]}).address for _ in range(5000))
    assert set(picks) == set(ADDRESSES[1:])
    assert max(picks.values()) < 1.1 * min(picks.values()), picks
