"""A cancelled request teaches a balancer nothing: ``cancel(lease)`` and ``acquire`` (issue 10, 9).

Every strategy in the registry: a cancelled lease gives its in-flight slot back and changes no
success or failure count, no latency estimate and no health record; ``acquire`` cancels on a
cancellation or interrupt and counts only exceptions as failures.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk

from .registry import Case, all_cases

CASES = all_cases()
by_case = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def build(case: Case, weights: list[int]) -> tuple[Any, FakeClock]:
    clock = FakeClock()
    endpoints = [bk.Endpoint(f"10.0.0.{i + 1}:80", weight=w) for i, w in enumerate(weights)]
    return case.factory(endpoints, clock), clock


def context(case: Case, i: int) -> str | None:
    return f"client-{i}" if case.keyed else None


#: (what, which lease, seconds the clock moves first)
operations = st.lists(
    st.tuples(
        st.sampled_from(["select", "succeed", "fail", "cancel"]),
        st.integers(0, 10**6),
        st.sampled_from([0.0, 0.001, 0.01, 0.05, 2.0]),
    ),
    max_size=60,
)


@by_case
@settings(max_examples=30, deadline=None)
@given(weights=st.lists(st.integers(1, 4), min_size=1, max_size=5), ops=operations)
def test_a_cancelled_lease_gives_back_its_slot_and_changes_nothing_else(
    case: Case, weights: list[int], ops: list[tuple[str, int, float]]
) -> None:
    lb, clock = build(case, weights)
    leases: list[bk.Lease] = []
    for i, (what, pick, dt) in enumerate(ops):
        clock.now += dt
        if what == "select" or not leases:
            leases.append(lb.select(context(case, i)))
            continue
        lease = leases.pop(pick % len(leases))
        if what != "cancel":
            lb.release(lease, ok=what == "succeed")
            continue
        before = lb.stats()
        lb.cancel(lease)
        after = lb.stats()
        for address, was in before.items():
            now = after[address]
            assert (now.latency, now.succeeded, now.failed) == (
                was.latency,
                was.succeeded,
                was.failed,
            )
            mine = address == lease.address
            assert now.in_flight == was.in_flight - mine
            assert now.cancelled == was.cancelled + mine
        lb._check_invariants()
    for lease in leases:
        lb.cancel(lease)
    stats = lb.stats().values()
    assert all(s.in_flight == 0 for s in stats)
    released = sum(s.succeeded + s.failed + s.cancelled for s in stats)
    assert sum(s.selected for s in stats) == released
    lb._check_invariants()


@by_case
def test_cancel_takes_each_lease_once_and_only_leases(case: Case) -> None:
    lb, _ = build(case, [1, 2, 3])
    lease = lb.select(context(case, 1))
    lb.cancel(lease)
    before = lb.stats()
    with pytest.raises(bk.InvalidLease, match="already released"):
        lb.cancel(lease)
    with pytest.raises(bk.InvalidLease, match="already released"):
        lb.release(lease)
    other, _ = build(case, [1, 2, 3])
    with pytest.raises(bk.InvalidLease):
        lb.cancel(other.select(context(case, 1)))
    for not_a_lease in ("10.0.0.1:80", None, 7, ("x",)):
        with pytest.raises(bk.InvalidLease, match="takes the Lease"):
            lb.cancel(not_a_lease)
    assert lb.stats() == before


@by_case
@pytest.mark.parametrize(
    "interruption", [KeyboardInterrupt, GeneratorExit, asyncio.CancelledError, SystemExit]
)
def test_acquire_cancels_on_an_interruption_and_fails_only_on_exceptions(
    case: Case, interruption: type[BaseException]
) -> None:
    lb, _ = build(case, [1])
    with pytest.raises(interruption), lb.acquire(context(case, 1)):
        raise interruption
    with pytest.raises(ValueError), lb.acquire(context(case, 2)):
        raise ValueError
    with lb.acquire(context(case, 3)):
        pass
    (stats,) = lb.stats().values()
    assert (stats.succeeded, stats.failed, stats.cancelled, stats.in_flight) == (1, 1, 1, 0)


def test_an_abandoned_acquire_gives_its_lease_back_uncounted() -> None:
    lb = bk.LeastResponseTime(["10.0.0.1:80"])
    manager = lb.acquire()
    manager.__enter__()  # entered, then dropped without __exit__: the generator is closed
    del manager
    (stats,) = lb.stats().values()
    assert (stats.succeeded, stats.failed, stats.cancelled, stats.in_flight) == (0, 0, 1, 0)


def test_a_cancelled_wait_for_teaches_no_latency() -> None:
    """``asyncio.wait_for`` cancelling slow calls leaves the estimate where real answers put it."""
    clock = FakeClock()
    lb = bk.LeastResponseTime(["10.0.0.1:80"], clock=clock)

    async def call(seconds: float) -> None:
        with lb.acquire():
            clock.now += seconds  # what the request takes, on the balancer's clock
            await asyncio.sleep(1.0)

    async def main() -> None:
        for _ in range(30):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call(0.01), 0.001)

    asyncio.run(main())
    (stats,) = lb.stats().values()
    assert (stats.succeeded, stats.failed, stats.cancelled, stats.latency) == (0, 0, 30, None)


def test_cancels_never_eject_nor_break_a_failure_streak() -> None:
    passive = bk.PassiveHealth(consecutive_failures=2, max_ejection_share=1.0, panic_threshold=0)
    lb = bk.with_health(bk.RoundRobin(["a:1", "b:1"], clock=lambda: 0.0), passive)
    for _ in range(50):
        lb.cancel(lb.select(avoid={"b:1"}))
    assert not lb.stats()["a:1"].ejected
    lb.release(lb.select(avoid={"b:1"}), ok=False)
    lb.cancel(lb.select(avoid={"b:1"}))  # neither a success (no reset) nor a failure
    assert not lb.stats()["a:1"].ejected
    lb.release(lb.select(avoid={"b:1"}), ok=False)
    assert lb.stats()["a:1"].ejected
