"""Membership churn with time, outcomes and load reports, for the random and load-aware family.

A RuleBasedStateMachine per class drives membership changes, select/release, the clock and (for
A58) load reports against a simple model, and runs ``_check_invariants()`` after every step: the
alias table reproduces the weights exactly, in-flight loads equal the leases out, the stride
weights are scaled and bounded, latency estimates are finite.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import balancekit as bk

ADDRESSES = [f"10.2.0.{i}:80" for i in range(1, 6)]

Factory = Callable[[Callable[[], float]], bk.BalancerBase]

FACTORIES: dict[str, Factory] = {
    "Random": lambda clock: bk.Random(seed=1, clock=clock),
    "WeightedRandom": lambda clock: bk.WeightedRandom(seed=2, clock=clock),
    "PowerOfTwoChoices": lambda clock: bk.PowerOfTwoChoices(seed=3, clock=clock),
    "PeakEWMA": lambda clock: bk.PeakEWMA(seed=4, decay=1.0, clock=clock),
    "PeakEWMAScan": lambda clock: bk.PeakEWMA(seed=5, choices="all", clock=clock),
    "LoadReportWRR": lambda clock: bk.LoadReportWeightedRoundRobin(
        blackout_period=0.5, weight_expiration_period=3.0, weight_update_period=0.2, clock=clock
    ),
    "EnvoyWRR": lambda clock: bk.WeightedRoundRobin(order="envoy", clock=clock),
}


def make_machine(factory: Factory) -> type[RuleBasedStateMachine]:
    class Churn(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.now = 0.0
            self.lb = factory(lambda: self.now)
            self.members: dict[str, tuple[int, bool]] = {}
            self.leases: list[bk.Lease] = []

        @rule(address=st.sampled_from(ADDRESSES), weight=st.integers(1, 5))
        def add_or_reweigh(self, address: str, weight: int) -> None:
            if address in self.members:
                self.lb.set_weight(address, weight)
                self.members[address] = (weight, self.members[address][1])
            else:
                self.lb.add(bk.Endpoint(address, weight=weight))
                self.members[address] = (weight, True)

        @precondition(lambda self: bool(self.members))
        @rule(data=st.data())
        def remove(self, data: st.DataObject) -> None:
            address = data.draw(st.sampled_from(sorted(self.members)))
            self.lb.remove(address)
            del self.members[address]

        @precondition(lambda self: bool(self.members))
        @rule(data=st.data(), up=st.booleans())
        def mark(self, data: st.DataObject, up: bool) -> None:
            address = data.draw(st.sampled_from(sorted(self.members)))
            (self.lb.mark_up if up else self.lb.mark_down)(address)
            self.members[address] = (self.members[address][0], up)

        @rule(avoid=st.sets(st.sampled_from(ADDRESSES), max_size=2))
        def select(self, avoid: set[str]) -> None:
            eligible = {a for a, (_, up) in self.members.items() if up} - avoid
            if not eligible:
                try:
                    self.lb.select(avoid=avoid)
                except bk.NoEndpointAvailable:
                    return
                raise AssertionError("select must raise when nothing is eligible")
            lease = self.lb.select(avoid=avoid)
            assert lease.address in eligible
            self.leases.append(lease)

        @precondition(lambda self: bool(self.leases))
        @rule(index=st.integers(0, 50), ok=st.booleans(), elapsed=st.floats(0, 2))
        def release(self, index: int, ok: bool, elapsed: float) -> None:
            self.lb.release(self.leases.pop(index % len(self.leases)), ok=ok, elapsed=elapsed)

        @rule(seconds=st.sampled_from([0.05, 0.3, 1.0, 5.0]))
        def advance(self, seconds: float) -> None:
            self.now += seconds

        @precondition(lambda self: isinstance(self.lb, bk.LoadReportWeightedRoundRobin))
        @rule(
            data=st.data(),
            cpu=st.floats(0, 2),
            qps=st.floats(0, 1000),
            eps=st.floats(0, 100),
        )
        def report(self, data: st.DataObject, cpu: float, qps: float, eps: float) -> None:
            assert isinstance(self.lb, bk.LoadReportWeightedRoundRobin)
            targets = sorted(self.members) + [lease for lease in self.leases]
            if targets:
                target = data.draw(st.sampled_from(targets))
                self.lb.report(target, bk.LoadReport(cpu_utilization=cpu, qps=qps, eps=eps))

        @invariant()
        def agrees_with_model(self) -> None:
            stats = self.lb.stats()
            assert {a: (s.weight, s.up) for a, s in stats.items()} == self.members
            for address, stat in stats.items():
                assert stat.in_flight == sum(1 for lease in self.leases if lease.address == address)
            self.lb._check_invariants()

    return Churn


for _name, _factory in FACTORIES.items():
    _machine = make_machine(_factory)
    _machine.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
    globals()[f"TestRandomChurn{_name}"] = type(
        f"TestRandomChurn{_name}", (_machine.TestCase,), {"__test__": True}
    )
