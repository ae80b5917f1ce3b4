"""RoundRobin's rotation across membership changes, pick for pick against a model (both builds).

The documented rule (``RoundRobin``): the endpoints up rotate in join order; when the list
changes, the rotation goes on over the new list from the index the next pick would have taken
in the old one, modulo the new length (with no endpoint up, the position waits where it was).
The model is that rule in five lines. Pure Python, the fast path takes its positions from a
C iterator over the schedule's indices and folds them into the count at each change (issue
15); compiled, from a native counter: both must follow the model exactly, however many laps
were picked before a change (main's rule, the pick count modulo the new length, did not).
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import balancekit as bk

ADDRESSES = [f"10.0.0.{i}:80" for i in range(1, 9)]


class RotationModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lb = bk.RoundRobin(ADDRESSES[:3])
        self.joined = list(ADDRESSES[:3])  # join order
        self.down: set[str] = set()
        self.turn = 0  # the model's position

    def up(self) -> list[str]:
        return [address for address in self.joined if address not in self.down]

    def changed(self, before: list[str]) -> None:
        """The rule: a new list goes on from the old list's next index (modulo its length)."""
        if before != self.up() and before:
            self.turn %= len(before)

    @rule(picks=st.integers(min_value=1, max_value=40))
    def pick(self, picks: int) -> None:
        for _ in range(picks):
            up = self.up()
            if not up:
                return
            lease = self.lb.select()
            assert lease.address == up[self.turn % len(up)]
            self.turn += 1
            self.lb.release(lease, ok=True, elapsed=0.001)

    @rule(address=st.sampled_from(ADDRESSES))
    def add(self, address: str) -> None:
        if address in self.joined:
            return
        before = self.up()
        self.lb.add(address)
        self.joined.append(address)
        self.changed(before)

    @rule(address=st.sampled_from(ADDRESSES))
    def remove(self, address: str) -> None:
        if address not in self.joined:
            return
        before = self.up()
        self.lb.remove(address)
        self.joined.remove(address)
        self.down.discard(address)
        self.changed(before)

    @rule(address=st.sampled_from(ADDRESSES), down=st.booleans())
    def mark(self, address: str, down: bool) -> None:
        if address not in self.joined:
            return
        before = self.up()
        if down:
            self.lb.mark_down(address)
            self.down.add(address)
        else:
            self.lb.mark_up(address)
            self.down.discard(address)
        self.changed(before)

    @rule(address=st.sampled_from(ADDRESSES), weight=st.integers(min_value=1, max_value=5))
    def set_weight(self, address: str, weight: int) -> None:
        if address in self.joined:  # weights are ignored: the rotation does not move
            self.lb.set_weight(address, weight)

    @invariant()
    def consistent(self) -> None:
        self.lb._check_invariants()


TestRotationModel = RotationModel.TestCase
TestRotationModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_a_change_after_many_laps_goes_on_from_the_next_index() -> None:
    """Seven picks over three endpoints (two laps and one), then one joins: the next pick is
    index 1 of the new list (7 modulo 3), not index 3 (7 modulo 4, the count's old rule)."""
    lb = bk.RoundRobin(ADDRESSES[:3])
    picked = [lb.select().address for _ in range(7)]
    assert picked == [ADDRESSES[i % 3] for i in range(7)]
    lb.add(ADDRESSES[3])
    assert [lb.select().address for _ in range(5)] == [ADDRESSES[i % 4] for i in range(1, 6)]
