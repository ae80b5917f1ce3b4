"""Thread safety, as documented: many threads selecting and releasing leave every count at zero.

Half the threads also take the endpoint that one thread keeps marking down and up through
``select_override``, so an override races with the change that makes it ineligible.
"""

from __future__ import annotations

import sys
import threading

import pytest

import balancekit as bk

from .conformance.registry import all_cases

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_threads_leave_counts_at_zero(case: object) -> None:
    assert hasattr(case, "factory")
    endpoints = [bk.Endpoint(f"10.2.0.{i}:80", weight=1 + i % 3) for i in range(1, 9)]
    lb = case.factory(endpoints, __import__("time").monotonic)  # type: ignore[attr-defined]
    keyed = case.keyed  # type: ignore[attr-defined]
    errors: list[BaseException] = []
    rounds, threads = 1500, 6
    start = threading.Barrier(threads + 1)

    def worker(n: int) -> None:
        try:
            start.wait(timeout=10)
            held: list[bk.Lease] = []
            for i in range(rounds):
                pinned = lb.select_override("10.2.0.1:80") if n % 2 and i % 4 == 1 else None
                held.append(pinned or lb.select(f"t{n}-{i}" if keyed else None))
                if i % 3 == 2:  # churn in one thread too
                    if n == 0:
                        lb.mark_down("10.2.0.1:80")
                        lb.mark_up("10.2.0.1:80")
                        lb.set_weight("10.2.0.2:80", 1 + i % 4)
                    while held:
                        lb.release(held.pop(), ok=i % 5 != 0, elapsed=0.001)
            for lease in held:
                lb.release(lease)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        start.wait(timeout=10)
        for thread in pool:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    stats = lb.stats()
    assert all(s.in_flight == 0 for s in stats.values()), stats
    assert sum(s.selected for s in stats.values()) == rounds * threads
    assert sum(s.succeeded + s.failed for s in stats.values()) == rounds * threads
    lb._check_invariants()
