"""LeastConnections' heap + sorted run against a plain O(n) transcription of its documented rule.

The rule (LeastConnections' docstring, ``_LoadOrdered``): a pick takes the eligible endpoint, not
avoided, with the smallest ``(in_flight / weight, deadline, order)``; a pick moves the virtual time
up to the picked endpoint's deadline if later, and its deadline to ``virtual time + 1 / weight``;
an endpoint that joins (or returns) with a deadline before the virtual time gets ``virtual time
+ 1 / weight``. ``Scan`` below does exactly that by a linear scan, with no index at all; the two
must agree pick for pick over any sequence of selects (with ``avoid``), releases, cancellations,
overrides, membership, weight and up/down changes, with or without passive health and slow start.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit._core import Delta
from balancekit._state import EndpointState
from balancekit.strategies.least import _LoadOrdered

ADDRESSES = [f"h{i}:80" for i in range(8)]


class Scan(_LoadOrdered):
    """The documented rule, O(n) per pick: a scan of the eligible endpoints, nothing filed."""

    def __init__(self, endpoints: Any, *, clock: Any) -> None:
        super().__init__(endpoints, clock=clock)
        self._start()

    def _score(self, state: EndpointState) -> float:
        return state.load / state.weight

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        for state in eligible:
            if state.deadline < self._virtual_time:
                state.deadline = self._virtual_time + 1.0 / state.weight

    def _apply(self, delta: Delta) -> None:
        if delta.full:
            self._rebuild(self._eligible_list)
            return
        self._rebuild(list(delta.added))

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        with self._lock:
            candidates = [s for s in self._eligible_list if s.endpoint.address not in avoid]
            if not candidates:
                raise self._nothing_available(avoid)
            state = min(candidates, key=lambda s: (s.load / s.weight, s.deadline, s.order))
            self._take(state)
            return state

    def _refile_released(self, state: EndpointState) -> None:
        pass

    def _check_invariants(self) -> None:
        bk.BalancerBase._check_invariants(self)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


OPS = st.one_of(
    st.tuples(st.just("select"), st.integers(0, 255), st.sampled_from([0, 0, 0, 1, 2])),
    st.tuples(st.just("release"), st.integers(0, 63), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 63)),
    st.tuples(st.just("override"), st.integers(0, 7)),
    st.tuples(st.just("add"), st.integers(0, 7), st.sampled_from([1, 1, 2, 3, 7])),
    st.tuples(st.just("remove"), st.integers(0, 7)),
    st.tuples(st.just("weight"), st.integers(0, 7), st.sampled_from([1, 2, 5])),
    st.tuples(st.just("down"), st.integers(0, 7)),
    st.tuples(st.just("up"), st.integers(0, 7)),
    st.tuples(st.just("tick"), st.sampled_from([0.001, 0.5, 3.0, 31.0])),
)


def _build(make: Any, weights: list[int], health: bool, clock: Clock) -> Any:
    endpoints = [bk.Endpoint(a, weight=w) for a, w in zip(ADDRESSES, weights, strict=False)]
    lb = make(endpoints, clock=clock)
    if health:
        lb = bk.with_health(
            lb,
            bk.PassiveHealth(consecutive_failures=2, failure_rate=0.9, window=4),
            slow_start=bk.SlowStart(window=5.0),
        )
    return lb


def _step(lb: Any, held: list[bk.Lease], op: tuple[Any, ...]) -> object:
    """Apply ``op``; what it returned (an address) or raised (the error's type)."""
    try:
        kind = op[0]
        if kind == "select":
            avoid = {a for i, a in enumerate(ADDRESSES) if op[1] >> i & 1} if op[2] else set()
            lease = lb.select(avoid=avoid)
            held.append(lease)
            return lease.address
        if kind == "release" and held:
            lb.release(held.pop(op[1] % len(held)), ok=op[2], elapsed=0.001)
        elif kind == "cancel" and held:
            lb.cancel(held.pop(op[1] % len(held)))
        elif kind == "override":
            lease = lb.select_override(ADDRESSES[op[1]])
            if lease is None:
                return None
            held.append(lease)
            return lease.address
        elif kind == "add":
            lb.add(bk.Endpoint(ADDRESSES[op[1]], weight=op[2]))
        elif kind == "remove":
            lb.remove(ADDRESSES[op[1]])
        elif kind == "weight":
            lb.set_weight(ADDRESSES[op[1]], op[2])
        elif kind == "down":
            lb.mark_down(ADDRESSES[op[1]])
        elif kind == "up":
            lb.mark_up(ADDRESSES[op[1]])
        return None
    except bk.BalancekitError as error:
        return type(error).__name__


@settings(max_examples=150, deadline=None)
@given(
    weights=st.lists(st.sampled_from([1, 1, 1, 2, 3]), min_size=0, max_size=8),
    health=st.booleans(),
    ops=st.lists(OPS, max_size=120),
)
def test_least_connections_picks_as_the_documented_scan(
    weights: list[int], health: bool, ops: list[tuple[Any, ...]]
) -> None:
    clocks = Clock(), Clock()
    fast = _build(bk.LeastConnections, weights, health, clocks[0])
    slow = _build(Scan, weights, health, clocks[1])
    held: tuple[list[bk.Lease], list[bk.Lease]] = [], []
    for op in ops:
        if op[0] == "tick":
            clocks[0].now += op[1]
            clocks[1].now += op[1]
            continue
        assert _step(fast, held[0], op) == _step(slow, held[1], op), op
        fast._check_invariants()
    assert {a: s.in_flight for a, s in fast.stats().items()} == {
        a: s.in_flight for a, s in slow.stats().items()
    }


def test_sequential_traffic_keeps_one_heap_entry_per_weight() -> None:
    """Requests one at a time: every release files its endpoint at the end of its weight's run,
    so the heap holds only the runs' first entries (5 here, whatever n) and each select+release
    is a popleft, an append and a heapreplace on those (O(1) in n). On the heap alone it held
    all n entries and sifted through O(log n) of them per release."""
    endpoints = [bk.Endpoint(f"h{i}:80", weight=1 + i % 5) for i in range(1000)]
    lb = bk.LeastConnections(endpoints)
    for _ in range(3000):
        lb.release(lb.select(), ok=True, elapsed=0.001)
    assert len(lb._heap) == 5
    assert sorted(len(run.entries) for run in lb._runs.values()) == [200] * 5
    lb._check_invariants()


def test_dead_entries_are_compacted_and_picks_stay_the_scans() -> None:
    """Every re-weighting and every release that lowers a score below its filed entry leaves a
    dead entry; past twice the live ones (plus 32) the index is rebuilt from the live entries:
    the index stays O(n) in size, and the picks are still the scan's."""
    clocks = Clock(), Clock()
    fast = _build(bk.LeastConnections, [1, 2, 3, 1], False, clocks[0])
    slow = _build(Scan, [1, 2, 3, 1], False, clocks[1])
    held: tuple[list[bk.Lease], list[bk.Lease]] = [], []
    most = 0
    for i in range(600):
        ops: list[tuple[Any, ...]] = [("weight", i % 4, 1 + i % 3), ("select", 0, 0)]
        ops += [("select", 0, 0), ("release", 0, True)] if i % 2 else [("release", 1, True)]
        for op in ops:
            assert _step(fast, held[0], op) == _step(slow, held[1], op), (i, op)
        fast._check_invariants()
        most = max(most, fast._filed)
    assert most <= 2 * 4 + 32 + 1
