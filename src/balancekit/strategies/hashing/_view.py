"""The readable state of a consistent-hash ring: one immutable view, read without a lock.

See :mod:`._points` for the writer (how changes reach the overlay and how the overlay is merged
into a new base a chunk at a time). Karger et al., "Consistent hashing and random trees" (STOC
1997).

Nothing here scales with the ring in the garbage collector's eyes: every array that holds a
number per point is an ``array`` (not a container the collector traverses), owners are small
integer ids into ``table`` (one entry per endpoint), so a full collection costs O(endpoints),
not O(points).

A view is a **base**: every point in one sorted ``array('Q')``, its owner's id in a parallel
``array('I')``, a bucket index ``starts[b]`` = the first position whose point is
``>= b << shift``, and a sentinel point at the top whose owner is the first point's; plus an
**overlay** of the changes since the base was laid out, as flat sorted arrays: added points
(equal points in ``first`` order) with their owners' ids, removed points with their owners' ids
(a removed entry names a point and its owner, not a position, so an overlay can be kept against
a base that is still being laid out), and ``marks``, one byte per bucket of the base, set where
the overlay holds a point. A lookup finds its base position as on a merged ring; it reads the
overlay only if a bucket from its key's to that base point's is marked (the overlay holds 1/64
of the ring at most, so ~2% of keys): otherwise nothing pending can change its answer.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Generator
from itertools import accumulate, repeat
from operator import add
from typing import Any

from ..._state import EndpointState
from ._tombs import Tombs

__all__ = ["First", "Overlay", "RingView", "index_of", "index_steps"]

First = Callable[[EndpointState, EndpointState], bool]
#: Added points, their owner ids, removed points, their owner ids, the marked buckets.
Overlay = tuple["array[int]", "array[int]", "array[int]", "array[int]", bytearray]
#: Work done between two yields of the chunked merge (points copied or indexed).
CHUNK = 2048
#: Merge work per pending point (measured: placing one costs about what indexing 8 does).
PER_EVENT = 8


def shift_for(size: int, width: int) -> int:
    """The bucket shift of a base of ``size`` points: at least as many buckets as points."""
    return width - min(max(1, size.bit_length()), width - 1)


def empty_overlay(shift: int, width: int) -> Overlay:
    return array("Q"), array("I"), array("Q"), array("I"), bytearray(1 << (width - shift))


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
    """One published state of the ring (never changed once readers can see it; ``table`` only
    gains entries that no view sharing it refers to yet)."""

    __slots__ = (
        "add_ids",
        "add_points",
        "added",
        "buckets",
        "del_ids",
        "del_points",
        "dirty",
        "first",
        "ids",
        "marks",
        "mask",
        "past_equal",
        "points",
        "removed",
        "shift",
        "size",
        "starts",
        "table",
        "tombs",
        "width",
    )

    def __init__(
        self,
        width: int,
        past_equal: bool,
        first: First | None,
        points: array[int],
        ids: array[int],  # owner ids (into ``table``), the sentinel's too
        table: list[Any],  # id -> EndpointState (None: a free id)
        index: tuple[int, array[int]] | None = None,
        overlay: Overlay | None = None,
    ) -> None:
        self.width = width
        self.size = len(points) - 1  # without the sentinel
        self.points, self.ids, self.table = points, ids, table
        self.shift, self.starts = index if index is not None else index_of(points, self.size, width)
        self.buckets = len(self.starts)
        self.mask = (1 << width) - 1
        self.past_equal = past_equal
        self.first = first
        if overlay is None:
            overlay = empty_overlay(self.shift, width)
        self.add_points, self.add_ids, self.del_points, self.del_ids, self.marks = overlay
        self.added, self.removed = len(self.add_points), len(self.del_points)
        self.dirty = bool(self.added or self.removed) or not self.size  # read the overlay too
        self.tombs: Tombs | None = None  # Ketama's dead points (set before it publishes the view)

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

    def lower(self, point: int) -> int:
        """The first base position whose point is >= ``point`` (``size`` past the top)."""
        points = self.points
        index = self.starts[point >> self.shift]
        while index < self.size and points[index] < point:
            index += 1
        return index

    def clean(self, hashed: int, index: int) -> bool:
        """Whether nothing pending can change the answer of base position ``index`` for
        ``hashed``: no marked bucket from the key's to that point's (the picks inline it: one
        subscript when both are in one bucket, the usual case; ``bytearray.find`` costs ~20x
        a subscript, so it is kept for gaps of empty buckets)."""
        shift, marks = self.shift, self.marks
        bucket, top = hashed >> shift, self.points[index] >> shift
        return not (
            marks[bucket]
            or index >= self.size
            or (top != bucket and (marks[top] or self.marked(bucket + 1, top)))
        )

    def marked(self, low: int, high: int) -> bool:
        """Whether a bucket in ``low:high`` is marked."""
        return low < high and self.marks.find(1, low, high) >= 0

    def dead(self, index: int) -> bool:
        """Whether base position ``index`` is removed. With copies of one (point, owner) in the
        base, the first ones are the removed ones."""
        point, removed = self.points[index], self.del_points
        at = bisect_left(removed, point)
        if at == len(removed) or removed[at] != point:
            return False
        owner, removed_ids = self.ids[index], self.del_ids
        times = 0
        while at < len(removed) and removed[at] == point:
            times += removed_ids[at] == owner
            at += 1
        rank, before, points, ids = 0, index - 1, self.points, self.ids
        while times and before >= 0 and points[before] == point:
            rank += ids[before] == owner
            before -= 1
        return rank < times

    def owner_at(self, hashed: int) -> EndpointState | None:
        """The owner of the first point at (or, ``past_equal``, after) ``hashed``, wrapping."""
        return self.resolve(hashed, self.base_at(hashed, self.past_equal))

    def resolve(self, hashed: int, index: int) -> EndpointState | None:
        """The owner for ``hashed`` given ``index``, its base position: the nearer of the next
        live base point and the next added one (on an equal point, ``first`` decides)."""
        size, table = self.size, self.table
        threshold = hashed + 1 if self.past_equal else hashed
        base = -1
        at_base = 0
        if size > self.removed:
            index = 0 if index >= size else index
            if self.removed:
                while self.dead(index):
                    index = index + 1 if index + 1 < size else 0
            at_base, base = self.points[index], self.ids[index]
        if self.added:
            added = self.add_points
            at = bisect_left(added, threshold)
            at = 0 if at == len(added) else at
            at_extra, extra = added[at], self.add_ids[at]
            if base < 0:
                return table[extra]  # type: ignore[no-any-return]
            mask, first = self.mask, self.first
            near_base, near_extra = (at_base - threshold) & mask, (at_extra - threshold) & mask
            if near_extra < near_base or (
                near_extra == near_base and first is not None and first(table[extra], table[base])
            ):
                return table[extra]  # type: ignore[no-any-return]
        return table[base] if base >= 0 else None

    def find(self, hashed: int, accept: Callable[[EndpointState], bool]) -> EndpointState | None:
        """The first owner clockwise from ``hashed`` (as a lookup starts) that ``accept`` takes,
        looking at every point once; None if none is taken. (A loop, not a generator:
        abandoning a generator suspended in its loop cost ~10 us per call on CPython 3.11.)"""
        found = self._scan(hashed, self.past_equal, accept)
        return found[1] if found is not None else None

    def find_live(
        self, hashed: int, accept: Callable[[int, EndpointState], bool]
    ) -> EndpointState | None:
        """:meth:`find` with ``accept(point, owner)``: Ketama's walk past dead points."""
        found = self._scan(hashed, self.past_equal, accept, True)
        return found[1] if found is not None else None

    def _scan(
        self, hashed: int, past_equal: bool, accept: Callable[..., bool], pairs: bool = False
    ) -> tuple[int, Any] | None:
        size, points, ids, table = self.size, self.points, self.ids, self.table
        at = self.base_at(hashed, past_equal)
        if not self.dirty:
            for step in range(size):
                index = at + step
                if index >= size:
                    index -= size
                owner = table[ids[index]]
                if accept(points[index], owner) if pairs else accept(owner):
                    return points[index], owner
            return None
        # Two walks clockwise, merged by distance from the key: live base points, added points.
        threshold = hashed + 1 if past_equal else hashed
        added, added_ids, mask, first = self.add_points, self.add_ids, self.mask, self.first
        extra = bisect_left(added, threshold)
        extra = 0 if extra >= len(added) else extra
        index = 0 if at >= size else at
        base_left, extra_left, removed = size, len(added), self.removed
        while True:
            while base_left and removed and self.dead(index):
                base_left -= 1
                index = index + 1 if index + 1 < size else 0
            if base_left and extra_left:
                near_base = (points[index] - threshold) & mask
                near_extra = (added[extra] - threshold) & mask
                take_extra = near_extra < near_base or (
                    near_extra == near_base
                    and first is not None
                    and first(table[added_ids[extra]], table[ids[index]])
                )
            elif base_left or extra_left:
                take_extra = not base_left
            else:
                return None
            if take_extra:
                point, owner = added[extra], table[added_ids[extra]]
                extra_left -= 1
                extra = extra + 1 if extra + 1 < len(added) else 0
            else:
                point, owner = points[index], table[ids[index]]
                base_left -= 1
                index = index + 1 if index + 1 < size else 0
            if accept(point, owner) if pairs else accept(owner):
                return point, owner

    def items(self) -> list[tuple[int, EndpointState]]:
        """Every ``(point, owner)`` in ring order (equal points in ``first`` order)."""
        steps = self.merge_steps()
        try:
            while True:
                next(steps)
        except StopIteration as done:
            points, ids = done.value
        table = self.table
        return list(zip(points[:-1], [table[i] for i in ids[:-1]], strict=True))

    def merge_steps(self) -> Generator[int, None, tuple[array[int], array[int]]]:
        """The live points laid out as a new base (with its sentinel), a chunk at a time:
        yields the work done every :data:`CHUNK` units or so (a unit is about one point
        indexed by :func:`index_steps`: a pending point costs :data:`PER_EVENT`, a base point
        copied by a slice 1/8)."""
        size, points, ids, table, first = self.size, self.points, self.ids, self.table, self.first
        dead: list[int] = []  # base positions removed, ascending
        removed, removed_ids = self.del_points, self.del_ids
        at, work, count = 0, 0, len(removed)
        while at < count:  # the first copies of each removed (point, owner)
            point, index = removed[at], self.lower(removed[at])
            if at + 1 < count and removed[at + 1] == point:  # several: count owners
                following = at
                while following < count and removed[following] == point:
                    following += 1
                times = Counter(removed_ids[at:following])
                while index < size and points[index] == point:
                    if times[ids[index]] > 0:
                        times[ids[index]] -= 1
                        dead.append(index)
                    index += 1
            else:
                following, owner = at + 1, removed_ids[at]
                while ids[index] != owner:  # it is there: the first copy
                    index += 1
                dead.append(index)
            work += PER_EVENT * (following - at)
            at = following
            if work >= CHUNK:
                yield work
                work = 0
        dead.sort()
        added, added_ids = self.add_points, self.add_ids
        before: list[int] = []  # the base position each added point goes before
        for at in range(len(added)):
            point, index = added[at], self.lower(added[at])
            while (
                index < size
                and points[index] == point
                and not (first is not None and first(table[added_ids[at]], table[ids[index]]))
            ):
                index += 1
            before.append(index)
            work += PER_EVENT
            if work >= CHUNK:
                yield work
                work = 0
        out_points: array[int] = array("Q")
        out_ids: array[int] = array("I")
        done = 0  # the next base position to copy
        extra, gone = 0, 0
        inserts, deaths = len(before), len(dead)
        dead.append(size + 1)  # past every insert
        before.append(size + 1)
        while extra < inserts or gone < deaths:
            if before[extra] <= dead[gone]:
                position, skip = before[extra], False
            else:
                position, skip = dead[gone], True
            while position - done > CHUNK * 8:  # a slice copy is ~8x cheaper than a point
                out_points += points[done : done + CHUNK * 8]
                out_ids += ids[done : done + CHUNK * 8]
                done += CHUNK * 8
                yield CHUNK
            out_points += points[done:position]
            out_ids += ids[done:position]
            work += PER_EVENT + (position - done) // 8
            if skip:
                done, gone = position + 1, gone + 1
            else:
                out_points.append(added[extra])
                out_ids.append(added_ids[extra])
                done, extra = position, extra + 1
            if work >= CHUNK:
                yield work
                work = 0
        while size - done > CHUNK * 8:
            out_points += points[done : done + CHUNK * 8]
            out_ids += ids[done : done + CHUNK * 8]
            done += CHUNK * 8
            yield CHUNK
        out_points += points[done:size]
        out_ids += ids[done:size]
        assert len(out_points) == self.count, "the overlay's counts disagree with the base"
        out_points.append(points[size])  # the same sentinel
        out_ids.append(out_ids[0] if len(out_ids) else 0)
        return out_points, out_ids

    def shifted_index(self) -> Generator[int, None, array[int]]:
        """The bucket index of the merged base when it keeps this base's ``shift``: this
        index plus, per bucket, the points added below it less those removed below it (a
        constant between the overlay's buckets), a chunk at a time. ~8x cheaper than
        :func:`index_steps`, which reads every point."""
        starts, shift = self.starts, self.shift
        changes: Counter[int] = Counter()
        for points, sign in ((self.add_points, 1), (self.del_points, -1)):
            for low in range(0, len(points), CHUNK):
                for point in points[low : low + CHUNK]:
                    changes[(point >> shift) + 1] += sign
                yield CHUNK
        out: array[int] = array("I")
        done = delta = work = 0
        for bucket in [*sorted(changes), len(starts)]:
            while done < bucket:
                high = min(bucket, done + CHUNK * 8)
                if delta:
                    out.extend(map(add, starts[done:high], repeat(delta)))
                else:
                    out += starts[done:high]
                work += (high - done) // 8 + PER_EVENT  # ~2 us a run, ~40 ns a bucket
                done = high
                if work >= CHUNK:
                    yield work
                    work = 0
            delta += changes[bucket]
        return out

    def check(self) -> None:
        """Assert the layout: base sorted with its sentinel and index, the overlay in order."""
        points, ids, size, table = self.points, self.ids, self.size, self.table
        assert len(points) == len(ids) == size + 1
        assert points[size] == min(self.mask + 1, (1 << 64) - 1)
        assert ids[size] == (ids[0] if size else 0) and ids[size] < len(table)
        assert all(points[i] <= points[i + 1] for i in range(size))
        assert all(table[i] is not None for i in ids[:size])
        assert self.shift == shift_for(size, self.width)
        for bucket, start in enumerate(self.starts):
            assert start == bisect_left(points, bucket << self.shift, 0, size)
        assert len(self.starts) >= size
        added, removed = self.add_points, self.del_points
        assert list(added) == sorted(added) and list(removed) == sorted(removed)
        assert len(added) == len(self.add_ids) and len(removed) == len(self.del_ids)
        assert all(table[i] is not None for i in (*self.add_ids, *self.del_ids))
        gone = Counter(zip(removed, self.del_ids, strict=True))
        base = Counter(zip(points[:size], ids[:size], strict=True))
        assert all(times <= base[pair] for pair, times in gone.items())  # each in the base
        assert not set(gone) & set(zip(added, self.add_ids, strict=True)), "added and removed"
        marked = {point >> self.shift for point in (*added, *removed)}
        assert len(self.marks) == self.buckets
        marks = self.marks  # indexed, not enumerated: mypyc fails on enumerate(bytearray)
        assert {b for b in range(len(marks)) if marks[b]} == marked
        assert self.dirty == (bool(added or removed) or not size)
