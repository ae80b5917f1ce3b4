"""WeightedRoundRobin(order="envoy") against Envoy's EDF scheduler, its tests and gRPC's doc."""

from __future__ import annotations

import inspect
import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import balancekit as bk
from balancekit.strategies.edf import EdfScheduler, edf_sequence


def envoy_reference(weights: list[int], steps: int) -> list[int]:
    """Envoy's EdfScheduler, written out plainly: entries (deadline, order_offset); a pick takes
    the smallest, sets current_time to its deadline and re-adds it at current_time + 1/weight
    with the next order_offset (source/common/upstream/edf_scheduler.h)."""
    entries = [(1.0 / w, i, i) for i, w in enumerate(weights)]
    offset = len(weights)
    picks = []
    for _ in range(steps):
        best = min(entries)
        entries.remove(best)
        deadline, _, index = best
        entries.append((deadline + 1.0 / weights[index], offset, index))
        offset += 1
        picks.append(index)
    return picks


def test_envoy_unweighted() -> None:
    # Envoy test/common/upstream/edf_scheduler_test.cc, EdfSchedulerTest.Unweighted: 128 entries
    # of weight 1 are picked in insertion order, round after round (128 rounds).
    lb = bk.WeightedRoundRobin([f"10.0.{i // 250}.{i % 250}:80" for i in range(128)], order="envoy")
    addresses = [e.address for e in lb.endpoints]
    for _ in range(128):
        assert [lb.select().address for _ in range(128)] == addresses


