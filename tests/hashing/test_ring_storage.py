"""How the rings store their points (issue 11): flat and compact, changes pending only briefly.

The layout (``_points``, ``_view``): a flat sorted base read by every lookup, plus an overlay of
recent changes merged into it at 1/COMPACT of the ring. These pin what the lookups' speed rests
on without timing anything: the bytes a ring takes, and that the usual picks read the base only.
"""

from __future__ import annotations

import tracemalloc
from itertools import pairwise
from typing import Any

import pytest

import balancekit as bk
from balancekit.strategies.hashing import _points

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
