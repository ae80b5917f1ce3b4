"""Incremental rings equal rings built from scratch, point for point and key for key.

IPHash, BoundedLoadHash and Ketama (both compat modes) change their ring point by point on every
membership change (docs/hashing.md, "Membership changes"). After any sequence of adds, removes,
weight changes, updates, mark_down and mark_up, the ring must hold exactly the points, in
exactly the order (equal points included), of a balancer built afresh from the final
membership, and send every probe key to the same endpoint. Weights include huge ones, so the
point divisor (``point_divisor``) changes along the way, and pools grow and shrink enough to
re-lay the buckets out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import balancekit as bk
from balancekit.strategies.hashing import _keyed, _points, _view
from balancekit.strategies.hashing import ring as ring_module
from balancekit.strategies.hashing._points import PointRing
from balancekit.strategies.hashing.ring import point_divisor

ADDRESSES = [f"10.3.0.{i}:6379" for i in range(1, 25)]
PROBES = [f"key-{i}" for i in range(60)]
WEIGHTS = st.sampled_from([1, 1, 1, 2, 3, 7, 31, 33, 65_535, 1_000_000])
#: The per-endpoint bound, lowered from 65,536 so huge weights stay quick to rebuild from scratch
#: at every step: with 16 replicas a weight of 33 (528 points) already needs a divisor.
SMALL_BOUND = 512

#: When the ring's overlay of recent changes is merged into its flat base (``_points.SMALL``,
#: ``_points.COMPACT``): at once (small rings in production), never (every lookup resolves base
#: and overlay), or after a few changes (large rings in production, scaled down); "chunked" also
#: spreads each merge over many changes (``STEP``, ``PER_POINT``, ``_view.CHUNK`` of 1; only
#: a change leaving half the ring pending merges at once), so rings are checked mid-merge.
MERGES = {"at-once": (1 << 30, 64), "never": (0, 1 << 30), "sometimes": (0, 3), "chunked": (0, 3)}
CHUNKED = {"STEP": 1, "PER_POINT": 1, "BIG": 2}

#: Machines per strategy and merge mode (``BALANCEKIT_RING_EXAMPLES=300`` for a longer search).
RUNS = int(os.environ.get("BALANCEKIT_RING_EXAMPLES", "60"))
Factory = Callable[[list[bk.Endpoint]], Any]
EXAMPLES: dict[str, int] = {}  # machines run per strategy (printed with -s; in the report)


def only_new_divisors_rebuild(cls: type[Any]) -> type[Any]:
    """``cls`` whose every change asserts it was incremental (issue 11, ringscale): a change
    that calls ``_rebuild`` (O(N): the whole eligible set compared, or the ring laid out
    afresh) must have changed the point divisor or more than doubled the ring. Main rebuilt on
    every change once the divisor was above 1 (this fails there)."""
    rebuilds = [0]  # calls of _rebuild, every instance (one change at a time)

    class OnlyNewDivisorsRebuild(cls):  # type: ignore[misc,valid-type]
        def _rebuild(self, eligible: list[Any]) -> None:
            rebuilds[0] += 1
            super()._rebuild(eligible)

        def _apply(self, delta: Any) -> None:
            divisor, count, before = self._divisor, self._ring.count, rebuilds[0]
            super()._apply(delta)
            if not delta.full and rebuilds[0] != before:
                assert self._divisor != divisor or self._ring.count > 2 * count + 64, (
                    f"a change at divisor {divisor} rebuilt the ring ({count} points -> "
                    f"{self._ring.count})"
                )

    OnlyNewDivisorsRebuild.__name__ = cls.__name__
    return OnlyNewDivisorsRebuild


Counted: dict[str, type[Any]] = {
    name: only_new_divisors_rebuild(getattr(bk, name)) for name in ("IPHash", "BoundedLoadHash")
}
FACTORIES: dict[str, Factory] = {
    "IPHash": lambda eps: Counted["IPHash"](eps, replicas=16),
    # past max_ring_size (Envoy's maximum, scaled down): 24 endpoints of weight 3 already need
    # d = 2, so the divisor crosses thresholds both ways as the pool grows and shrinks
    "IPHash-capped": lambda eps: Counted["IPHash"](eps, replicas=16, max_ring_size=1024),
    "BoundedLoadHash": lambda eps: Counted["BoundedLoadHash"](eps, replicas=16),
    "Ketama": lambda eps: bk.Ketama(eps),
    "Ketama-uhashring": lambda eps: bk.Ketama(eps, compat="uhashring"),
}


def ring_of(lb: Any) -> list[tuple[int, str]]:
    """Every live point of the ring with its owner's address, in ring order (equal points too;
    Ketama's dead points, tombstones of digests past their server's count, left out)."""
    items = lb._live_items() if isinstance(lb, bk.Ketama) else lb._ring.items()
    return [(point, state.endpoint.address) for point, state in items]


def machine_for(name: str) -> type[RuleBasedStateMachine]:
    factory = FACTORIES[name]

    class IncrementalEqualsScratch(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            EXAMPLES[name] = EXAMPLES.get(name, 0) + 1
            self.lb = factory([bk.Endpoint(ADDRESSES[0]), bk.Endpoint(ADDRESSES[1], weight=2)])
            self.down: set[str] = set()

        @rule(index=st.integers(0, len(ADDRESSES) - 1), weight=WEIGHTS)
        def add(self, index: int, weight: int) -> None:
            address = ADDRESSES[index]
            if address not in self.lb:
                self.lb.add(bk.Endpoint(address, weight=weight))
                self.down.discard(address)

        @rule(index=st.integers(0, len(ADDRESSES) - 1))
        def remove(self, index: int) -> None:
            if ADDRESSES[index] in self.lb:
                self.lb.remove(ADDRESSES[index])
                self.down.discard(ADDRESSES[index])

        @rule(index=st.integers(0, len(ADDRESSES) - 1), weight=WEIGHTS)
        def set_weight(self, index: int, weight: int) -> None:
            if ADDRESSES[index] in self.lb:
                self.lb.set_weight(ADDRESSES[index], weight)

        @rule(index=st.integers(0, len(ADDRESSES) - 1), weight=WEIGHTS, times=st.integers(1, 3))
        def bounce(self, index: int, weight: int, times: int) -> None:
            """A weight and back, a few times (Ketama: tombstones made and revived)."""
            if ADDRESSES[index] in self.lb:
                old = self.lb._member(ADDRESSES[index]).endpoint.weight
                for _ in range(times):
                    self.lb.set_weight(ADDRESSES[index], weight)
                    self.lb.set_weight(ADDRESSES[index], old)

        @rule(index=st.integers(0, len(ADDRESSES) - 1), up=st.booleans())
        def mark(self, index: int, up: bool) -> None:
            address = ADDRESSES[index]
            if address in self.lb:
                (self.lb.mark_up if up else self.lb.mark_down)(address)
                (self.down.discard if up else self.down.add)(address)

        @rule(
            chosen=st.lists(st.integers(0, len(ADDRESSES) - 1), unique=True, max_size=24),
            weight=WEIGHTS,
        )
        def update(self, chosen: list[int], weight: int) -> None:
            self.lb.update([bk.Endpoint(ADDRESSES[i], weight=weight) for i in chosen])
            self.down &= {ADDRESSES[i] for i in chosen}

        @rule()
        def settle(self) -> None:
            self.lb.settle()  # a merge under way finished at once
            assert not self.lb._ring.merging

        @invariant()
        def equals_a_ring_built_from_scratch(self) -> None:
            self.lb._check_invariants()
            fresh = factory(list(self.lb.endpoints))  # same members, same join order
            for address in self.down:
                fresh.mark_down(address)
            assert ring_of(self.lb) == ring_of(fresh)
            if not self.lb._eligible():
                return
            for key in PROBES:
                assert self.lb.lookup(key).address == fresh.lookup(key).address
            # avoid walks clockwise (RingView.find): the same next endpoint as the fresh ring
            for key in PROBES[:12]:
                avoid = {self.lb.lookup(key).address, fresh.lookup(PROBES[-1]).address}
                picks = []
                for lb in (self.lb, fresh):
                    try:
                        pick = lb._choose if hasattr(lb, "_choose") else lb._pick
                        picks.append(pick(key, avoid).endpoint.address)
                    except bk.NoEndpointAvailable:
                        picks.append(None)
                assert picks[0] == picks[1]

    IncrementalEqualsScratch.__name__ = f"IncrementalEqualsScratch{name}"
    return IncrementalEqualsScratch


@pytest.mark.parametrize("merge", sorted(MERGES))
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_incremental_ring_equals_scratch(
    name: str, merge: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ring_module, "MAX_POINTS_PER_ENDPOINT", SMALL_BOUND)
    monkeypatch.setattr(_points, "SMALL", MERGES[merge][0])
    monkeypatch.setattr(_points, "COMPACT", MERGES[merge][1])
    if merge == "chunked":
        for constant, value in CHUNKED.items():
            monkeypatch.setattr(_points, constant, value)
        monkeypatch.setattr(_view, "CHUNK", 1)
        monkeypatch.setattr(_keyed, "PICK_EVERY", 1)  # the invariant's lookups merge too
    machine = machine_for(name)
    machine.TestCase.settings = settings(
        max_examples=RUNS, stateful_step_count=25, deadline=None, database=None
    )
    machine.TestCase().runTest()
    print(f"{name} ({merge}): {EXAMPLES[name]} examples of up to 25 steps")
    assert EXAMPLES[name] >= RUNS
    EXAMPLES[name] = 0


def by_address(a: Any, b: Any) -> bool:
    return bool(a.endpoint.address < b.endpoint.address)


@settings(max_examples=300, deadline=None, database=None)
@given(
    points=st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from([0, 1 << 31, (1 << 32) - 1, 12345])),
        max_size=40,
    ),
    removed=st.sets(st.integers(0, 7)),
    merge=st.sampled_from(sorted(MERGES)),
    past_equal=st.booleans(),
)
def test_point_ring_orders_equal_points_like_a_sorted_build(
    points: list[tuple[int, int]], removed: set[int], merge: str, past_equal: bool
) -> None:
    # Few distinct points, so most are equal: insert and delete must keep ties in owner order.
    owners = [
        bk.IPHash([f"10.4.0.{i}:1"])._eligible()[0] for i in range(8)
    ]  # real EndpointStates, addresses in index order
    by_owner: dict[int, list[int]] = {}
    for owner, point in points:
        by_owner.setdefault(owner, []).append(point)
    small, compact = MERGES[merge]
    saved = _points.SMALL, _points.COMPACT
    _points.SMALL, _points.COMPACT = small, compact
    try:
        ring = PointRing(32, past_equal=past_equal)
        for owner, owned in by_owner.items():
            ring.insert(owners[owner], owned, by_address)
        for owner in removed & set(by_owner):
            ring.delete(owners[owner], by_owner.pop(owner))
    finally:
        _points.SMALL, _points.COMPACT = saved
    ring.view.check()
    left = sorted((point, owner) for owner, owned in by_owner.items() for point in owned)
    assert [(p, owners.index(s)) for p, s in ring.items()] == left
    packed = sorted((point << 3) | owner for point, owner in left)
    fresh = PointRing(32, len(packed), past_equal=past_equal)
    fresh.fill(owners, packed, 3)
    assert fresh.items() == ring.items()
    assert ring.count == len(left)
    for hashed in (0, 1, 12345, 12346, 1 << 31, (1 << 32) - 1):  # at, between and past points
        assert ring.owner_at(hashed) is fresh.owner_at(hashed)
        for skip in range(3):  # the walk: the (skip+1)-th distinct owner clockwise
            seen: list[Any] = []

            def nth(state: Any, seen: list[Any] = seen, skip: int = skip) -> bool:
                if state not in seen:
                    seen.append(state)
                return len(seen) > skip

            other: list[Any] = []

            def nth_fresh(state: Any, seen: list[Any] = other, skip: int = skip) -> bool:
                if state not in seen:
                    seen.append(state)
                return len(seen) > skip

            assert ring.find(hashed, nth) is fresh.find(hashed, nth_fresh)


def test_point_divisor_keeps_small_weights_and_bounds_large_ones() -> None:
    assert ring_module.MAX_POINTS_PER_ENDPOINT == 65_536
    assert point_divisor([1, 2, 3, 409], 160, 8 << 20) == 1  # today's layout exactly
    assert point_divisor([65_535] * 3, 160, 8 << 20) == 32_768  # 319 points each
    assert point_divisor([1, 1_000_000], 160, 8 << 20) == 4096  # heaviest <= 65,536 points
    assert point_divisor([1] * 100_000, 160, 8 << 20) == 2  # ring <= max_ring_size
