"""The inlined select/release fast paths behave exactly as the general path they shortcut.

RoundRobin, WeightedRoundRobin, LeastConnections, LeastResponseTime, PowerOfTwoChoices and
PeakEWMA override ``select`` (and the load-aware ones ``release``) with the common case inlined:
no ``avoid``, no health tracker. An ``avoid`` naming no member sends the same calls down the
general path; both balancers must then pick the same endpoints, learn the same estimates and
count the same. The load-aware fast paths keep their in-flight counts under the lock: many
threads selecting and releasing leave them exact at every pause.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
from collections.abc import Callable

import pytest

import balancekit as bk

NOBODY = frozenset({"nobody:0"})  # a non-empty avoid that avoids nothing: the general path


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


FACTORIES: dict[str, Callable[[list[bk.Endpoint], Clock], bk.BalancerBase]] = {
    "RoundRobin": lambda eps, clock: bk.RoundRobin(eps, clock=clock),
    "WeightedRoundRobin": lambda eps, clock: bk.WeightedRoundRobin(eps, clock=clock),
    "LeastConnections": lambda eps, clock: bk.LeastConnections(eps, clock=clock),
    "LeastResponseTime": lambda eps, clock: bk.LeastResponseTime(eps, clock=clock),
    "PowerOfTwoChoices": lambda eps, clock: bk.PowerOfTwoChoices(eps, clock=clock, seed=11),
    "PeakEWMA": lambda eps, clock: bk.PeakEWMA(eps, clock=clock, seed=11),
}
LOAD_AWARE = ["LeastConnections", "LeastResponseTime", "PowerOfTwoChoices", "PeakEWMA"]


def drive(name: str, seed: int, general: bool) -> list[object]:
    rng = random.Random(seed)
    clock = Clock()
    endpoints = [bk.Endpoint(f"h{i}:1", weight=rng.randint(1, 4)) for i in range(6)]
    lb = FACTORIES[name](endpoints, clock)
    avoid: frozenset[str] = NOBODY if general else frozenset()
    held: list[bk.Lease] = []
    log: list[object] = []
    for _ in range(400):
        clock.now += rng.choice([0.0, 0.001, 0.3])
        roll = rng.random()
        if roll < 0.5:
            try:
                lease = lb.select(avoid=avoid)
            except bk.NoEndpointAvailable:
                log.append("none")
                continue
            held.append(lease)
            log.append((lease.address, lease.started))
            if name == "PeakEWMA":  # the estimates the picks compared, bit for bit
                log.append([lb.estimate(a) for a in sorted(s.address for s in lb.stats().values())])
        elif roll < 0.9 and held:
            lease = held.pop(rng.randrange(len(held)))
            ok = rng.random() < 0.8
            if general:
                lb.release(lease, ok=ok, elapsed=clock() - lease.started)
            else:
                lb.release(lease, ok=ok)
            with pytest.raises(bk.InvalidLease):
                lb.release(lease)
        elif roll < 0.95:
            address = f"h{rng.randrange(6)}:1"
            if address in lb:
                lb.remove(address)  # its outstanding leases stay valid
            else:
                lb.add(bk.Endpoint(address, weight=rng.randint(1, 4)))
        else:
            log.append(sorted(lb.stats().items()))
        lb._check_invariants()
    for lease in held:
        lb.release(lease)
    log.append(sorted(lb.stats().items()))
    lb._check_invariants()
    return log


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("seed", range(5))
def test_fast_path_matches_general_path(name: str, seed: int) -> None:
    assert drive(name, seed, general=False) == drive(name, seed, general=True)


def _in_flight(lb: bk.BalancerBase) -> dict[str, int]:
    return {address: stats.in_flight for address, stats in lb.stats().items() if stats.in_flight}


@pytest.mark.parametrize("name", LOAD_AWARE)
def test_in_flight_exact_after_concurrent_select_release(name: str) -> None:
    """Threads select through the fast path and release half (elapsed given, none, ok or not):
    at each pause the in-flight counts equal the leases held, and ``state.load`` (what the
    picks compare, kept under the lock) equals them (``_check_invariants``); at the end, 0."""
    endpoints = [bk.Endpoint(f"10.3.0.{i}:80", weight=1 + i % 3) for i in range(1, 8)]
    lb = FACTORIES[name](endpoints, Clock())
    threads, rounds = 6, 400
    held: list[list[bk.Lease]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def run(n: int, phase: int) -> None:
        try:
            mine = held[n]
            for i in range(rounds):
                mine.append(lb.select())
                if i % 2 and phase == 1:
                    lease = mine.pop(len(mine) // 2)
                    lb.release(lease, ok=i % 7 != 0, elapsed=None if i % 3 else 0.002)
            if phase == 2:
                while mine:
                    lb.release(mine.pop(), ok=True, elapsed=0.001)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for phase in (1, 2):
            pool = [threading.Thread(target=run, args=(n, phase)) for n in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join(timeout=120)
            assert not errors, errors
            expected: dict[str, int] = {}
            for mine in held:
                for lease in mine:
                    expected[lease.address] = expected.get(lease.address, 0) + 1
            assert _in_flight(lb) == expected
            lb._check_invariants()
    finally:
        sys.setswitchinterval(old)
    assert _in_flight(lb) == {}
    assert sum(s.selected for s in lb.stats().values()) == 2 * threads * rounds


class _FailingClock(Clock):
    """A clock that raises on demand (a hostile or broken ``clock=``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def __call__(self) -> float:
        if self.fail:
            raise RuntimeError("clock failed")
        return self.now


@pytest.mark.parametrize("name", LOAD_AWARE)
@pytest.mark.parametrize("elapsed", [None, 0.004])
def test_release_with_a_failing_clock_keeps_in_flight_exact(
    name: str, elapsed: float | None
) -> None:
    """A clock raising inside the fast release propagates; the lease is gone and the load the
    picks compare is given back with it (``_check_invariants``: load == in flight)."""
    clock = _FailingClock()
    lb = FACTORIES[name]([bk.Endpoint("a:1"), bk.Endpoint("b:1", weight=2)], clock)
    lease = lb.select()
    clock.fail = True
    with contextlib.suppress(RuntimeError):  # LC and P2C never read the clock in release
        lb.release(lease, elapsed=elapsed)
    clock.fail = False
    lb._check_invariants()
    with pytest.raises(bk.InvalidLease):
        lb.release(lease)
    assert all(stats.in_flight == 0 for stats in lb.stats().values())


@pytest.mark.parametrize("name", LOAD_AWARE)
@pytest.mark.parametrize("health", [False, True], ids=["fast", "general"])
@pytest.mark.parametrize("elapsed", [None, 0.004])
def test_failing_clock_in_release_leaves_both_paths_consistent(
    name: str, health: bool, elapsed: float | None
) -> None:
    """Regression: with a health tracker (the general path) and ``elapsed=None`` the base read
    the clock before the strategy gave the load back, so a raising clock left ``load`` one
    above the in-flight count; LeastResponseTime's release (either path) gave the load back but
    left its heap entry keyed by the old load; and a removed endpoint's state stayed in
    ``_retired`` with nothing in flight. Now a raising clock propagates and leaves every count
    and the pick order as a cancel would."""
    clock = _FailingClock()
    endpoints = [bk.Endpoint(f"10.0.0.{i}:1", weight=1 + i % 2) for i in range(4)]
    lb = FACTORIES[name](endpoints, clock)
    if health:
        bk.with_health(lb, bk.PassiveHealth(consecutive_failures=None, failure_rate=None))
    for i in range(40):  # latency history: LeastResponseTime's scores depend on the load
        lease = lb.select()
        clock.now += 0.01
        lb.release(lease, elapsed=0.01 + 0.002 * (i % 4))
    held = [lb.select() for _ in range(8)]
    gone = held.pop()
    for lease in [lease for lease in held if lease.address == gone.address]:
        held.remove(lease)  # the removed endpoint's only lease out is `gone`
        lb.release(lease)
    lb.remove(gone.address)
    for lease in (held[0], gone):
        clock.fail = True
        with contextlib.suppress(RuntimeError):  # LC and P2C never read it on the fast path
            lb.release(lease, elapsed=elapsed)
        clock.fail = False
        lb._check_invariants()
        with pytest.raises(bk.InvalidLease):
            lb.release(lease)
    assert gone.address not in lb._retired
    in_flight = sum(stats.in_flight for stats in lb.stats().values())
    assert in_flight == len(held) - 1