def test_envoy_weighted() -> None:
    # EdfSchedulerTest.Weighted: entries i = 0..127 of weight i + 1; in 128 * 129 / 2 picks
    # entry i is picked exactly i + 1 times.
    pool = [bk.Endpoint(f"10.0.0.{i}:80", weight=i + 1) for i in range(128)]
    lb = bk.WeightedRoundRobin(pool, order="envoy")
    counts = Counter(lb.select().address for _ in range(128 * 129 // 2))
    assert [counts[e.address] for e in pool] == [i + 1 for i in range(128)]


def test_grpc_a31_published_sequence() -> None:
    # gRFC A31 (EDF scheduler, modelled on Envoy's): lb_endpoints [("a", 2), ("b", 4)]
    # -> "babbabbabbabba"; [("a", 2), ("b", 2)] -> "abab...".
    lb = bk.WeightedRoundRobin(
        [bk.Endpoint("a:80", weight=2), bk.Endpoint("b:80", weight=4)], order="envoy"
    )
    assert "".join(lb.select().address[0] for _ in range(14)) == "babbabbabbabba"
    even = bk.WeightedRoundRobin(
        [bk.Endpoint("a:80", weight=2), bk.Endpoint("b:80", weight=2)], order="envoy"
    )
    assert "".join(even.select().address[0] for _ in range(8)) == "abababab"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_sequence_equals_envoy_reference(weights: list[int]) -> None:
    steps = 3 * sum(weights)
    assert list(itertools.islice(edf_sequence(weights), steps)) == envoy_reference(weights, steps)


def test_scheduler_invariants_and_empty() -> None:
    scheduler: EdfScheduler[str] = EdfScheduler()
    with pytest.raises(IndexError):
        scheduler.pick_and_add()
    with pytest.raises(ValueError):
        scheduler.add(0, "x")
    scheduler.add(1, "a")
    scheduler.add(3, "b")
    for _ in range(20):
        scheduler.pick_and_add()
        scheduler.check()


def test_nginx_stays_the_default_and_order_is_validated() -> None:
    pool: list[bk.EndpointLike] = [bk.Endpoint("a:80", weight=5), "b:80", "c:80"]
    default = bk.WeightedRoundRobin(pool)
    assert "".join(default.select().address[0] for _ in range(7)) == "aabacaa"  # NGINX's
    assert default._schedule and default._online is None  # still the precomputed schedule
    envoy = bk.WeightedRoundRobin(pool, order="envoy")
    # a's deadlines 0.2 .. 1.0; b and c at 1.0 were added first, so they go before a's fifth.
    # Ties go by order of (re-)insertion, so unlike NGINX's the order is not periodic in sum(w).
    assert "".join(envoy.select().address[0] for _ in range(14)) == "aaaabcaaaaaabc"
    with pytest.raises(bk.InvalidOption, match="order"):
        bk.WeightedRoundRobin(pool, order="haproxy")


def test_envoy_order_avoid_and_membership_change() -> None:
    lb = bk.WeightedRoundRobin([bk.Endpoint("a:80", weight=100), "b:80", "c:80"], order="envoy")
    assert {lb.select(avoid={"a:80"}).address for _ in range(10)} == {"b:80", "c:80"}
    lb.mark_down("a:80")
    assert {lb.select().address for _ in range(10)} == {"b:80", "c:80"}
    lb._check_invariants()


# -- issue 11: a change costs what changed (EdfByWeight), the order is still Envoy's ------------

POOL = [f"10.7.0.{i}:80" for i in range(1, 9)]


class EnvoyOrderAfterChanges(RuleBasedStateMachine):
    """After any sequence of changes, the picks are Envoy's EDF restarted from scratch over the
    endpoints in rotation in join order (Envoy rebuilds its scheduler on every host change)."""

    def __init__(self) -> None:
        super().__init__()
        self.lb = bk.WeightedRoundRobin(
            [bk.Endpoint(POOL[0], weight=3), POOL[1], bk.Endpoint(POOL[2], weight=2)],
            order="envoy",
        )
        self.changed = True  # since the last check: the order restarted

    @rule(index=st.integers(0, len(POOL) - 1), weight=st.integers(1, 4))
    def add_or_remove(self, index: int, weight: int) -> None:
        if POOL[index] in self.lb:
            if len(self.lb) > 1:
                self.lb.remove(POOL[index])
                self.changed = True
        else:
            self.lb.add(bk.Endpoint(POOL[index], weight=weight))
            self.changed = True

    @rule(index=st.integers(0, len(POOL) - 1), weight=st.integers(1, 4))
    def set_weight(self, index: int, weight: int) -> None:
        if POOL[index] in self.lb and self.lb.stats()[POOL[index]].weight != weight:
            self.lb.set_weight(POOL[index], weight)
            self.changed = True

    @rule(index=st.integers(0, len(POOL) - 1))
    def mark_down_or_up(self, index: int) -> None:
        if POOL[index] not in self.lb:
            return
        up = [s for s in self.lb._members.values() if s.up]
        state = self.lb._members[POOL[index]]
        if not state.up:
            self.lb.mark_up(POOL[index])
            self.changed = True
        elif len(up) > 1:
            self.lb.mark_down(POOL[index])
            self.changed = True

    @invariant()
    def picks_are_envoys_from_a_restart(self) -> None:
        self.lb._check_invariants()
        eligible = self.lb._eligible()
        if not self.changed or not eligible:  # the order goes on; the next change restarts it
            return
        self.changed = False
        steps = 2 * sum(state.weight for state in eligible) + 3
        expected = [
            eligible[i].endpoint.address
            for i in envoy_reference([state.weight for state in eligible], steps)
        ]
        assert [self.lb.select().address for _ in range(steps)] == expected


TestEnvoyOrderAfterChanges = EnvoyOrderAfterChanges.TestCase
TestEnvoyOrderAfterChanges.settings = settings(
    max_examples=60, stateful_step_count=12, deadline=None
)


def test_a_change_reads_the_weights_of_what_changed_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted, not timed: add, remove, set_weight and mark_down on 2,000 endpoints of three
    weights, each followed by a pick, read a bounded number of weights (a rebuild of Envoy's
    scheduler read all 2,000 on every change)."""
    from balancekit._state import EndpointState

    pool = [bk.Endpoint(f"10.8.{i // 250}.{i % 250}:80", weight=1 + i % 3) for i in range(2000)]
    lb = bk.WeightedRoundRobin(pool, order="envoy")
    lb.select()
    slot = inspect.getattr_static(EndpointState, "weight")  # (a slot of a base class: _state)
    reads = [0]

    def read(state: EndpointState) -> int:
        reads[0] += 1
        value: int = slot.__get__(state, EndpointState)
        return value

    monkeypatch.setattr(EndpointState, "weight", property(read, slot.__set__))
    changes = [
        lambda: lb.add(bk.Endpoint("10.9.0.1:80", weight=2)),
        lambda: lb.remove("10.9.0.1:80"),
        lambda: lb.set_weight(pool[7].address, 3),
        lambda: lb.mark_down(pool[8].address),
        lambda: lb.mark_up(pool[8].address),
    ]
    for change in changes:
        reads[0] = 0
        change()
        lb.select()
        assert reads[0] <= 40, reads[0]
    monkeypatch.undo()
    lb._check_invariants()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=12))
def test_weight_classes_give_envoys_order(weights: list[int]) -> None:
    # Few distinct weights: many equal deadlines, within a class and across classes (1, 2, 4).
    pool = [bk.Endpoint(f"10.6.0.{i}:80", weight=w) for i, w in enumerate(weights, 1)]
    lb = bk.WeightedRoundRobin(pool, order="envoy")
    steps = 3 * sum(weights)
    expected = [pool[i].address for i in envoy_reference(weights, steps)]
    assert [lb.select().address for _ in range(steps)] == expected
