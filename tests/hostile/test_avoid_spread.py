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
    picks = Counter(lb.select(avoid=avoid).address for _ in range(40 * n * n))
    assert set(picks) == set(ADDRESSES) - avoid
    # The one after a run of m avoided endpoints also gets the run's turns once in n: with
    # m = 2 of 5, 11 picks to 7 (before: every such pick went to it, 3 to 1).
    assert max(picks.values()) < 1.6 * min(picks.values()), picks


def test_one_avoided_endpoint_costs_at_most_one_extra_turn_in_n() -> None:
    lb = bk.RoundRobin(ADDRESSES)
    n = len(ADDRESSES)
    picks = Counter(lb.select(avoid={ADDRESSES[0]}).address for _ in range(n * n))
    assert sorted(picks.values()) == [6, 6, 6, 7]


@pytest.mark.parametrize("avoided", [[0], [2], [1, 2], [4, 0]], ids=str)
def test_load_report_round_robin_spreads_avoided_picks_alike(avoided: list[int]) -> None:
    """Before two endpoints have weights LoadReportWeightedRoundRobin is plain round robin,
    whose avoided picks took the successor in the same way."""
    lb = bk.LoadReportWeightedRoundRobin(ADDRESSES)
    avoid = {ADDRESSES[i] for i in avoided}
    n = len(ADDRESSES)
    picks = Counter(lb.select(avoid=avoid).address for _ in range(40 * n * n))
    assert set(picks) == set(ADDRESSES) - avoid
    assert max(picks.values()) < 1.6 * min(picks.values()), picks
