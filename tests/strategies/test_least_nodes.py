"""LeastConnections' and LeastResponseTime's entries in each build (issue 15, session 7).

Pure Python files tuples on a ``heapq`` heap; compiled (mypyc), :class:`_Node` objects chained
in their runs, and the release that re-files the endpoint picked last updates its node in place
(``strategies.least``). Checked here in whichever build runs: the entries' shape; that a
sequential select+release leaves the index as it found it, the same node re-filed (compiled) or
a fresh tuple (pure); that random traffic (out-of-order releases, failures, missing elapsed
times, avoid, weight and membership changes) keeps every invariant, the chain included
(``_check_invariants``); and that the lease keeps the clock's own reading, as pure Python
always did (compiled, main unboxed a float reading and boxed it again, and turned an int one
into a float).
"""

from __future__ import annotations

import contextlib
import itertools
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.strategies import least
from balancekit.strategies.least import _Node

STRATEGIES = ["LeastConnections", "LeastResponseTime"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(name: str, endpoints: list[bk.Endpoint], clock: Any) -> Any:
    if name == "LeastConnections":
        return bk.LeastConnections(endpoints, clock=clock)
    return bk.LeastResponseTime(endpoints, clock=clock)


def pool(n: int) -> list[bk.Endpoint]:
    return [bk.Endpoint(f"10.0.0.{i}:80", weight=1 + i % 5) for i in range(n)]


@pytest.mark.parametrize("name", STRATEGIES)
def test_entries_have_one_shape_per_build(name: str) -> None:
    lb = make(name, pool(10), Clock())
    lease = lb.select()
    lb.release(lease, ok=True, elapsed=0.001)
    expected = _Node if least._NATIVE else tuple
    assert lb._heap and all(type(entry) is expected for entry in lb._heap)
    lb._check_invariants()


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_sequential_release_refiles_in_place_compiled(name: str) -> None:
    """Compiled, the endpoint's node is re-filed, not replaced: no entry allocated per request.
    Pure Python files a fresh tuple (tuples are immutable)."""
    lb = make(name, pool(10), Clock())
    for _ in range(40):  # past the first picks, into the steady state
        lb.release(lb.select(), ok=True, elapsed=0.001)
    for _ in range(40):
        lease = lb.select()
        state = lb._outstanding[lease._token]
        before = state.rank
        lb.release(lease, ok=True, elapsed=0.001)
        assert (state.rank is before) is least._NATIVE
        assert state.rank[3] is state
    lb._check_invariants()


@pytest.mark.parametrize("name", STRATEGIES)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 300))
@settings(max_examples=60, deadline=None)
def test_random_traffic_keeps_the_invariants(name: str, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    clock = Clock()
    endpoints = pool(rng.choice([1, 2, 3, 7, 12]))
    lb = make(name, endpoints, clock)
    out: list[bk.Lease] = []
    added = 0
    for _ in range(steps):
        clock.now += rng.choice([0.0, 1e-6, 0.004, 0.3])
        roll = rng.random()
        if roll < 0.5 or not out:
            avoid = (rng.choice(endpoints).address,) if rng.random() < 0.05 else ()
            with contextlib.suppress(bk.NoEndpointAvailable):
                out.append(lb.select(avoid=avoid))
            if out and rng.random() < 0.6:  # sequential, mostly
                lease = out.pop()
                elapsed = rng.choice([None, 0.0, 0.001, 0.02, 2.0])
                lb.release(lease, ok=rng.random() > 0.1, elapsed=elapsed)
        elif roll < 0.9:
            lease = out.pop(rng.randrange(len(out)))  # out of order
            lb.release(lease, ok=rng.random() > 0.1, elapsed=rng.choice([None, 0.001, 0.05]))
        else:
            live = list(lb.endpoints)
            change = rng.random()
            if change < 0.4 and live:
                lb.set_weight(rng.choice(live).address, rng.choice([1, 2, 3]))
            elif change < 0.7:
                added += 1
                lb.add(bk.Endpoint(f"10.0.1.{added}:80", weight=rng.choice([1, 2])))
            elif len(live) > 1:
                lb.remove(rng.choice(live).address)
        lb._check_invariants()
    for lease in out:
        lb.release(lease)
    lb._check_invariants()


@pytest.mark.parametrize("name", STRATEGIES)
def test_the_lease_keeps_the_clocks_reading(name: str) -> None:
    """An int clock gives float start times (every clock's readings are floats in both builds:
    balancekit._clock), a float clock the float it returned."""
    ticks = itertools.count(1)
    lb = make(name, pool(3), lambda: next(ticks))
    lease = lb.select()
    assert type(lease.started) is float and lease.started.is_integer()
    lb.release(lease, ok=True, elapsed=0.001)
    reading = 12345.678
    lb = make(name, pool(3), lambda: reading)
    lease = lb.select()
    assert type(lease.started) is float and lease.started == reading  # (compiled: reboxed)
    lb.release(lease)
