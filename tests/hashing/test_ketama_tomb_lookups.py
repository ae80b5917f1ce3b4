"""Ketama's lookups while tombstones are on the ring (issue 11, helper "ketamalive").

After a weight change, every other server keeps its digests past its new count on the ring as
dead points (``_tombs``). A lookup that lands on a live point must cost what it costs on a ring
without dead points, and one that lands on a dead point steps on through the base
(``Tombs.walk``) instead of the general walk (``RingView.find_live``, a closure call and an
``array.index`` per point). Counted, not timed: the calls a lookup makes (``sys.setprofile``,
Python and C calls) against a ring built from scratch with the same weights. On main every
lookup made at least one more call (``dict.get`` of the server's dead tail) and a dead landing
~20 more: 14,737 calls for 2,000 keys against 12,001 (now 12,047: one call a dead landing).
Speed itself: ``benchmarks/bench_callgrind.py --tombs merged`` (docs/benchmarks.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

import balancekit as bk
from balancekit.strategies.hashing import ketama

POOL = [f"10.7.{i >> 8}.{i & 255}:11211" for i in range(300)]
KEYS = [f"key-{i}" for i in range(2000)]


def calls(lookup: Callable[[str], Any], keys: list[str]) -> int:
    """Python and C calls made by ``lookup`` over ``keys``."""
    made = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal made
        if event in ("call", "c_call"):
            made += 1

    sys.setprofile(profile)
    try:
        for key in keys:
            lookup(key)
    finally:
        sys.setprofile(None)
    return made


def merged(lb: bk.Ketama) -> bk.Ketama:
    """``lb`` with its pending changes merged into the base (tombstones stay)."""
    lb._ring.settle(now=True)
    lb._publish()
    assert not lb._view.dirty
    return lb


def with_tombstones(compat: ketama.Compat) -> tuple[bk.Ketama, bk.Ketama]:
    """One server of 300 equal ones set to weight 2 (the others drop from 40 digests to 39:
    4 dead points of 160 each), and the ring built from scratch with those weights."""
    lb = bk.Ketama(POOL, compat=compat)
    lb.set_weight(POOL[7], 2)
    fresh = bk.Ketama(
        [bk.Endpoint(a, weight=2 if i == 7 else 1) for i, a in enumerate(POOL)], compat=compat
    )
    assert lb._view.tombs is not None and fresh._view.tombs is None
    return merged(lb), fresh


@pytest.mark.skipif(bk.compiled, reason="profile hooks see the pure build's calls only")
@pytest.mark.parametrize("compat", ["libketama", "uhashring"])
def test_a_lookup_with_tombstones_makes_no_more_calls_than_without(
    compat: ketama.Compat,
) -> None:
    lb, fresh = with_tombstones(compat)
    assert [lb.lookup(k) for k in KEYS] == [fresh.lookup(k) for k in KEYS]  # also fills tails
    extra = calls(lb.lookup, KEYS) - calls(fresh.lookup, KEYS)
    # One call (Tombs.walk) a lookup that lands on a dead point: 4 of 160 per server, ~2.5 %.
    assert 0 <= extra <= len(KEYS) // 20


@pytest.mark.parametrize("compat", ["libketama", "uhashring"])
def test_the_walk_past_dead_points_is_the_exact_liveness_walk(
    compat: ketama.Compat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Tombs.walk`` from every base position a lookup lands on gives the first live point's
    owner, as ``Tombs.live`` (exact: a server's first copy of a value below its count) does,
    including a server that holds one value at a live and at a dead digest (forced here: the
    first word of digest 39 repeats digest 0's; by MD5 about one server in 10^5 at 10,000)."""
    real = ketama.ketama_points

    def doubled(address: str, digests: int, start: int = 0) -> list[int]:
        points = real(address, digests, start)
        if start <= 39 < digests:
            points[4 * (39 - start)] = real(address, 1)[0]
        return points

    monkeypatch.setattr(ketama, "ketama_points", doubled)
    lb = bk.Ketama(POOL[:50], compat=compat)
    lb.set_weight(POOL[7], 2)  # the others: 40 -> 39 digests, digest 39 dead but its value live
    view = merged(lb)._view
    tombs = view.tombs
    assert tombs is not None
    lb._check_invariants()
    points, ids, table = view.points, view.ids, view.table
    twice = 0
    for index in range(view.size):
        twice += points[index] == points[index + 1] and ids[index] == ids[index + 1]
        if index and points[index - 1] == points[index]:
            continue  # not where a lookup lands: it lands on the first of equal points
        expected = None
        for at in range(index, view.size):
            if tombs.live(points[at], table[ids[at]]):
                expected = table[ids[at]]
                break
        assert tombs.walk(view, index) is expected
    # Each server holds its doubled value twice on the ring. Compiled, Ketama calls its own
    # ketama_points (a patch of the module's attribute does not reach it): no doubles there,
    # the walk is checked against Tombs.live without them.
    assert twice == (0 if bk.compiled else 50)
    fresh = bk.Ketama(
        [bk.Endpoint(a, weight=2 if i == 7 else 1) for i, a in enumerate(POOL[:50])],
        compat=compat,
    )
    assert lb.continuum() == fresh.continuum()
    assert [lb.lookup(k) for k in KEYS] == [fresh.lookup(k) for k in KEYS]
