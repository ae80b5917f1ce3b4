"""An incremental consistent-hash ring: sorted points in hash buckets, O(1) lookup, O(1) per point.

The ring of Karger et al. (STOC 1997) as IPHash and Ketama use it, stored so that a membership
change touches only the points that change. The point space (``width`` bits) is cut into
``2**bits`` equal buckets by the top bits of a point; bucket b is one tuple
``(p0, .., pk-1, id0, .., idk-1)`` of its points in order and their owners' ids (``slots[id]``;
ints only, so the garbage collector does not track the buckets). A lookup reads
one bucket and bisects a handful of points (``bisect`` with ``hi=k``); if none is at or after
the hash it takes the first point of the next non-empty bucket.

Why this and not ``sortedcontainers.SortedList`` (measured in docs/benchmarks.md, "Membership
changes"): a SortedList lookup bisects two levels (~11 + 10 comparisons at 1.6M points) where a
bucket has ~4 points, and its index does not give O(1) lookups; measured at 1.6M points
(``benchmarks/bench_ring_structures.py``) its lookups were 5x and its changes 28x slower.
Why tuples of ``int`` and not an ``array('Q')``:
``bisect`` on an array boxes every element it compares (~2x slower lookups); the price is ~70
bytes per point instead of the ~26 of flat arrays, and lookups 1.1-1.6x slower than those (more
cache misses; docs/benchmarks.md). The bucket count follows the ring's size (4 points per bucket
on average, laid out again when that leaves 1..16), so lookups stay O(1) and the re-layout is
amortised.

Writers (under the balancer's lock) never change a bucket in place: they build the new tuple
and store it with one list assignment, so a lock-free reader sees either the old bucket or the
new one, never half of a change.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any

from ..._state import EndpointState

__all__ = ["PointRing"]

Bucket = tuple[Any, ...]  # (points as int, then their owners as EndpointState)
_EMPTY: Bucket = ()
#: Points per bucket: the layout aims at TARGET and is redone when the average leaves LOW..HIGH.
TARGET, LOW, HIGH = 4, 1, 16


def _bits_for(count: int) -> int:
    return max(1, (max(count, 1) // TARGET).bit_length())


class PointRing:
    """Sorted ``(point, owner)`` pairs of a ``width``-bit ring; equal points in ``first`` order.

    ``first(a, b)`` says whether owner ``a`` goes before owner ``b`` on an equal point (the one a
    lookup lands on first). ``past_equal`` makes a lookup skip a point equal to the hash
    (uhashring's ``bisect_right``).
    """

    __slots__ = ("bits", "buckets", "count", "free", "ids", "mask", "past_equal", "shift", "slots")

    def __init__(self, width: int, count: int = 0, *, past_equal: bool = False) -> None:
        self.bits = min(_bits_for(count), width - 4)
        self.shift = width - self.bits
        self.mask = (1 << self.bits) - 1
        self.buckets: list[Bucket] = [_EMPTY] * (1 << self.bits)
        self.count = 0
        self.past_equal = past_equal
        # Owners by id: buckets hold ints only, so the garbage collector untracks them (with
        # the owners themselves in the tuples, every full collection walked every bucket).
        # A freed id keeps its state until reused, so a reader of an old bucket never finds None.
        self.slots: list[EndpointState] = []
        self.ids: dict[EndpointState, int] = {}
        self.free: list[int] = []

    # -- reading (lock-free) ------------------------------------------------------------------

    def owner_at(self, hashed: int) -> EndpointState | None:
        """The owner of the first point at (or, ``past_equal``, after) ``hashed``, wrapping."""
        buckets = self.buckets
        index = hashed >> self.shift
        bucket = buckets[index]
        size = len(bucket) >> 1
        search = bisect_right if self.past_equal else bisect_left
        at = search(bucket, hashed, 0, size)
        if at < size:
            return self.slots[bucket[size + at]]
        mask = self.mask
        for _ in range(mask + 1):
            index = (index + 1) & mask
            bucket = buckets[index]
            if bucket:
                return self.slots[bucket[len(bucket) >> 1]]
        return None

    def find(self, hashed: int, accept: Callable[[EndpointState], bool]) -> EndpointState | None:
        """The first owner clockwise from ``hashed`` (as :meth:`owner_at` starts) that ``accept``
        takes, looking at every point once; None if none is taken. (A loop, not a generator:
        abandoning a generator suspended in its loop cost ~10 us per call on CPython 3.11.)"""
        buckets, mask, slots = self.buckets, self.mask, self.slots
        first = hashed >> self.shift
        bucket = buckets[first]
        size = len(bucket) >> 1
        search = bisect_right if self.past_equal else bisect_left
        start = search(bucket, hashed, 0, size)
        for at in range(size + start, 2 * size):
            if accept(slots[bucket[at]]):
                return slots[bucket[at]]
        index = first
        for _ in range(mask):
            index = (index + 1) & mask
            bucket = buckets[index]
            for at in range(len(bucket) >> 1, len(bucket)):
                if accept(slots[bucket[at]]):
                    return slots[bucket[at]]
        bucket = buckets[first]  # back where we started: the points before ``hashed``
        size = len(bucket) >> 1
        for at in range(size, size + min(start, size)):
            if accept(slots[bucket[at]]):
                return slots[bucket[at]]
        return None

    def items(self) -> list[tuple[int, EndpointState]]:
        """Every ``(point, owner)`` in ring order (equal points in ``first`` order)."""
        out: list[tuple[int, EndpointState]] = []
        slots = self.slots
        for bucket in self.buckets:
            size = len(bucket) >> 1
            out.extend(zip(bucket[:size], [slots[i] for i in bucket[size:]], strict=True))
        return out

    # -- writing (under the balancer's lock) -------------------------------------------------

    def needs_relayout(self, count: int) -> bool:
        """Whether a ring of ``count`` points should be laid out afresh (bucket load off range)."""
        buckets = len(self.buckets)
        return count > HIGH * buckets or (buckets > 2 and count < LOW * buckets)

    def insert(
        self,
        state: EndpointState,
        points: list[int],
        first: Callable[[EndpointState, EndpointState], bool],
    ) -> None:
        """Add ``points`` owned by ``state``; one copy of a ~4-point bucket per point."""
        ident = self.ids.get(state)
        if ident is None:
            if self.free:
                ident = self.free.pop()
                self.slots[ident] = state
            else:
                ident = len(self.slots)
                self.slots.append(state)
            self.ids[state] = ident
        buckets, shift, slots = self.buckets, self.shift, self.slots
        for point in points:
            index = point >> shift
            bucket = buckets[index]
            size = len(bucket) >> 1
            at = bisect_left(bucket, point, 0, size)
            while at < size and bucket[at] == point and first(slots[bucket[size + at]], state):
                at += 1
            end = size + at
            buckets[index] = (*bucket[:at], point, *bucket[at:end], ident, *bucket[end:])
        self.count += len(points)

    def delete(self, state: EndpointState, points: list[int]) -> None:
        """Remove ``points`` owned by ``state`` (each must be there)."""
        ident = self.ids[state]
        buckets, shift = self.buckets, self.shift
        for point in points:
            index = point >> shift
            bucket = buckets[index]
            size = len(bucket) >> 1
            at = bisect_left(bucket, point, 0, size)
            while bucket[size + at] != ident:  # equal points of other owners first
                at += 1
            end = size + at
            buckets[index] = (*bucket[:at], *bucket[at + 1 : end], *bucket[end + 1 :])
        self.count -= len(points)

    def forget(self, state: EndpointState) -> None:
        """Free the id of ``state``, which owns no point now (its slot keeps it until reused)."""
        ident = self.ids.pop(state, None)
        if ident is not None:
            self.free.append(ident)

    def fill(self, owners: list[EndpointState], packed: list[int], rank_bits: int) -> None:
        """Lay out a new ring at once from sorted ``(point << rank_bits) | rank`` values, where
        ``rank`` indexes ``owners`` (the build from scratch)."""
        rank_mask = (1 << rank_bits) - 1
        self.slots = list(owners)
        ident = list(range(len(owners)))  # one int object per id, shared by all its points
        self.ids = {}
        for rank, state in enumerate(owners):
            self.ids.setdefault(state, ident[rank])
        self.free = []
        buckets = self.buckets
        shift = self.shift + rank_bits
        count = len(packed)
        lo = 0
        while lo < count:
            index = packed[lo] >> shift
            hi = bisect_left(packed, (index + 1) << shift, lo)
            group = packed[lo:hi]
            buckets[index] = (
                *[value >> rank_bits for value in group],
                *[ident[value & rank_mask] for value in group],
            )
            lo = hi
        self.count = count
