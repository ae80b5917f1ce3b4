"""How much a smooth WRR rebuild may step (issue 10: the breaker's pass).

A rebuild precomputes the transient and cycle of NGINX's loop from the carried current weights,
each step costing O(k) for k distinct weights. The limit was on steps only (SCHEDULE_LIMIT), so
300 endpoints of distinct weights (cycle 45,150 picks) stepped ~65,000 x 300 times under the
lock on every add, remove, set_weight or ejection: ~1.5 s each, every select blocked meanwhile.
"""

from __future__ import annotations

from collections import Counter

import pytest

import balancekit as bk
from balancekit.strategies import smooth
from balancekit.strategies.round_robin import SCHEDULE_WORK


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Class-steps taken by every SmoothWeighted step (steps x distinct weights), summed."""
    total = [0]
    step = smooth.SmoothWeighted.__next__

    def counted(self: smooth.SmoothWeighted) -> int:
        total[0] += len(self._classes)
        return step(self)

    monkeypatch.setattr(smooth.SmoothWeighted, "__next__", counted)
    return total


@pytest.mark.parametrize("k", [40, 120, 300])
def test_a_rebuild_steps_within_the_work_budget(work: list[int], k: int) -> None:
    lb = bk.WeightedRoundRobin([bk.Endpoint(f"h{i}:1", weight=i + 1) for i in range(k)])
    assert work[0] <= SCHEDULE_WORK
    for change in range(3):
        work[0] = 0
        lb.set_weight("h0:1", change + 2)
        assert work[0] <= SCHEDULE_WORK
    # the picks still give the exact shares over a cycle, precomputed or stepped online
    if k > 120:
        return
    weights = {address: stats.weight for address, stats in lb.stats().items()}
    cycle = sum(weights.values())
    for _ in range(2 * cycle):  # past any transient (at most SCHEDULE_LIMIT // k picks)
        lb.select()
    assert Counter(lb.select().address for _ in range(cycle)) == weights
