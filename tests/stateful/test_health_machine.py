"""Passive health and slow start under random operations, for every registered strategy.

A trivial model sits beside the balancer: members (weight, up), the ejection deadlines the
tracker announced, the ramp start of every endpoint that (re)entered rotation. After every step:
the tracker's panic flag is exactly ``2 * healthy < up`` (threshold 0.5); a pick outside panic is
never an ejected endpoint; after a pick, no ejection past its deadline is still in force; every
ejection left at most ``ejection_limit(members)`` endpoints ejected; a ramping endpoint's share
never falls while it stays in rotation, and is full (it stops ramping) once the window is over.
Active-check verdicts join in: a check-failed endpoint is not healthy, and a verdict that brings
an ejected endpoint back up (down, then up) ends its ejection at once.
"""

from __future__ import annotations

import unittest

from hypothesis import event as note_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import balancekit as bk
from balancekit.health import Ejected, HealthEvent, PanicDisengaged, PanicEngaged, health_of

from ..conformance.registry import Case, all_cases

ADDRESSES = [f"10.2.0.{i}:80" for i in range(1, 7)]
PASSIVE = bk.PassiveHealth(
    consecutive_failures=2,
    base_ejection=10.0,
    max_ejection=25.0,
    interval=5.0,
    max_ejection_share=0.4,
    panic_threshold=0.5,
)
SLOW = bk.SlowStart(window=8.0, steps=4, min_share=0.2)


def in_panic(healthy: int, up: int) -> bool:
    """The model of panic for PASSIVE's threshold of one half, in integers: under half healthy."""
    return up > 0 and 2 * healthy < up


