"""The readable state of a consistent-hash ring: one immutable view, read without a lock.

See :mod:`._points` for the writer (how changes reach the overlay and how the overlay is merged
into a new base a chunk at a time). Karger et al., "Consistent hashing and random trees" (STOC
1997).

A view is a **base** (every point in one sorted ``array('Q')``, owners in a parallel list, a
bucket index ``starts[b]`` = the first position whose point is >= ``b << shift``, and a sentinel
point at the top whose owner is the first point's) plus an **overlay** keyed by the base's
buckets (:mod:`._trie`): for bucket ``b``, an entry ``(added points, their owners, removed
points, their owners)``, the added sorted with equal points in ``first`` order. A removed entry
names a point and its owner, not a position, so an overlay can be kept against a base that is
still being laid out. A lookup reads only the base while the overlay is empty (``dirty`` false);
otherwise it also skips removed base points and takes the nearer of the next live base point and
the next added point, looking only at the buckets between the key and that base point (the base
holds most points and has more buckets than points: about one or two buckets).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Generator
from itertools import accumulate
from typing import Any

from ..._state import EndpointState
from ._trie import Node, depth_for, get, items

__all__ = ["Entry", "First", "RingView", "index_of", "index_steps"]

First = Callable[[EndpointState, EndpointState], bool]
#: What changed in one bucket: added points, their owners, removed points, their owners.
Entry = tuple[tuple[int, ...], tuple[Any, ...], tuple[int, ...], tuple[Any, ...]]
#: Buckets a lookup reads one by one before it asks the trie for its next entry instead.
NEAR = 6
#: Work done between two yields of the chunked merge (points copied or indexed).
CHUNK = 2048


def shift_for(size: int, width: int) -> int:
    """The bucket shift of a base of ``size`` points: at least as many buckets as points."""
    return width - min(max(1, size.bit_length()), width - 1)


def index_steps(points: array[int], size: int, width: int) -> Generator[int, None, array[int]]:
    """Lay out ``starts`` for sorted ``points`` (``starts[b]``: the first position whose point
    is >= ``b << shift``), yielding the work done every :data:`CHUNK` points."""
    shift = shift_for(size, width)
    buckets = 1 << (width - shift)
    starts = array("I", [size]) * buckets
    following = 0  # the first bucket whose start is not set yet
    for low in range(0, size, CHUNK):
        high = min(size, low + CHUNK)
        for index in range(low, high):
            bucket = points[index] >> shift
            while following <= bucket:
                starts[following] = index
                following += 1
        yield high - low
    return starts


def index_of(points: array[int], size: int, width: int) -> tuple[int, array[int]]:
    """``(shift, starts)`` for sorted ``points``, at once (a count per bucket, then sums)."""
    shift = shift_for(size, width)
    counts = [0] * ((1 << (width - shift)) + 1)
    for point in points[:size]:
        counts[(point >> shift) + 1] += 1
    return shift, array("I", accumulate(counts[:-1]))


class RingView:
    """One published state of the ring (never changed once readers can see it)."""

    __slots__ = (
        "added",
        "buckets",
        "depth",
        "dirty",
        "first",
        "mask",
        "owners",
        "past_equal",
        "points",
        "removed",
        "root",
        "shift",
        "size",
        "starts",
        "width",
    )

    def __init__(
        self,
        width: int,
        past_equal: bool,
        first: First | None,
        points: array[int],
        owners: list[Any],  # EndpointState, and the sentinel's (None on an empty ring)
        index: tuple[int, array[int]] | None = None,
        overlay: tuple[Node | None, int, int] = (None, 0, 0),  # (root, added, removed)
    ) -> None:
        self.width = width
        self.size = len(points) - 1  # without the sentinel
        self.points = points
        self.owners = owners
        self.shift, self.starts = index if index is not None else index_of(points, self.size, width)
        self.buckets = len(self.starts)
        self.depth = depth_for(width - self.shift)
        self.mask = (1 << width) - 1
        self.past_equal = past_equal
        self.first = first
        self.root, self.added, self.removed = overlay
        self.dirty = bool(self.added or self.removed) or not self.size  # read the slow way

    @property
    def count(self) -> int:
        return self.size - self.removed + self.added

    @property
    def pending(self) -> int:
        """Points in the overlay (added plus removed): what a merge would fold into the base."""
        return self.added + self.removed

    def base_at(self, hashed: int, past_equal: bool) -> int:
        """The first base position at (``past_equal``: after) ``hashed``; ``size`` past the top."""
        points = self.points
        index = self.starts[hashed >> self.shift]
        if past_equal:
            while points[index] <= hashed:
                index += 1
        else:
            while points[index] < hashed:
                index += 1
        return index if index < self.size else self.size

    def entry(self, bucket: int) -> Entry | None:
        entry: Entry | None = get(self.root, bucket, self.depth)
        return entry

    def dead(self, entry: Entry, index: int) -> bool:
        """Whether base position ``index`` (in ``entry``'s bucket) is removed. With copies of
        one (point, owner) in the base, the first ones are the removed ones."""
        removed = entry[2]
        point = self.points[index]
        if point not in removed:
            return False
        owner = self.owners[index]
        times = sum(1 for p, o in zip(removed, entry[3], strict=True) if p == point and o is owner)
        rank, before, points, owners = 0, index - 1, self.points, self.owners
        while times and before >= 0 and points[before] == point:
            rank += owners[before] is owner
            before -= 1
        return rank < times

    def owner_at(self, hashed: int) -> EndpointState | None:
        """The owner of the first point at (or, ``past_equal``, after) ``hashed``, wrapping."""
        return self.resolve(hashed, self.base_at(hashed, self.past_equal))

    def resolve(self, hashed: int, index: int) -> EndpointState | None:
        """The owner for ``hashed`` given ``index``, its base position: the nearer of the next
        live base point and the next added one (on an equal point, ``first`` decides)."""
        size, points, shift, root, depth = self.size, self.points, self.shift, self.root, self.depth
        threshold = hashed + 1 if self.past_equal else hashed
        base: EndpointState | None = None
        at_base = 0
        if size > self.removed:
            index = 0 if index >= size else index
            if self.removed:
                entry = get(root, points[index] >> shift, depth)
                while entry is not None and entry[2] and self.dead(entry, index):
                    index = index + 1 if index + 1 < size else 0
                    entry = get(root, points[index] >> shift, depth)
            at_base, base = points[index], self.owners[index]
        if not self.added:
            return base
        buckets, start = self.buckets, hashed >> shift
        if base is None:
            span = buckets  # the whole way round (and back into the first bucket)
        else:
            span = ((at_base >> shift) - start) % buckets
            if not span and at_base < threshold:
                span = buckets
        extra: EndpointState | None = None
        at_extra = 0
        near = min(span, NEAR)
        for step in range(near + 1):  # usually one or two buckets
            bucket = start + step
            entry = get(root, bucket - buckets if bucket >= buckets else bucket, depth)
            if entry is None or not entry[0]:
                continue
            added = entry[0]
            at = bisect_left(added, threshold) if not step else 0
            if at < len(added):
                at_extra, extra = added[at], entry[1][at]
                break
        else:
            if span > near:  # further: the trie's next entries, skipping empty subtrees
                found = self._next_added(start + near + 1, start + span)
                if found is not None:
                    at_extra, extra = found
        if extra is None:
            return base
        if base is None:
            return extra
        mask = self.mask
        near_base, near_extra = (at_base - threshold) & mask, (at_extra - threshold) & mask
        first = self.first
        if near_extra < near_base or (
            near_extra == near_base and first is not None and first(extra, base)
        ):
            return extra
        return base

    def _next_added(self, low: int, high: int) -> tuple[int, EndpointState] | None:
        """The first added point in buckets ``low..high`` (counted past the top: wrapping)."""
        buckets = self.buckets
        for base in (0, buckets):  # from ``low`` to the top, then from 0 (wrapped)
            if low - base >= buckets or high < base:
                continue
            for bucket, entry in items(self.root, self.depth, max(low - base, 0)):
                if bucket + base > high:
                    break
                if entry[0]:
                    return entry[0][0], entry[1][0]
        return None

    def merged(self, entry: Entry, low: int, high: int, lo: int, hi: int) -> list[tuple[int, Any]]:
        """Base positions ``low:high`` less the removed ones, and the added ``lo:hi`` of
        ``entry``, in ring order (an added point goes before an equal base point if ``first``
        says so)."""
        points, owners, first = self.points, self.owners, self.first
        added, added_owners = entry[0], entry[1]
        check = bool(entry[2])
        out: list[tuple[int, Any]] = []
        for index in range(low, high):
            if check and self.dead(entry, index):
                continue
            point, owner = points[index], owners[index]
            while lo < hi and (
                added[lo] < point
                or (added[lo] == point and first is not None and first(added_owners[lo], owner))
            ):
                out.append((added[lo], added_owners[lo]))
                lo += 1
            out.append((point, owner))
        out.extend(zip(added[lo:hi], added_owners[lo:hi], strict=True))
        return out

    def _bounds(self, bucket: int) -> tuple[int, int]:
        following = bucket + 1
        return self.starts[bucket], (
            self.starts[following] if following < self.buckets else self.size
        )

    def find(self, hashed: int, accept: Callable[[EndpointState], bool]) -> EndpointState | None:
        """The first owner clockwise from ``hashed`` (as a lookup starts) that ``accept`` takes,
        looking at every point once; None if none is taken. (A loop, not a generator:
        abandoning a generator suspended in its loop cost ~10 us per call on CPython 3.11.)"""
        found = self._scan(hashed, self.past_equal, accept)
        return found[1] if found is not None else None

    def _scan(
        self, hashed: int, past_equal: bool, accept: Callable[[Any], bool]
    ) -> tuple[int, Any] | None:
        size, points, owners = self.size, self.points, self.owners
        start = self.base_at(hashed, past_equal)
        if not self.dirty:
            for step in range(size):
                index = start + step
                if index >= size:
                    index -= size
                if accept(owners[index]):
                    return points[index], owners[index]
            return None
        # Bucket by bucket clockwise from the key's, and back into its bucket below the key.
        threshold = hashed + 1 if past_equal else hashed
        buckets, first_bucket, root, depth = (
            self.buckets,
            hashed >> self.shift,
            self.root,
            self.depth,
        )
        for step in range(buckets + 1):
            bucket = first_bucket + step
            bucket = bucket - buckets if bucket >= buckets else bucket
            low, high = self._bounds(bucket)
            entry: Entry | None = get(root, bucket, depth)
            lo, hi = 0, len(entry[0]) if entry is not None else 0
            if not step:
                low = min(start, high)
                lo = bisect_left(entry[0], threshold) if entry is not None else 0
            elif step == buckets:
                high = min(high, start)
                hi = bisect_left(entry[0], threshold) if entry is not None else 0
            if entry is None:
                for index in range(low, high):
                    if accept(owners[index]):
                        return points[index], owners[index]
                continue
            for point, owner in self.merged(entry, low, high, lo, hi):
                if accept(owner):
                    return point, owner
        return None

    def items(self) -> list[tuple[int, EndpointState]]:
        """Every ``(point, owner)`` in ring order (equal points in ``first`` order)."""
        points, owners, size = self.points, self.owners, self.size
        if not self.dirty:
            return list(zip(points[:size], owners[:size], strict=True))
        out: list[tuple[int, EndpointState]] = []
        done = 0
        for bucket, entry in items(self.root, self.depth):
            low, high = self._bounds(bucket)
            out.extend(zip(points[done:low], owners[done:low], strict=True))
            out.extend(self.merged(entry, low, high, 0, len(entry[0])))
            done = high
        out.extend(zip(points[done:size], owners[done:size], strict=True))
        return out

    def merge_steps(self) -> Generator[int, None, tuple[array[int], list[Any]]]:
        """The live points laid out as a new base (with its sentinel), a chunk at a time:
        yields the work done (points merged; a point copied by a slice counts 1/8) every
        :data:`CHUNK` or so. Built by appending, so its memory is touched a chunk at a time."""
        size, points, owners = self.size, self.points, self.owners
        out: array[int] = array("Q")
        kept: list[Any] = []
        raw = memoryview(points).cast("B")
        done = 0  # the next base position to copy

        def copy(high: int) -> Generator[int, None, None]:
            nonlocal done
            while done < high:
                take = min(high - done, CHUNK * 8)  # a slice copy is ~8x cheaper than a point
                out.frombytes(raw[8 * done : 8 * (done + take)])
                kept.extend(owners[done : done + take])
                done += take
                yield take // 8

        work = 0
        for bucket, entry in items(self.root, self.depth):
            low, high = self._bounds(bucket)
            if low - done >= CHUNK:
                yield from copy(low)
            elif low > done:
                out.frombytes(raw[8 * done : 8 * low])
                kept.extend(owners[done:low])
                done = low
            merged = self.merged(entry, low, high, 0, len(entry[0]))
            out.extend([point for point, _ in merged])
            kept.extend([owner for _, owner in merged])
            done = high
            work += len(merged) + 8
            if work >= CHUNK:
                yield work
                work = 0
        yield from copy(size)
        raw.release()
        assert len(out) == self.count, "the overlay's counts disagree with its entries"
        out.append(points[size])  # the same sentinel
        kept.append(kept[0] if kept else None)
        return out, kept

    def check(self) -> None:
        """Assert the layout: base sorted with its sentinel and index, the overlay in order."""
        points, owners, size = self.points, self.owners, self.size
        assert len(points) == len(owners) == size + 1
        assert points[size] == min(self.mask + 1, (1 << 64) - 1)
        assert owners[size] is (owners[0] if size else None)
        assert all(points[i] <= points[i + 1] for i in range(size))
        assert all(state is not None for state in owners[:size])
        assert self.shift == shift_for(size, self.width)
        for bucket, start in enumerate(self.starts):
            assert start == bisect_left(points, bucket << self.shift, 0, size)
        assert len(self.starts) >= size
        added = removed = 0
        for bucket, entry in items(self.root, self.depth):
            new, new_owners, gone, gone_owners = entry
            assert len(new) == len(new_owners) and len(gone) == len(gone_owners)
            assert all(p >> self.shift == bucket for p in (*new, *gone))
            assert list(new) == sorted(new) and None not in new_owners
            low, high = self._bounds(bucket)
            for point, owner in zip(gone, gone_owners, strict=True):  # each in the base
                times = sum(
                    1 for p, o in zip(gone, gone_owners, strict=True) if (p, o) == (point, owner)
                )
                copies = sum(
                    1 for i in range(low, high) if (points[i], owners[i]) == (point, owner)
                )
                assert times <= copies
                assert (point, owner) not in zip(new, new_owners, strict=True), (
                    "added and removed at once"
                )
            added, removed = added + len(new), removed + len(gone)
        assert (added, removed) == (self.added, self.removed)
        assert self.dirty == (bool(added or removed) or not size)
