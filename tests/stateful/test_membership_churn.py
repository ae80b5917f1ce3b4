"""Membership churn interleaved with select/release, for every registered strategy, vs a model.

The model is a dict of address -> (weight, up) and the list of outstanding leases; after every
step the balancer must agree with it and pass its own ``_check_invariants()``.
"""

from __future__ import annotations

import unittest

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import balancekit as bk

from ..conformance.registry import Case, all_cases

ADDRESSES = [f"10.1.0.{i}:80" for i in range(1, 7)]


def make_machine(case: Case) -> type[RuleBasedStateMachine]:
    class Churn(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.now = 0.0
            self.lb = case.factory([], lambda: self.now)
            self.members: dict[str, tuple[int, bool]] = {}
            self.leases: list[bk.Lease] = []
            self.released: list[bk.Lease] = []
            self.picks = 0

        def eligible(self) -> set[str]:
            return {a for a, (_, up) in self.members.items() if up}

        @rule(address=st.sampled_from(ADDRESSES), weight=st.integers(1, 4))
        def add(self, address: str, weight: int) -> None:
            if address in self.members:
                try:
                    self.lb.add(bk.Endpoint(address, weight=weight))
                except bk.DuplicateEndpoint:
                    return
                raise AssertionError("adding a member twice must raise")
            self.lb.add(bk.Endpoint(address, weight=weight))
            self.members[address] = (weight, True)

        @rule(address=st.sampled_from(ADDRESSES))
        def remove(self, address: str) -> None:
            if address not in self.members:
                try:
                    self.lb.remove(address)
                except bk.UnknownEndpoint:
                    return
                raise AssertionError("removing a non-member must raise")
            self.lb.remove(address)
            del self.members[address]

        @rule(address=st.sampled_from(ADDRESSES), weight=st.integers(1, 4))
        def set_weight(self, address: str, weight: int) -> None:
            if address in self.members:
                self.lb.set_weight(address, weight)
                self.members[address] = (weight, self.members[address][1])

        @rule(address=st.sampled_from(ADDRESSES), up=st.booleans())
        def mark(self, address: str, up: bool) -> None:
            if address in self.members:
                (self.lb.mark_up if up else self.lb.mark_down)(address)
                self.members[address] = (self.members[address][0], up)

        @rule(keep=st.sets(st.sampled_from(ADDRESSES)), weight=st.integers(1, 4))
        def update(self, keep: set[str], weight: int) -> None:
            wanted = [bk.Endpoint(a, weight=weight) for a in ADDRESSES if a in keep]
            self.lb.update(wanted)
            self.members = {
                e.address: (weight, self.members.get(e.address, (0, True))[1]) for e in wanted
            }

        @rule(avoid=st.sets(st.sampled_from(ADDRESSES), max_size=2))
        def select(self, avoid: set[str]) -> None:
            self.picks += 1
            self.now += 0.01
            key = f"k{self.picks}" if case.keyed else None
            if not self.eligible() - avoid:
                try:
                    self.lb.select(key, avoid=avoid)
                except bk.NoEndpointAvailable:
                    return
                raise AssertionError("select must raise when nothing is eligible")
            lease = self.lb.select(key, avoid=avoid)
            assert lease.address in self.eligible() - avoid
            self.leases.append(lease)

        @precondition(lambda self: bool(self.leases))
        @rule(index=st.integers(0, 100), ok=st.booleans(), elapsed=st.floats(0, 2))
        def release(self, index: int, ok: bool, elapsed: float) -> None:
            self.now += 0.01
            lease = self.leases.pop(index % len(self.leases))
            self.lb.release(lease, ok=ok, elapsed=elapsed)
            self.released.append(lease)

        @precondition(lambda self: bool(self.released))
        @rule(index=st.integers(0, 100))
        def release_again(self, index: int) -> None:
            before = self.lb.stats()
            try:
                self.lb.release(self.released[index % len(self.released)])
            except bk.InvalidLease:
                assert self.lb.stats() == before
                return
            raise AssertionError("a second release must raise")

        @invariant()
        def agrees_with_model(self) -> None:
            assert {e.address: e.weight for e in self.lb.endpoints} == {
                a: w for a, (w, _) in self.members.items()
            }
            stats = self.lb.stats()
            assert {a: s.up for a, s in stats.items()} == {
                a: u for a, (_, u) in self.members.items()
            }
            for address, stat in stats.items():
                assert stat.in_flight == sum(1 for lease in self.leases if lease.address == address)
            self.lb._check_invariants()  # type: ignore[attr-defined]

    Churn.__name__ = f"Churn{case.name}"
    return Churn


for _case in all_cases():
    _machine = make_machine(_case)
    _machine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
    globals()[f"TestChurn{_case.name}"] = type(
        f"TestChurn{_case.name}", (_machine.TestCase,), {"__test__": True}
    )
    assert issubclass(globals()[f"TestChurn{_case.name}"], unittest.TestCase)
