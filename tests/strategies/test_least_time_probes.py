"""LeastResponseTime's pure fast paths where a large pool spends its time after a pause: probes
and the stale entries they leave (issue 15, session 8).

At 10,000 endpoints an endpoint of weight 1 is picked once in ~30,000 picks, so after a pause of
a second (or under a slow run: valgrind) most picks are probes, and the probed endpoints'
entries surface stale at the top of the heap afterwards. The pure select and release now do a
probe's bookkeeping (``_note_oldest``, the probe's step) and re-file a stale top that heads a
run and sorts last in it inline, and ``_rereference`` takes the best estimate in a loop instead
of ``min(key=)``. These tests drive large pools through probe storms against the documented scan
(``Scan`` of test_least_time_index.py: the general path, no index), and the reference's loop
against ``min(key=)`` itself (which endpoint among equals becomes the best decides when the
reference is looked at again, so it must be the same one).
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk

from .test_least_time_index import Clock, Scan


def _drive(lb: Any, clock: Clock, rng: random.Random, steps: int) -> list[object]:
    """Mostly sequential traffic with some overlap, and pauses past ``probe_interval``."""
    held: list[bk.Lease] = []
    log: list[object] = []
    for _ in range(steps):
        roll = rng.random()
        clock.now += rng.choice([1e-5, 1e-5, 1e-4]) if roll > 0.02 else rng.choice([0.6, 1.2, 3.0])
        if roll < 0.55 or not held:
            lease = lb.select()
            held.append(lease)
            log.append((lease.address, lease.started))
        elif roll < 0.97:
            lease = held.pop(0 if rng.random() < 0.8 else rng.randrange(len(held)))
            lb.release(lease, ok=rng.random() < 0.95, elapsed=rng.choice([0.001, 0.001, 0.004]))
        else:
            lb.cancel(held.pop())
    return log


@pytest.mark.parametrize("seed", range(6))
def test_probe_storms_pick_as_the_documented_scan(seed: int) -> None:
    rng = random.Random(seed)
    endpoints = [bk.Endpoint(f"h{i}:80", weight=1 + i % 3) for i in range(rng.choice([12, 40]))]
    tolerance = rng.choice([0.0, 0.5])
    clocks = Clock(), Clock()
    fast = bk.LeastResponseTime(endpoints, clock=clocks[0], tolerance=tolerance)
    slow = Scan(endpoints, clock=clocks[1], tolerance=tolerance)
    logs = []
    for lb, clock in ((fast, clocks[0]), (slow, clocks[1])):
        logs.append(_drive(lb, clock, random.Random(seed + 100), 3000))
    assert logs[0] == logs[1]
    assert fast.stats() == slow.stats()
    assert fast._best is not None and slow._best is not None
    assert fast._best.endpoint.address == slow._best.endpoint.address
    fast._check_invariants()


def test_a_probe_storm_happens_and_leaves_stale_tops_refiled_in_their_runs() -> None:
    """The case the inlined paths are for: after a pause every endpoint is due, the picks probe
    in least-recently-picked order, and the probed entries, stale, are re-filed at the end of
    their runs when they surface (the heap keeps one entry per weight)."""
    clock = Clock()
    endpoints = [bk.Endpoint(f"h{i}:80", weight=1 + i % 3) for i in range(30)]
    lb = bk.LeastResponseTime(endpoints, clock=clock)
    for _ in range(300):
        clock.now += 1e-4
        lb.release(lb.select(), ok=True, elapsed=0.001)
    order = [state.endpoint.address for state in lb._last_picked]
    clock.now += 5.0  # every endpoint waited past probe_interval
    picks = []
    for _ in range(30):
        clock.now += 1e-4
        lease = lb.select()
        picks.append(lease.address)
        lb.release(lease, ok=True, elapsed=0.001)
        lb._check_invariants()
    assert picks == order  # thirty probes, least recently picked first
    assert not lb._probing
    for _ in range(300):  # then the stale entries surface and are re-filed
        clock.now += 1e-4
        lb.release(lb.select(), ok=True, elapsed=0.001)
        lb._check_invariants()
    assert len(lb._heap) == 3
    assert lb._filed == lb._live == 30


LATENCIES = st.one_of(
    st.none(),
    st.sampled_from([0.0, 0.001, 0.001, 0.002, 1, 2, math.inf, math.nan]),
    st.floats(min_value=0.0, max_value=1.0),
)


@settings(max_examples=200, deadline=None)
@given(
    latencies=st.lists(LATENCIES, min_size=1, max_size=12), tolerance=st.sampled_from([0.0, 0.5])
)
def test_the_reference_is_the_first_least_estimate_as_min_takes_it(
    latencies: list[Any], tolerance: float
) -> None:
    """``_rereference`` takes as best the endpoint ``min(measured, key=latency)`` would, in
    ``_live_states()`` order: the first of equal estimates, NaN compared as ``min`` does."""
    clock = Clock()
    endpoints = [bk.Endpoint(f"h{i}:80", weight=1 + i % 2) for i in range(len(latencies))]
    lb = bk.LeastResponseTime(endpoints, clock=clock, tolerance=tolerance)
    for state, latency in zip(lb._eligible_list, latencies, strict=True):
        state.latency = latency
    live = lb._live_states()
    measured = [state for state in live if state.latency is not None]
    expected = min(measured, key=lambda state: state.latency) if measured else None
    clock.now += 2.0
    lb._rereference(clock.now)
    assert lb._best is expected