def make_machine(case: Case) -> type[RuleBasedStateMachine]:
    slow = None if case.keyed else SLOW

    class Health(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.now = 0.0
            self.events: list[HealthEvent] = []
            initial = [bk.Endpoint(a, weight=1 + i % 3) for i, a in enumerate(ADDRESSES[:3])]
            self.lb = case.factory(initial, lambda: self.now)
            bk.with_health(self.lb, PASSIVE, slow_start=slow, on_event=self.events.append)  # type: ignore[type-var]
            tracker = health_of(self.lb)  # type: ignore[arg-type]
            assert tracker is not None
            self.tracker = tracker
            self.members = {e.address: (e.weight, True) for e in initial}
            self.leases: list[bk.Lease] = []
            self.until: dict[str, float] = {}
            self.was_eligible = set(self.members)
            self.ramp_start: dict[str, float] = {}
            self.last_share: dict[str, float] = {}
            self.picks = 0
            self.panic_events = 0
            self.check_down: set[str] = set()

        def key(self) -> str | None:
            self.picks += 1
            return f"k{self.picks}" if case.keyed else None

        def ejected(self) -> set[str]:
            return {a for a, s in self.lb.stats().items() if s.ejected}

        def after_step(self) -> None:
            """Check the events of the step, then note who (re)entered rotation."""
            for event in self.events:
                if isinstance(event, Ejected):
                    assert len(self.ejected()) <= PASSIVE.ejection_limit(len(self.members))
                    self.until[event.address] = event.until
                elif isinstance(event, PanicEngaged | PanicDisengaged):
                    self.panic_events += 1
                    assert isinstance(event, PanicEngaged) == (self.panic_events % 2 == 1)
                    assert in_panic(event.healthy, event.total) == isinstance(event, PanicEngaged)
            if self.events:
                note_event(f"saw {type(self.events[-1]).__name__}")
            self.events.clear()
            eligible = self.eligible()
            for address in eligible - self.was_eligible:
                self.ramp_start[address] = self.now
                self.last_share.pop(address, None)
            for address in self.was_eligible - eligible:
                self.ramp_start.pop(address, None)
            self.was_eligible = eligible

        def eligible(self) -> set[str]:
            stats = self.lb.stats()
            up = {a for a, s in stats.items() if s.up}
            healthy = {a for a in up if not stats[a].ejected and a not in self.check_down}
            return up if in_panic(len(healthy), len(up)) else healthy

        @rule(address=st.sampled_from(ADDRESSES), weight=st.integers(1, 3))
        def add(self, address: str, weight: int) -> None:
            if address not in self.members:
                self.lb.add(bk.Endpoint(address, weight=weight))
                self.members[address] = (weight, True)
            self.after_step()

        @rule(address=st.sampled_from(ADDRESSES))
        def remove(self, address: str) -> None:
            if address in self.members:
                self.lb.remove(address)
                del self.members[address]
                self.until.pop(address, None)
                self.check_down.discard(address)  # a re-added endpoint starts up
            self.after_step()

        @precondition(lambda self: bool(self.members))
        @rule(address=st.sampled_from(ADDRESSES), healthy=st.booleans())
        def check(self, address: str, healthy: bool) -> None:
            """An active checker's verdict (after its rise/fall thresholds)."""
            if address not in self.members:
                return
            recovered = healthy and address in self.check_down
            ejected = address in self.ejected()
            self.tracker.set_check(address, healthy, "" if healthy else "probe failed")
            (self.check_down.discard if healthy else self.check_down.add)(address)
            if recovered and ejected:  # down, then up: the ejection ends now
                assert address not in self.ejected()
                note_event("a check ended an ejection")
            elif ejected:
                assert address in self.ejected()
            self.after_step()

        @precondition(lambda self: bool(self.tracker.ejected()))
        @rule(index=st.integers(0, 10))
        def check_sees_a_restart(self, index: int) -> None:
            """Checks see an ejected endpoint go down and come back: its ejection ends now."""
            ejected = self.tracker.ejected()
            self.check(ejected[index % len(ejected)], False)
            self.check(ejected[index % len(ejected)], True)

        @rule(address=st.sampled_from(ADDRESSES), up=st.booleans())
        def mark(self, address: str, up: bool) -> None:
            if address in self.members:
                (self.lb.mark_up if up else self.lb.mark_down)(address)
                self.members[address] = (self.members[address][0], up)
            self.after_step()

        @rule(address=st.sampled_from(ADDRESSES), weight=st.integers(1, 3))
        def set_weight(self, address: str, weight: int) -> None:
            if address in self.members:
                self.lb.set_weight(address, weight)
                self.members[address] = (weight, self.members[address][1])
            self.after_step()

        @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 5.0, 10.0, 30.0]))
        def wait(self, dt: float) -> None:
            self.now += dt

        @rule()
        def select(self) -> None:
            try:
                lease = self.lb.select(self.key())
            except bk.NoEndpointAvailable:
                assert not any(up for _, up in self.members.values())
                self.after_step()
                return
            self.after_step()
            if not self.tracker.panic:
                assert lease.address not in self.ejected()
            for address in self.ejected():  # every ejection past its deadline has ended
                assert self.until[address] > self.now
            self.leases.append(lease)
            self.check_ramps()

        @precondition(lambda self: bool(self.leases))
        @rule(index=st.integers(0, 100), ok=st.booleans())
        def release(self, index: int, ok: bool) -> None:
            self.lb.release(self.leases.pop(index % len(self.leases)), ok=ok)
            self.after_step()

        @precondition(lambda self: bool(self.members))
        @rule(address=st.sampled_from(ADDRESSES), times=st.integers(1, 3))
        def fail(self, address: str, times: int) -> None:
            """Send requests to one endpoint (avoiding the others) and fail them all."""
            for _ in range(times):
                others = [a for a in self.members if a != address]
                try:
                    lease = self.lb.select(self.key(), avoid=others)
                except bk.NoEndpointAvailable:
                    self.after_step()  # the select path may have ended ejections
                    break
                self.lb.release(lease, ok=False)
                self.after_step()

        def check_ramps(self) -> None:
            """Right after a pick (ramps are stepped lazily, on the select path)."""
            if slow is None:
                return
            ramping = self.tracker.ramping()
            scale = slow.steps if ramping else 1
            states = self.lb._members  # type: ignore[attr-defined]
            if ramping:
                note_event("ramping")
            for address, share in ramping.items():
                assert address in self.ramp_start
                assert self.now < self.ramp_start[address] + slow.window  # still in its window
                assert share >= self.last_share.get(address, 0.0)  # monotone
                self.last_share[address] = share
                weight = states[address].endpoint.weight
                step = slow.step(self.now - self.ramp_start[address])
                assert share == slow.share(step)
                assert states[address].weight == slow.effective_weight(weight, step)
            for address, state in states.items():
                if address not in ramping:
                    assert state.weight == state.endpoint.weight * scale  # full share
                    if address in self.last_share:
                        self.last_share[address] = 1.0

        @invariant()
        def panic_is_exact(self) -> None:
            stats = self.lb.stats()
            up = [a for a, s in stats.items() if s.up]
            healthy = [a for a in up if not stats[a].ejected and a not in self.check_down]
            assert self.tracker.panic == in_panic(len(healthy), len(up))
            assert set(self.tracker.checked_down()) == self.check_down
            assert set(self.tracker.ejected()) == {a for a, s in stats.items() if s.ejected}
            self.lb._check_invariants()  # type: ignore[attr-defined]
            self.tracker._check_invariants()

    Health.__name__ = f"Health{case.name}"
    return Health


def _has_health(case: Case) -> bool:
    return health_of(case.factory([], lambda: 0.0)) is not None  # type: ignore[arg-type]


for _case in all_cases():
    if _has_health(_case):
        continue  # already a health case (cases_health.py): the bare strategy is tested here
    _machine = make_machine(_case)
    _machine.TestCase.settings = settings(max_examples=25, stateful_step_count=40, deadline=None)
    globals()[f"TestHealth{_case.name}"] = type(
        f"TestHealth{_case.name}", (_machine.TestCase,), {"__test__": True}
    )
    assert issubclass(globals()[f"TestHealth{_case.name}"], unittest.TestCase)
