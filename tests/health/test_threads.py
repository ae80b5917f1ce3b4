"""Health tracking under threads: counts stay exact and the structures agree afterwards."""

from __future__ import annotations

import itertools
import random
import threading

import pytest

import balancekit as bk
from balancekit.health import health_of

POOL = [f"10.0.0.{i}:80" for i in range(1, 9)]


@pytest.mark.parametrize(
    "make", [bk.RoundRobin, bk.WeightedRoundRobin, bk.LeastConnections, bk.PowerOfTwoChoices]
)
def test_concurrent_select_release_with_failures(make: type[bk.BalancerBase]) -> None:
    ticks = itertools.count()

    def clock() -> float:
        return next(ticks) / 1000.0  # one C call: safe from many threads, always advancing

    lb = bk.with_health(
        make([bk.Endpoint(a, weight=1 + i % 3) for i, a in enumerate(POOL)], clock=clock),
        bk.PassiveHealth(consecutive_failures=3, base_ejection=0.5, max_ejection_share=0.25),
        slow_start=bk.SlowStart(window=0.5, steps=5),
    )
    bad = {POOL[0], POOL[1]}
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for i in range(3000):
                lease = lb.select()
                ok = lease.address not in bad or rng.random() < 0.3
                lb.release(lease, ok=ok)
                if i % 500 == 0 and seed == 0:
                    address = POOL[rng.randrange(2, len(POOL))]
                    lb.remove(address)
                    lb.add(address)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    stats = lb.stats()
    assert all(s.in_flight == 0 for s in stats.values())
    assert sum(s.selected for s in stats.values()) <= 4 * 3000
    tracker = health_of(lb)
    assert tracker is not None
    assert len(tracker.ejected()) <= bk.PassiveHealth(max_ejection_share=0.25).ejection_limit(8)
    lb._check_invariants()
    tracker._check_invariants()
