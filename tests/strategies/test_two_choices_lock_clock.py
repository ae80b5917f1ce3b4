"""PowerOfTwoChoices' and PeakEWMA's fast paths call the balancer's own lock and clock (p2c7).

Issue 15: the fast paths read the clock through a local (``self._clock()`` cannot be
specialised by CPython 3.11). They took the lock through ``type(threading.RLock()).acquire``
kept as a module constant for a while (p2c7: compiled, ``lock.acquire()`` is looked up by name
on every call); review7 found that refuses any other lock (a wrapper, or the RLock gevent's
``patch_all()`` makes after balancekit was imported), so they call ``lock.acquire()`` again
(tests/test_review7_findings.py). What must hold, in both builds:

- the lock is the balancer's ``_lock``: a thread holding it keeps every select and release of
  another thread waiting, fast and general paths alike;
- the clock is read at each call from the balancer, so a clock replaced after construction is
  the one a lease starts from and PeakEWMA learns from (no reading kept from ``__init__``);
- a lock left held by a select or release that raised is not: an exception inside (a clock
  that raises) lets the lock go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import balancekit as bk
from balancekit.strategies.ewma import DEFAULT_LATENCY

STRATEGIES: dict[str, Callable[..., Any]] = {
    "PowerOfTwoChoices": bk.PowerOfTwoChoices,
    "PeakEWMA": bk.PeakEWMA,
}
NOBODY = frozenset({"nobody:0"})  # a non-empty avoid that avoids nothing: the general path


def _endpoints(n: int) -> list[bk.Endpoint]:
    return [bk.Endpoint(f"10.8.{i >> 8}.{i & 255}:80", weight=1 + i % 4) for i in range(n)]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("general", [False, True])
def test_select_and_release_wait_for_the_balancers_lock(name: str, general: bool) -> None:
    lb = STRATEGIES[name](_endpoints(10), seed=1)
    avoid = NOBODY if general else frozenset()
    held = lb.select(avoid=avoid)
    done: list[str] = []

    def other() -> None:
        lease = lb.select(avoid=avoid)
        done.append("select")
        lb.release(lease, elapsed=0.002)
        done.append("release")

    lb._lock.acquire()
    try:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=0.2)
        assert thread.is_alive() and done == []  # waiting for the lock this thread holds
    finally:
        lb._lock.release()
    thread.join(timeout=10)
    assert done == ["select", "release"]
    lb.release(held, elapsed=0.001)
    lb._check_invariants()
    assert sum(s.in_flight for s in lb.stats().values()) == 0


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("n", [1, 2, 10, 300])
def test_a_clock_replaced_after_construction_is_read(name: str, n: int) -> None:
    now = [100.0]
    lb = STRATEGIES[name](_endpoints(n), seed=2, clock=lambda: 0.0)
    lb._clock = lambda: now[0]  # replaced: every select and release must read this one
    for _ in range(3 * n + 40):
        now[0] += 0.25
        lease = lb.select()
        assert lease.started == now[0]
        now[0] += 0.5
        lb.release(lease)  # elapsed from the clock: 0.5
        if name == "PeakEWMA":
            state = lb._members[lease.address]
            assert state.latency_at == now[0]
            assert lb.estimate(lease.address, now[0]) <= max(0.5, DEFAULT_LATENCY)
    lb._check_invariants()


class _Boom(Exception):
    pass


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_raising_clock_lets_the_lock_go(name: str) -> None:
    lb = STRATEGIES[name](_endpoints(10), seed=3)
    lease = lb.select()
    real = lb._clock

    def boom() -> float:
        raise _Boom

    lb._clock = boom
    with pytest.raises(_Boom):
        lb.select()
    if name == "PeakEWMA":  # PowerOfTwoChoices' release reads no clock with elapsed given
        with pytest.raises(_Boom):
            lb.release(lease)
    else:
        lb.release(lease, elapsed=0.001)
    assert lb._lock.acquire(blocking=False)  # not left held by this thread ...
    lb._lock.release()
    result: list[bool] = []

    def take() -> None:
        result.append(lb._lock.acquire(timeout=5))
        lb._lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(timeout=10)
    assert result == [True]  # ... nor held at all: another thread takes it
    lb._clock = real
    lb._check_invariants()  # in-flight counts exact
    lb.release(lb.select(), elapsed=0.001)  # and the balancer works on
    lb._check_invariants()
