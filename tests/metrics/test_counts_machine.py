"""Membership churn with picks, outcomes and cancellations, against a model of what was counted.

After every step the exported totals equal the model's exactly (single-threaded: no race can
blur them) and no counter has gone down, whatever endpoints were removed, re-added with leases
still out, or replaced by ``update``. A total taken over the members of the moment alone loses
a removed endpoint's picks and fails here at once.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import balancekit as bk
from balancekit.metrics import Source

ADDRESSES = [f"10.3.0.{i}:80" for i in range(1, 6)]
COUNTERS = (
    "balancekit.lb.picks",
    "balancekit.lb.requests",
    "balancekit.lb.membership.updates",
    "balancekit.lb.membership.endpoint_changes",
    "balancekit.lb.rebuilds",
)


def values(source: Source) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(p.metric.name, p.labels[1:]): p.value for p in source.read()}


class Counts(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lb = bk.LeastConnections(ADDRESSES[:2])
        self.source = Source(self.lb, target="machine")
        self.members = set(ADDRESSES[:2])
        self.leases: list[bk.Lease] = []
        self.picks = self.succeeded = self.failed = self.cancelled = 0
        self.updates = self.added = self.removed = 0
        self.last = values(self.source)

    def _changed(self, added: int, removed: int) -> None:
        if added or removed:
            self.updates += 1
            self.added += added
            self.removed += removed

    @precondition(lambda self: self.members)
    @rule()
    def select(self) -> None:
        self.leases.append(self.lb.select())
        self.picks += 1

    @precondition(lambda self: self.leases)
    @rule(index=st.integers(0, 50), outcome=st.sampled_from(["ok", "failed", "cancelled"]))
    def give_back(self, index: int, outcome: str) -> None:
        lease = self.leases.pop(index % len(self.leases))
        if outcome == "cancelled":
            self.lb.cancel(lease)
            self.cancelled += 1
        else:
            self.lb.release(lease, ok=outcome == "ok")
            self.succeeded += outcome == "ok"
            self.failed += outcome == "failed"

    @rule(address=st.sampled_from(ADDRESSES))
    def add_or_remove(self, address: str) -> None:
        if address in self.members:
            self.lb.remove(address)
            self.members.discard(address)
            self._changed(0, 1)
        else:
            self.lb.add(address)
            self.members.add(address)
            self._changed(1, 0)

    @rule(wanted=st.sets(st.sampled_from(ADDRESSES)))
    def update(self, wanted: set[str]) -> None:
        self.lb.update(sorted(wanted))
        self._changed(len(wanted - self.members), len(self.members - wanted))
        self.members = set(wanted)

    @invariant()
    def totals_match_the_model_and_never_go_down(self) -> None:
        now = values(self.source)
        assert now[("balancekit.lb.picks", ())] == self.picks
        assert now[("balancekit.lb.requests", (("outcome", "succeeded"),))] == self.succeeded
        assert now[("balancekit.lb.requests", (("outcome", "failed"),))] == self.failed
        assert now[("balancekit.lb.requests", (("outcome", "cancelled"),))] == self.cancelled
        assert now[("balancekit.lb.in_flight", ())] == len(self.leases)
        assert now[("balancekit.lb.endpoints", ())] == len(self.members)
        assert now[("balancekit.lb.membership.updates", ())] == self.updates
        assert now[("balancekit.lb.membership.endpoint_changes", (("change", "added"),))] == (
            self.added
        )
        assert now[("balancekit.lb.membership.endpoint_changes", (("change", "removed"),))] == (
            self.removed
        )
        for key, value in now.items():
            if key[0] in COUNTERS:
                assert value >= self.last.get(key, 0), key
        self.last = now
        self.lb._check_invariants()


TestCounts = Counts.TestCase
TestCounts.settings = settings(max_examples=150, stateful_step_count=40)
