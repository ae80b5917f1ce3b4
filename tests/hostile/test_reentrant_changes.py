"""A membership change from inside one of the balancer's own calls (BalancerBase._refuse_reentry).

The balancer calls user code while it holds its (reentrant) lock: an ``avoid`` collection's
``in`` during a locked pick, a ``clock=`` during a locked pick or release, a health
``on_event`` callback in the middle of an ejection. A membership change from there ran in the
middle of the operation: an avoid that removed the endpoint it was asked about left
LeastResponseTime's and LeastConnections' heaps (and BoundedLoadHash's counts) holding the
removed endpoint, ``_check_invariants`` failed and LeastResponseTime raised ``KeyError`` on every
later pick. Such a change now raises :class:`InvalidOption` and changes nothing; a change from a
lock-free pick (round robin, hashing) is an ordinary concurrent one and goes ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import balancekit as bk

from ..conformance.registry import Case, all_cases

CHANGES: dict[str, Callable[[bk.BalancerBase, str], object]] = {
    "remove": lambda lb, address: lb.remove(address),
    "mark_down": lambda lb, address: lb.mark_down(address),
    "set_weight": lambda lb, address: lb.set_weight(address, 7),
    "add": lambda lb, address: lb.add("10.6.9.9:80"),
    "update": lambda lb, address: lb.update([a for a in lb.endpoints if a.address != address]),
}


class ChangingAvoid:
    """An ``avoid`` that makes a membership change the first time a pick asks about the
    ``nth`` address, and avoids the addresses asked about before it."""

    def __init__(self, lb: bk.BalancerBase, change: str, nth: int) -> None:
        self.lb, self.change, self.nth = lb, change, nth
        self.asked = 0
        self.outcome: str | None = None

    def __contains__(self, address: object) -> bool:
        self.asked += 1
        if self.outcome is None and self.asked > self.nth and isinstance(address, str):
            try:
                CHANGES[self.change](self.lb, address)
                self.outcome = "changed"
            except bk.InvalidOption as error:
                assert "from inside one of the balancer's own calls" in str(error)
                self.outcome = "refused"
                raise
        return self.asked <= self.nth

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[str]:
        return iter(())


def _context(case: Case, i: int) -> str | None:
    return f"key-{i}" if case.keyed else None


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.name)
@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("nth", [0, 1])
def test_a_change_from_an_avoid_is_refused_or_made_whole(case: Case, change: str, nth: int) -> None:
    endpoints = [bk.Endpoint(f"10.6.0.{i}:80", weight=1 + i % 2) for i in range(4)]
    lb = case.factory(endpoints, lambda: 1.0)
    assert isinstance(lb, bk.BalancerBase)
    held = [lb.select(_context(case, i)) for i in range(2)]
    before = (lb.endpoints, lb.stats())
    avoid = ChangingAvoid(lb, change, nth)
    try:
        lease = lb.select(_context(case, 9), avoid=avoid)
    except bk.InvalidOption:
        assert avoid.outcome == "refused"
        assert (lb.endpoints, lb.stats()) == before  # nothing changed, nothing counted
    except bk.NoEndpointAvailable:
        pass  # (everything left was avoided)
    else:
        held.append(lease)
    lb._check_invariants()
    for lease in held:
        lb.release(lease)
    for i in range(12):
        lb.release(lb.select(_context(case, i)))
    lb._check_invariants()
    assert all(stats.in_flight == 0 for stats in lb.stats().values())


def test_a_change_from_a_locked_release_clock_is_refused() -> None:
    """LeastResponseTime reads its clock under the lock at release, after the load went down."""
    lb = bk.LeastResponseTime(["a:80", "b:80", "c:80"], clock=lambda: 1.0)
    lease = lb.select()
    outcomes: list[str] = []

    def clock() -> float:
        try:
            lb.remove(lease.address)
            outcomes.append("changed")
        except bk.InvalidOption:
            outcomes.append("refused")
        return 2.0

    lb._clock = clock
    lb.release(lease)
    assert outcomes and set(outcomes) == {"refused"}
    lb._clock = lambda: 3.0
    lb._check_invariants()
    assert lease.address in lb
    assert all(stats.in_flight == 0 for stats in lb.stats().values())


def test_a_change_from_another_thread_or_a_lock_free_pick_goes_ahead() -> None:
    """A round robin's pick holds no lock: a change from its clock is a concurrent one."""
    lb = bk.RoundRobin(["a:80", "b:80", "c:80"], clock=lambda: 1.0)
    removed: list[str] = []

    def clock() -> float:
        if not removed:
            removed.append("a:80")
            lb.remove("a:80")
        return 1.0

    lb._clock = clock
    lease = lb.select()
    assert removed == ["a:80"] and "a:80" not in lb
    lb.release(lease)
    lb._check_invariants()
