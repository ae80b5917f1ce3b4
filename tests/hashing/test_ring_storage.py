"""How the rings store their points (issue 11): flat and compact, changes pending only briefly.

The layout (``_points``, ``_view``): a flat sorted base read by every lookup, plus an overlay of
recent changes merged into it at 1/COMPACT of the ring. These pin what the lookups' speed rests
on without timing anything: the bytes a ring takes, and that the usual picks read the base only.
"""

from __future__ import annotations

import gc
import tracemalloc
from itertools import pairwise
from types import ModuleType
from typing import Any

import pytest

import balancekit as bk
from balancekit.strategies.hashing import _points, _view

RINGS = {
    "IPHash": bk.IPHash,
    "BoundedLoadHash": bk.BoundedLoadHash,
    "Ketama": bk.Ketama,
}
N = 300  # 48,000 points at 160 a server: above _points.SMALL, so changes stay pending


def pool(n: int) -> list[str]:
    return [f"10.7.{i >> 8}.{i & 255}:11211" for i in range(n)]


@pytest.mark.parametrize("name", sorted(RINGS))
def test_a_ring_takes_under_6_kb_per_endpoint(name: str) -> None:
    # 160 points an endpoint: 8 B a point, 8 B its owner, 4-8 B of bucket index (~3.5 KB), plus
    # the endpoint's own state. Per-bucket tuples of boxed ints took 11.4-11.9 KB.
    addresses = pool(N)
    tracemalloc.start()
    try:
        lb = RINGS[name](addresses)
        per_endpoint = tracemalloc.get_traced_memory()[0] / N
    finally:
        tracemalloc.stop()
    assert per_endpoint < 6_000, f"{per_endpoint:,.0f} B per endpoint"
    assert lb._ring.count == 160 * N


@pytest.mark.parametrize("name", sorted(RINGS))
def test_picks_read_the_flat_base_after_a_build_and_after_changes_that_cancel(name: str) -> None:
    lb: Any = RINGS[name](pool(N))
    assert not lb._view.dirty  # a build lays everything into the base
    lb.add("10.9.0.1:11211")
    assert lb._view.dirty  # one server's 160 points pending in the overlay
    lb.remove("10.9.0.1:11211")
    assert not lb._view.dirty  # dropped from the overlay again
    member = pool(N)[17]
    lb.mark_down(member)
    assert lb._view.dirty  # its base points deleted, pending
    lb.mark_up(member)
    assert not lb._view.dirty  # the same base points undeleted, not added anew
    lb._check_invariants()


@pytest.mark.parametrize("name", sorted(RINGS))
def test_the_overlay_is_merged_once_it_holds_1_in_64_points(name: str) -> None:
    lb: Any = RINGS[name](pool(N))
    pending, merging = [], []
    for i in range(16):  # 160 points each; 48,000 / 64 = 750: a merge starts, ends on the way
        lb.add(f"10.9.1.{i}:11211")
        view = lb._view
        pending.append(view.pending)
        merging.append(lb._ring.merging)
        lb._check_invariants()  # includes: pending * COMPACT < points, or a merge under way
    count = lb._ring.count
    assert all(p * _points.COMPACT < count for p, m in zip(pending, merging, strict=True) if not m)
    assert any(later < before for before, later in pairwise(pending))  # merged
    fresh = RINGS[name](list(lb.endpoints))
    assert lb.continuum() == fresh.continuum()


def _tracked_sizes(root: Any) -> dict[str, int]:
    """The largest referent count of each GC-tracked container type reachable from ``root``
    through the balancer's own objects and builtin containers (classes, functions and modules
    are not followed: they lead to the whole interpreter)."""
    followed = (list, dict, tuple, set, frozenset)
    seen: set[int] = set()
    stack = [root]
    largest: dict[str, int] = {}
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if not gc.is_tracked(obj):
            continue
        referents = gc.get_referents(obj)
        kind = type(obj).__name__
        largest[kind] = max(largest.get(kind, 0), len(referents))
        own = type(obj).__module__.startswith("balancekit")
        if own or type(obj) in followed:
            stack.extend(r for r in referents if not isinstance(r, type | ModuleType))
    return largest


@pytest.mark.parametrize("name", sorted(RINGS))
def test_no_collector_tracked_container_grows_with_the_points(name: str) -> None:
    # A full collection traverses every tracked container: the ring's 48,000 owner references
    # in one list made each of them O(points) (~200 ms at 10,000 endpoints). Checked on a
    # merged ring, with changes pending, and with a merge under way (two bases, two overlays).
    lb: Any = RINGS[name](pool(N))
    seen = set()
    for i in range(40):
        lb.add(f"10.9.2.{i}:11211")
        if i % 3 == 0:
            lb.remove(pool(N)[i])
        seen.add("merging" if lb._ring.merging else "pending" if lb._view.dirty else "merged")
        gc.collect()
        largest = _tracked_sizes(lb)
        assert max(largest.values()) <= 4 * N + 64, largest  # O(endpoints), not 160 x that
        if i == 39:
            lb.settle()
    assert seen == {"merging", "pending"}


@pytest.mark.parametrize("name", sorted(RINGS))
def test_pending_changes_send_few_lookups_to_the_overlay(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With changes pending (below 1/64 of the ring: no merge), a key whose way from its hash to
    # the next base point crosses no marked bucket is answered by the base alone, as on a
    # merged ring; only the rest resolve against the overlay (main resolved every one).
    lb: Any = RINGS[name](pool(N))
    for i in range(3):
        lb.add(f"10.9.3.{i}:11211")
    lb.remove(pool(N)[5])
    assert lb._view.dirty and not lb._ring.merging
    resolved = [0]
    resolve = _view.RingView.resolve

    def counted(view: Any, hashed: int, index: int) -> Any:
        resolved[0] += 1
        return resolve(view, hashed, index)

    monkeypatch.setattr(_view.RingView, "resolve", counted)
    keys = [f"user-{i}" for i in range(2000)]
    got = [lb.lookup(key).address for key in keys]
    assert resolved[0] < len(keys) // 10, resolved[0]  # 640 of 48,000 points pending: ~3%
    monkeypatch.undo()
    fresh = RINGS[name](list(lb.endpoints))
    assert got == [fresh.lookup(key).address for key in keys]
