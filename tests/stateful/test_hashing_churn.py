"""Membership churn with select/release for each consistent hash, against a model of its mapping.

Every step checks ``_check_invariants()`` and where a set of probe keys goes:

- Ketama, Rendezvous, Maglev: the mapping depends only on the eligible endpoints and weights, so
  it must equal a balancer freshly built from the model's eligible set (history independence).
- Rendezvous and JumpHash are minimally disruptive: on every change, a key moves only to an
  endpoint that joined or gained weight, or away from one that left or lost weight.
- JumpHash with no bucket removed and not re-used maps keys exactly as the ``jump`` package (an
  independent implementation of the paper) over its bucket table.
- BoundedLoadHash: the model counts in-flight leases; no pick may exceed
  ``ceil((1 + epsilon) * m * w / W)``, and with nothing in flight keys go where IPHash sends them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jump
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import balancekit as bk
from balancekit.strategies.hashing._keyed import hash64

ADDRESSES = [f"10.2.0.{i}:11211" for i in range(1, 7)]
PROBES = [f"probe-{i}" for i in range(40)]

Factory = Callable[[list[bk.Endpoint]], Any]

FACTORIES: dict[str, Factory] = {
    "Ketama": lambda eps: bk.Ketama(eps),
    "Rendezvous": lambda eps: bk.Rendezvous(eps),
    "Maglev": lambda eps: bk.Maglev(eps, table_size=211),
    "MaglevEnvoy": lambda eps: bk.Maglev(eps, table_size=211, compat="envoy"),
    "JumpHash": lambda eps: bk.JumpHash(eps),
    "BoundedLoadHash": lambda eps: bk.BoundedLoadHash(eps, epsilon=0.25, replicas=20),
}


def make_machine(name: str) -> type[RuleBasedStateMachine]:
    factory = FACTORIES[name]

    class HashingChurn(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.lb = factory([])
            self.members: dict[str, tuple[int, bool]] = {}
            self.leases: list[bk.Lease] = []
            self.picks = 0

        def eligible(self) -> list[bk.Endpoint]:
            return [bk.Endpoint(a, weight=w) for a, (w, up) in self.members.items() if up]

        def snapshot(self) -> dict[str, str]:
            if not self.eligible():
                return {}
            return {k: self.lb.lookup(k).address for k in PROBES}

        def check_moves(self, before: dict[str, str], gained: str = "", lost: str = "") -> None:
            """Minimal disruption: a key moves only to ``gained`` or away from ``lost``."""
            if name not in ("Rendezvous", "JumpHash") or not before:
                return
            after = self.snapshot()
            if not after:
                return
            for key, owner in before.items():
                if after[key] != owner:
                    assert after[key] == gained or owner == lost, (key, owner, after[key])

        @rule(address=st.sampled_from(ADDRESSES), weight=st.integers(1, 3))
        def add(self, address: str, weight: int) -> None:
            if address not in self.members:
                before = self.snapshot()
                self.lb.add(bk.Endpoint(address, weight=weight))
                self.members[address] = (weight, True)
                self.check_moves(before, gained=address)

        @rule(address=st.sampled_from(ADDRESSES))
        def remove(self, address: str) -> None:
            if address in self.members:
                before = self.snapshot()
                self.lb.remove(address)
                del self.members[address]
                self.check_moves(before, lost=address)

        @rule(address=st.sampled_from(ADDRESSES), weight=st.integers(1, 3))
        def set_weight(self, address: str, weight: int) -> None:
            if address in self.members:
                before = self.snapshot()
                old = self.members[address][0]
                self.lb.set_weight(address, weight)
                self.members[address] = (weight, self.members[address][1])
                if weight > old:
                    self.check_moves(before, gained=address)
                else:
                    self.check_moves(before, lost=address)

        @rule(address=st.sampled_from(ADDRESSES), up=st.booleans())
        def mark(self, address: str, up: bool) -> None:
            if address in self.members:
                before = self.snapshot()
                (self.lb.mark_up if up else self.lb.mark_down)(address)
                self.members[address] = (self.members[address][0], up)
                if up:
                    self.check_moves(before, gained=address)
                else:
                    self.check_moves(before, lost=address)

        @rule(key=st.integers(0, 30), avoid=st.sets(st.sampled_from(ADDRESSES), max_size=1))
        def select(self, key: int, avoid: set[str]) -> None:
            eligible = self.eligible()
            allowed = {e.address for e in eligible} - avoid
            if not allowed:
                return
            lease = self.lb.select(f"k{key}", avoid=avoid)
            assert lease.address in allowed
            self.leases.append(lease)
            if name == "BoundedLoadHash" and not avoid:
                in_flight = {e.address: 0 for e in eligible}
                for held in self.leases:
                    if held.address in in_flight:
                        in_flight[held.address] += 1
                total = sum(e.weight for e in eligible)
                weight = self.members[lease.address][0]
                arrivals = sum(in_flight.values())
                assert in_flight[lease.address] <= math.ceil(1.25 * arrivals * weight / total)

        @precondition(lambda self: bool(self.leases))
        @rule(index=st.integers(0, 50))
        def release(self, index: int) -> None:
            self.lb.release(self.leases.pop(index % len(self.leases)))

        @invariant()
        def agrees_with_model(self) -> None:
            self.lb._check_invariants()
            eligible = self.eligible()
            if not eligible:
                return
            got = self.snapshot()
            if name == "JumpHash":
                if self.lb._removed:
                    return
                holders = [state.endpoint.address for state in self.lb._holders]
                expected = {k: holders[jump.hash(hash64(k), len(holders))] for k in PROBES}
            elif name == "BoundedLoadHash":
                if self.leases:
                    return
                ring = bk.IPHash(eligible, replicas=20)
                expected = {k: ring.lookup(k).address for k in PROBES}
            else:
                fresh = factory(eligible)
                expected = {k: fresh.lookup(k).address for k in PROBES}
            assert got == expected

    HashingChurn.__name__ = f"HashingChurn{name}"
    return HashingChurn


for _name in FACTORIES:
    _machine = make_machine(_name)
    _machine.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
    globals()[f"TestHashingChurn{_name}"] = _machine.TestCase
