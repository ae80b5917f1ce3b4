"""LeastResponseTime on least.py's index (sorted runs per weight merged on a heap) against an O(n)
scan of its documented rule.

The rule (LeastResponseTime's docstring): a pick probes the endpoint picked longest ago once it
has waited ``probe_interval``, else takes the eligible endpoint, not avoided, with the smallest
``(score, deadline, order)``, where ``score`` is ``in_flight * reference / weight`` for an
estimate within the tolerance of the reference (or none yet) and ``(in_flight + 1) * latency /
weight`` beyond it; deadlines and the virtual time move as in LeastConnections. ``Scan`` keeps
everything else of LeastResponseTime (the estimates, the reference and when it is taken again,
the probes) and replaces the index's pick by a scan of the eligible endpoints, through the
general ``select``/``release``; the two must agree pick for pick (and estimate for estimate)
over any sequence of selects (with ``avoid``), releases with any latency, failures,
cancellations, overrides, membership, weight and up/down changes and clock steps, with or without
passive health and slow start. Issue 15 moved LeastResponseTime from a heap of every endpoint to
this index.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit._state import EndpointState
from balancekit.strategies.least_time import min_step_gap

ADDRESSES = [f"h{i}:80" for i in range(8)]


class Scan(bk.LeastResponseTime):
    """The documented pick, O(n): a scan of the eligible endpoints by key, the index unused."""

    select = bk.BalancerBase.select  # the general path: _pick below
    release = bk.BalancerBase.release

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        with self._lock:
            now = self._clock()
            self._picks += 1
            if now >= self._refresh_at and (
                now >= self._due_at or self._picks - self._picks_at > self._live
            ):
                self._rereference(now)
            eligible = self._eligible_list
            if not eligible:
                raise self._nothing_available()
            first = next(iter(self._last_picked))  # picked longest ago (not the index)
            if now - first.picked_at >= self._probe_interval:
                self._probing.add(first)
                state = first
            else:
                state = min(eligible, key=self._scan_key)
            if avoid and state.endpoint.address in avoid:
                rest = [s for s in eligible if s.endpoint.address not in avoid]
                if not rest:
                    raise self._nothing_available(avoid)
                state = min(rest, key=self._scan_key)
            state.picked_at = now
            self._last_picked.move_to_end(state)
            self._take(state)
            return state

    def _scan_key(self, state: EndpointState) -> tuple[float, float, int]:
        latency = state.latency
        if latency is None or latency <= self._limit:
            score = state.load * self._reference / state.weight
        else:
            score = (state.load + 1) * latency / state.weight
        return (score, state.deadline, state.order)

    def _check_invariants(self) -> None:
        bk.BalancerBase._check_invariants(self)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


OPS = st.one_of(
    st.tuples(st.just("select"), st.integers(0, 255), st.sampled_from([0, 0, 0, 1, 2])),
    st.tuples(
        st.just("release"),
        st.integers(0, 63),
        st.booleans(),
        st.sampled_from([None, 0.0, 0.001, 0.002, 0.03, 0.1, 2.0]),
    ),
    st.tuples(st.just("cancel"), st.integers(0, 63)),
    st.tuples(st.just("override"), st.integers(0, 7)),
    st.tuples(st.just("add"), st.integers(0, 7), st.sampled_from([1, 1, 2, 3, 7])),
    st.tuples(st.just("remove"), st.integers(0, 7)),
    st.tuples(st.just("weight"), st.integers(0, 7), st.sampled_from([1, 2, 5])),
    st.tuples(st.just("down"), st.integers(0, 7)),
    st.tuples(st.just("up"), st.integers(0, 7)),
    st.tuples(st.just("tick"), st.sampled_from([0.001, 0.02, 0.07, 0.5, 1.5, 31.0])),
)


def _build(make: Any, weights: list[int], health: bool, tolerance: float, clock: Clock) -> Any:
    endpoints = [bk.Endpoint(a, weight=w) for a, w in zip(ADDRESSES, weights, strict=False)]
    lb = make(endpoints, clock=clock, tolerance=tolerance)
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
            lb.release(held.pop(op[1] % len(held)), ok=op[2], elapsed=op[3])
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
    tolerance=st.sampled_from([0.0, 0.5, 2.0]),
    ops=st.lists(OPS, max_size=120),
)
def test_least_response_time_picks_as_the_documented_scan(
    weights: list[int], health: bool, tolerance: float, ops: list[tuple[Any, ...]]
) -> None:
    clocks = Clock(), Clock()
    fast = _build(bk.LeastResponseTime, weights, health, tolerance, clocks[0])
    slow = _build(Scan, weights, health, tolerance, clocks[1])
    held: tuple[list[bk.Lease], list[bk.Lease]] = [], []
    for op in ops:
        if op[0] == "tick":
            clocks[0].now += op[1]
            clocks[1].now += op[1]
            continue
        assert _step(fast, held[0], op) == _step(slow, held[1], op), op
        fast._check_invariants()
    assert fast.stats() == slow.stats()


def test_sequential_traffic_keeps_one_heap_entry_per_weight() -> None:
    """Requests one at a time, as fast as each other: every release files its endpoint at the
    end of its weight's run, so the heap holds only the runs' first entries (5 here, whatever n)
    and each select+release is a popleft, an append and a heapreplace on those (O(1) in n). On a
    heap of every endpoint (before issue 15) it held all n entries and sifted through O(log n)
    of them per release."""
    clock = Clock()
    endpoints = [bk.Endpoint(f"h{i}:80", weight=1 + i % 5) for i in range(1000)]
    lb = bk.LeastResponseTime(endpoints, clock=clock)
    for _ in range(3000):
        clock.now += 0.0001
        lb.release(lb.select(), ok=True, elapsed=0.001)
    assert len(lb._heap) == 5
    assert sorted(len(run.entries) for run in lb._runs.values()) == [200] * 5
    lb._check_invariants()


def _random_op(rng: random.Random) -> tuple[Any, ...]:
    """One op of ``OPS``, drawn with selects and releases most of the time (long runs of
    concurrent traffic, where releases come back out of order)."""
    roll = rng.random()
    if roll < 0.4:
        return ("select", rng.randrange(256), rng.choice([0, 0, 0, 0, 1, 2]))
    if roll < 0.75:
        elapsed = rng.choice([None, 0.0, 0.001, 0.002, 0.03, 0.1, 2.0])
        return ("release", rng.randrange(64), rng.random() < 0.9, elapsed)
    if roll < 0.8:
        return ("cancel", rng.randrange(64))
    if roll < 0.82:
        return ("override", rng.randrange(8))
    if roll < 0.9:
        return ("tick", rng.choice([0.001, 0.02, 0.07, 0.5, 1.5, 31.0]))
    kind = rng.choice(["add", "remove", "weight", "down", "up"])
    if kind == "add":
        return ("add", rng.randrange(8), rng.choice([1, 1, 2, 3, 7]))
    if kind == "weight":
        return ("weight", rng.randrange(8), rng.choice([1, 2, 5]))
    return (kind, rng.randrange(8))


@pytest.mark.parametrize("seed", range(40))
def test_long_concurrent_runs_pick_as_the_documented_scan(seed: int) -> None:
    """As above over 600 ops, most of them selects and releases in any order: the paths that
    file a released endpoint at the end of its run, on the heap alone or not at all."""
    rng = random.Random(seed)
    weights = [rng.choice([1, 1, 2, 3]) for _ in range(rng.randint(2, 8))]
    tolerance = rng.choice([0.0, 0.5, 2.0])
    clocks = Clock(), Clock()
    fast = _build(bk.LeastResponseTime, weights, seed % 4 == 0, tolerance, clocks[0])
    slow = _build(Scan, weights, seed % 4 == 0, tolerance, clocks[1])
    held: tuple[list[bk.Lease], list[bk.Lease]] = [], []
    for _ in range(600):
        op = _random_op(rng)
        if op[0] == "tick":
            clocks[0].now += op[1]
            clocks[1].now += op[1]
            continue
        assert _step(fast, held[0], op) == _step(slow, held[1], op), op
        fast._check_invariants()
    assert fast.stats() == slow.stats()


def _step_of(gap: float, decay: float, min_step: float) -> float:
    """How far a sample ``gap`` seconds after the last one moves the estimate (the docstring's
    ``max(1 - exp(-gap / decay), min_step)``, as ``_on_release`` computes it)."""
    since = gap if gap > 0.0 else 0.0
    step = 1.0 - math.exp(-since / decay)
    return step if step > min_step else min_step


@settings(max_examples=2000, deadline=None)
@given(
    decay=st.floats(1e-9, 1e9),
    min_step=st.one_of(st.floats(1e-9, 1.0), st.sampled_from([1e-6, 0.1, 0.5, 0.999, 1.0])),
    fraction=st.one_of(
        st.floats(-1.0, 1.0, exclude_max=True),
        st.floats(1.0 - 1e-5, 1.0, exclude_max=True),
        st.just(0.0),
    ),
)
def test_a_gap_below_the_short_gap_steps_by_min_step(
    decay: float, min_step: float, fraction: float
) -> None:
    """Release skips ``exp`` for a gap below ``min_step_gap``: there the formula gives exactly
    ``min_step``, up to the last bit (the fast path and the general one learn the same)."""
    short = min_step_gap(decay, min_step)
    bound = decay * -math.log1p(-min_step) if min_step < 1.0 else math.inf
    assert short <= bound
    gap = short * fraction if short > 0.0 else -abs(fraction) - 1e-9
    assert gap < short or short == 0.0 == gap
    if gap < short:
        assert _step_of(gap, decay, min_step) == min_step


def test_the_short_gap_is_most_of_the_exact_bound_for_the_defaults() -> None:
    """For the defaults (decay 10 s, min_step 0.1) sequential gaps of up to ~1.05 s skip exp:
    the shortcut is used, not just safe."""
    assert min_step_gap(10.0, 0.1) == pytest.approx(10.0 * -math.log(0.9), rel=1e-5)
    assert min_step_gap(10.0, 1e-7) == 0.0  # too small a min_step: no shortcut
    assert min_step_gap(1e308, 0.999) == 0.0  # beyond the floats: no shortcut


@pytest.mark.parametrize("gap", [0.5, 1.0, 1.05, 1.1, 1.2, 3.0])
def test_fast_and_general_release_learn_the_same_estimate(gap: float) -> None:
    """A sample ``gap`` seconds after the last, through the inlined release (no exp below the
    short gap) and through the general path (always exp): the same estimate, bit for bit."""
    estimates = []
    for avoid in (frozenset(), frozenset({"nobody:0"})):
        clock = Clock()
        lb = bk.LeastResponseTime(["a:1"], clock=clock, probe_interval=100.0)  # no probe
        lb.release(lb.select(avoid=avoid), elapsed=0.004)
        clock.now += gap
        lease = lb.select(avoid=avoid)
        if avoid:  # the general path
            bk.BalancerBase.release(lb, lease, elapsed=0.001)
        else:
            lb.release(lease, elapsed=0.001)
        estimates.append(lb.stats()["a:1"].latency)
    assert estimates[0] == estimates[1]
