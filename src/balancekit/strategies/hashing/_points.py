"""An incremental consistent-hash ring: a flat sorted base plus an overlay, merged in chunks.

The ring of Karger et al. (STOC 1997) as IPHash and Ketama use it. The readable state is one
immutable :class:`RingView` (see :mod:`._view` for its layout), published with one assignment, so
lock-free readers see the ring before a change or after it, never half of it.

A change touches only its own points: each goes into the overlay, flat sorted arrays of the
points added and removed since the base was laid out, rebuilt by slices for each change (the
points changed are placed by bisection; the rest is copied by ``memcpy``: ~12 bytes a pending
point, ~30 us at the overlay's largest on a 1.6M-point ring) with a byte per bucket marking
where it holds points (one ``bytearray`` copy a change). Once the overlay holds 1/COMPACT of
the ring, a **merge** starts: a new base (:meth:`RingView.merge_steps`, then its bucket index,
:func:`._view.index_steps`) is laid out from the view of that moment, a bounded chunk per change
(``STEP`` plus ``PER_POINT`` per point changed), while that view and the changes since keep
serving lookups. Changes made meanwhile go into the old overlay (what readers see) and into a
second one kept against the base being laid out; when the base is complete it is published with
that second overlay in one assignment. So no change pays for a whole merge. (A ring of at most
SMALL points, or one change that alone leaves 1/BIG of the ring pending, merges at once: that
costs at most a few times the change itself.) :meth:`PointRing.settle` finishes a merge now.

Owners are ids into a table of endpoint states (one entry per endpoint): the bulk of the ring is
``array`` storage that the garbage collector never traverses, so a full collection does not get
slower as the ring grows (1.6M owner references in a list cost ~100-200 ms per full collection
at 10,000 endpoints). An id whose endpoint left is reused only once a merge has laid out a base
without it, in that base's own copy of the table (views of older bases keep theirs).

Why cooperative chunks, not a thread: the core is sans-io (docs/architecture.md), the result does
not depend on timing (a merge changes the layout, never what a lookup returns), and tests can
stop a merge anywhere. Why not ``sortedcontainers.SortedList``: its lookups bisect two levels
(measured 5x slower), and it holds a list of Python ints per point.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from functools import cmp_to_key
from typing import Any

from ..._state import EndpointState
from ._view import First, Overlay, RingView, empty_overlay, index_steps, shift_for

__all__ = ["PICK_STEP", "PointRing", "RingView"]

#: A merge starts when the overlay holds 1/COMPACT of the ring's points.
COMPACT = 64
#: Rings of at most this many points merge at once (the merge costs about what a change does).
SMALL = 4096
#: Merge work (points merged or indexed) per change, and per point the change touched.
STEP, PER_POINT = 2048, 64
#: Merge work done by a pick that finds a merge under way (one pick in ``_keyed.PICK_EVERY``).
PICK_STEP = 2048
#: A change that alone leaves 1/BIG of the ring pending merges at once (within BIG x its cost).
BIG = 4

Merge = Generator[int, None, "tuple[array[int], array[int], array[int]]"]
Before = Callable[[int, int], bool]  # first(), on owner ids
_ID = (1 << 32) - 1  # the owner id in a (point << 32 | owner) key


def _spliced(values: array[int], at: list[int], new: Iterable[int]) -> array[int]:
    """``values`` with each of ``new`` inserted before position ``at[k]`` (``at`` ascending)."""
    out = array(values.typecode)
    done = 0
    for position, value in zip(at, new, strict=True):
        if position > done:
            out += values[done:position]
            done = position
        out.append(value)
    out += values[done:]
    return out


def _without(values: array[int], drop: list[int]) -> array[int]:
    """``values`` less the positions in ``drop`` (ascending, distinct)."""
    out = array(values.typecode)
    done = 0
    for position in drop:
        out += values[done:position]
        done = position + 1
    out += values[done:]
    return out


class _Writer:
    """One overlay being written, against a base with buckets of ``shift`` bits. Changes are
    collected (net, per (point, owner)) and applied once per published view: new arrays built
    by slices (published ones are never written), the marks copied once. So a batch of m
    points costs O(m log m) plus one copy of the overlay, however many endpoints it touches."""

    __slots__ = (
        "added",
        "added_ids",
        "before",
        "deleting",
        "fresh",
        "inserting",
        "marks",
        "removed",
        "removed_ids",
        "shift",
    )

    def __init__(self, overlay: Overlay, shift: int) -> None:
        self.added, self.added_ids, self.removed, self.removed_ids, self.marks = overlay
        self.shift = shift
        self.fresh = False  # whether ``marks`` is this batch's own copy
        self.inserting: Counter[int] = Counter()  # (point << 32 | owner) -> times, this batch
        self.deleting: Counter[int] = Counter()
        self.before: Before | None = None

    def insert(self, points: list[int], owner: int, before: Before) -> None:
        """Add ``points`` of ``owner`` (a point deleted from the base is undeleted instead)."""
        self.inserting.update([(point << 32) | owner for point in points])
        self.before = before

    def delete(self, points: list[int], owner: int) -> None:
        """Remove ``points`` of ``owner`` (each on the ring; one added since the base was laid
        out is dropped from the overlay instead)."""
        self.deleting.update([(point << 32) | owner for point in points])

    def _flush(self) -> None:
        inserting, deleting = self.inserting, self.deleting
        if not inserting and not deleting:
            return
        self.inserting, self.deleting = Counter(), Counter()
        for key in inserting.keys() & deleting.keys():  # added and deleted again: the net
            net = inserting[key] - deleting[key]
            inserting[key], deleting[key] = max(net, 0), max(-net, 0)
        undeleted, new = _match(self.removed, self.removed_ids, inserting)
        dropped, gone = _match(self.added, self.added_ids, deleting)
        if undeleted:
            self.removed = _without(self.removed, undeleted)
            self.removed_ids = _without(self.removed_ids, undeleted)
        if dropped:
            self.added = _without(self.added, dropped)
            self.added_ids = _without(self.added_ids, dropped)
        if gone:  # equal removed points in any order (a removal names its owner)
            points = [key >> 32 for key in gone]
            at = [bisect_right(self.removed, point) for point in points]
            self.removed = _spliced(self.removed, at, points)
            self.removed_ids = _spliced(self.removed_ids, at, [key & _ID for key in gone])
        if new:
            self._add(new)
        self._remark({key >> 32 for key in (*inserting, *deleting)})

    def _add(self, new: list[int]) -> None:
        """Place the sorted ``new`` keys among the added points: equal points in ``first``
        order (after equal points whose owner goes first, or is the same)."""
        before = self.before
        assert before is not None

        def order(a: int, b: int) -> int:
            return -1 if before(a & _ID, b & _ID) else 1

        for low, high in _runs([key >> 32 for key in new]):  # equal points: ``first`` order
            new[low:high] = sorted(new[low:high], key=cmp_to_key(order))
        added, added_ids = self.added, self.added_ids
        at_list = []
        for key in new:
            point, owner = key >> 32, key & _ID
            at = bisect_left(added, point)
            while (
                at < len(added)
                and added[at] == point
                and (added_ids[at] == owner or before(added_ids[at], owner))
            ):
                at += 1
            at_list.append(at)
        self.added = _spliced(added, at_list, [key >> 32 for key in new])
        self.added_ids = _spliced(added_ids, at_list, [key & _ID for key in new])

    def _remark(self, points: Iterable[int]) -> None:
        if not self.fresh:
            self.marks, self.fresh = bytearray(self.marks), True
        shift, marks, added, removed = self.shift, self.marks, self.added, self.removed
        for bucket in {point >> shift for point in points}:
            low, high = bucket << shift, (bucket + 1) << shift
            at, gone = bisect_left(added, low), bisect_left(removed, low)
            marks[bucket] = (at < len(added) and added[at] < high) or (
                gone < len(removed) and removed[gone] < high
            )

    def publish(self) -> Overlay:
        """The overlay to hand to readers; nothing in it is written afterwards."""
        self._flush()
        self.fresh = False
        return self.added, self.added_ids, self.removed, self.removed_ids, self.marks


def _match(
    points: array[int], ids: array[int], wanted: Counter[int]
) -> tuple[list[int], list[int]]:
    """For each (point, owner) key wanted ``times``: the positions (ascending) of up to that
    many copies of it in ``points``/``ids``, and the keys left over (sorted, repeated)."""
    found: list[int] = []
    left: list[int] = []
    for key, times in wanted.items():
        point, owner = key >> 32, key & _ID
        at = bisect_left(points, point)
        while times and at < len(points) and points[at] == point:
            if ids[at] == owner:
                found.append(at)
                times -= 1
            at += 1
        left.extend([key] * times)
    found.sort()
    left.sort()
    return found, left


def _runs(values: list[int]) -> Iterator[tuple[int, int]]:
    """``(low, high)`` of each run of two or more equal values in sorted ``values``."""
    low = 0
    for high in range(1, len(values) + 1):
        if high == len(values) or values[high] != values[low]:
            if high - low > 1:
                yield low, high
            low = high


class PointRing:
    """The writer of a ring of ``width``-bit points (under the balancer's lock); ``view`` is what
    readers read. Equal points are kept in ``first`` order (``first(a, b)``: owner ``a`` goes
    before ``b``); ``past_equal`` makes a lookup skip a point equal to the hash (uhashring's
    ``bisect_right``). ``insert`` and ``delete`` collect changes; reading ``view`` publishes
    them as one new view (one change of membership, however many endpoints it touches)."""

    __slots__ = (
        "_changed",
        "_died",
        "_first",
        "_free",
        "_ids",
        "_live",
        "_merging",
        "_next",
        "_overlay",
        "_serial",
        "_since",
        "_stale",
        "_table",
        "_target",
        "_view",
        "merging",
        "past_equal",
        "width",
    )

    def __init__(self, width: int, count: int = 0, *, past_equal: bool = False) -> None:
        assert not (past_equal and width >= 64), "a past_equal ring needs a sentinel above it"
        self.width = width
        self.past_equal = past_equal
        self._owners([])
        self._view = self._base(array("Q"), array("I"), None)
        self._reset()

    def _owners(self, table: list[Any]) -> None:
        """Start a table of owner ids (the first build's, or an empty one)."""
        self._table: list[Any] = table or [None]  # id -> state; id 0 of an empty ring: None
        self._ids: dict[EndpointState, int] = {state: i for i, state in enumerate(table)}
        self._live = [0] * len(self._table)  # id -> its points on the ring (all views' latest)
        self._died: dict[int, int] = {}  # id -> serial of the change that took its last point
        self._free: list[int] = []  # ids free in ``_table`` (no view of it refers to them)
        self._serial = self._since = 0  # changes so far; the serial a running merge began at

    def _reset(self) -> None:
        """An empty overlay against the view's base, no merge running."""
        view = self._view
        self._overlay = _Writer(
            (view.add_points, view.add_ids, view.del_points, view.del_ids, view.marks), view.shift
        )
        self._next: _Writer | None = None  # against the base being laid out
        self._merge = None
        self._target = view  # the view a running merge lays out
        self._first = view.first
        self._stale = False
        self._changed = 0  # points touched since the last publish

    def _base(self, points: array[int], ids: array[int], first: First | None) -> RingView:
        """A merged view of sorted ``points`` (the sentinel appended here)."""
        points.append(min(1 << self.width, (1 << 64) - 1))
        ids.append(ids[0] if ids else 0)
        return RingView(self.width, self.past_equal, first, points, ids, self._table)

    @property
    def view(self) -> RingView:
        """The current view, with every change made so far published."""
        if self._stale:
            self._publish()
        return self._view

    @property
    def count(self) -> int:
        return self.view.count

    @property
    def _merge(self) -> Merge | None:
        """The merge under way; ``merging`` (a plain attribute: every pick on a view with
        changes pending reads it) says whether there is one (finished by later changes, picks
        or :meth:`settle`)."""
        return self._merging

    @_merge.setter
    def _merge(self, merge: Merge | None) -> None:
        self._merging = merge
        self.merging = merge is not None

    def items(self) -> list[tuple[int, EndpointState]]:
        return self.view.items()

    def owner_at(self, hashed: int) -> EndpointState | None:
        return self.view.owner_at(hashed)

    def find(self, hashed: int, accept: Callable[[EndpointState], bool]) -> EndpointState | None:
        return self.view.find(hashed, accept)

    def needs_relayout(self, count: int) -> bool:
        """Whether going to ``count`` points is better done by a build from scratch (a ring that
        more than doubles, e.g. the first build)."""
        return count > 2 * self.view.count + 64

    def _id_of(self, state: EndpointState) -> int:
        owner = self._ids.get(state)
        if owner is None:  # a new owner: a free id of this table, or a new one
            table = self._table
            if self._free:
                owner = self._free.pop()
                table[owner] = state
            else:
                owner = len(table)
                table.append(state)
                self._live.append(0)
            self._ids[state] = owner
        return owner

    def insert(self, state: EndpointState, points: list[int], first: First) -> None:
        """Add ``points`` owned by ``state`` (to the overlay; a deleted base point is undeleted)."""
        if not points:
            return
        owner, table = self._id_of(state), self._table

        def before(a: int, b: int) -> bool:
            return first(table[a], table[b])

        self._overlay.insert(points, owner, before)
        if self._next is not None:
            self._next.insert(points, owner, before)
        self._live[owner] += len(points)
        self._died.pop(owner, None)
        self._serial += 1
        self._first, self._stale = first, True
        self._changed += len(points)

    def delete(self, state: EndpointState, points: list[int]) -> None:
        """Remove ``points`` owned by ``state`` (each must be there)."""
        if not points:
            return
        owner = self._ids[state]
        self._overlay.delete(points, owner)
        if self._next is not None:
            self._next.delete(points, owner)
        self._live[owner] -= len(points)
        assert self._live[owner] >= 0, "deleted points the ring does not hold"
        if not self._live[owner]:
            self._died[owner] = self._serial
        self._serial += 1
        self._stale = True
        self._changed += len(points)

    def forget(self, state: EndpointState) -> None:
        """Nothing to do: an owner's id is freed by the first merge that leaves it out."""

    def _publish(self) -> None:
        """One new view from the changes collected; a merge started or advanced by a chunk."""
        view = self._view
        overlay = self._overlay.publish()
        if self._next is not None:
            self._next.publish()  # ends its batch: its marks may be published at the swap
        changed, self._changed, self._stale = self._changed, 0, False
        index = (view.shift, view.starts)
        self._view = RingView(
            self.width, self.past_equal, self._first, view.points, view.ids, self._table, index,
            overlay,
        )  # fmt: skip
        view = self._view
        pending, live = view.pending, view.count
        if not pending:
            self._merge = self._next = None  # the changes cancelled out: nothing to merge
            return
        if live <= SMALL or pending * BIG >= live:
            self.settle(now=True)
        elif self._merge is not None or pending * COMPACT >= live:
            self.advance(STEP + PER_POINT * changed)

    def _start(self) -> None:
        view = self._target = self._view
        shift = shift_for(view.count, self.width)
        self._next = _Writer(empty_overlay(shift, self.width), shift)
        self._merge = self._laid_out(view)
        self._since = self._serial

    def _laid_out(self, view: RingView) -> Merge:
        points, ids = yield from view.merge_steps()
        size = len(points) - 1
        if shift_for(size, self.width) == view.shift:
            starts = yield from view.shifted_index()
        else:
            starts = yield from index_steps(points, size, self.width)
        return points, ids, starts

    def _new_table(self) -> list[Any]:
        """The table for a base about to be published: a copy (older views keep theirs) with
        the ids of owners gone before the merge began made free (the base does not hold them)."""
        table = list(self._table)
        for owner, serial in list(self._died.items()):
            if serial < self._since:
                del self._ids[table[owner]], self._died[owner]
                table[owner] = None
                self._free.append(owner)
        return table

    def advance(self, budget: float) -> RingView:
        """Do about ``budget`` points of merge work (starting a merge if one is due); the view."""
        view = self.view
        if self._merge is None:
            if view.pending * COMPACT < view.count or view.count <= SMALL:
                return view
            self._start()
        merge, spent = self._merge, 0
        assert merge is not None
        try:
            while spent < budget:
                spent += next(merge)
        except StopIteration as done:
            points, ids, starts = done.value
            following = self._next
            assert following is not None
            size = len(points) - 1
            self._table = self._new_table()
            self._view = RingView(
                self.width, self.past_equal, self._first, points, ids, self._table,
                (shift_for(size, self.width), starts), following.publish(),
            )  # fmt: skip
            self._overlay, self._next, self._merge = following, None, None
            self._target = self._view
            view = self._view
            if view.pending and view.pending * COMPACT >= view.count:
                self._start()  # changes during the merge filled the new overlay already
        return self._view

    def settle(self, *, now: bool = False) -> RingView:
        """Publish every change and finish any merge (``now``: merge the whole overlay at once,
        dropping a merge under way); the resulting view."""
        view = self.view
        if now:
            if not view.pending:
                return view
            self._start()
        while self._merge is not None:
            self.advance(float("inf"))
        return self._view

    def check(self) -> None:
        """Assert the view's layout; the overlay's bound; the owner ids; a merge's result is
        the same ring."""
        view = self.view
        view.check()
        assert (len(self._overlay.added), len(self._overlay.removed)) == (view.added, view.removed)
        table, live = self._table, Counter(view.ids[: view.size])
        live.update(view.add_ids)
        live.subtract(view.del_ids)
        assert view.table is table
        for owner, state in enumerate(table):
            assert live[owner] == (self._live[owner] if state is not None else 0)
            assert (state is None) == (owner in self._free) or (owner == 0 and state is None)
            assert state is None or self._ids[state] == owner
            assert (owner in self._died) == (state is not None and not live[owner])
        pending, count = view.pending, view.count
        if self._merge is None:
            assert not pending or (pending * COMPACT < count and count > SMALL)
            return
        assert pending * BIG < count and count > SMALL
        following = self._next
        assert following is not None
        steps = self._laid_out(self._target)  # the same merge, to the end, aside
        try:
            while True:
                next(steps)
        except StopIteration as done:
            points, ids, starts = done.value
        size = len(points) - 1
        after = RingView(
            self.width, self.past_equal, self._first, points, ids, table,
            (shift_for(size, self.width), starts),
            (following.added, following.added_ids, following.removed, following.removed_ids,
             following.marks),
        )  # fmt: skip
        after.check()
        assert after.items() == view.items(), "the base being laid out + its overlay differ"

    def fill(self, owners: list[EndpointState], packed: list[int], rank_bits: int) -> None:
        """Lay out a new ring at once from sorted ``(point << rank_bits) | rank`` values, where
        ``rank`` indexes ``owners`` (the build from scratch)."""
        rank_mask = (1 << rank_bits) - 1
        points = array("Q", [value >> rank_bits for value in packed])
        ids = array("I", [value & rank_mask for value in packed])
        self._owners(list(owners))
        for owner, times in Counter(ids).items():
            self._live[owner] = times
        self._died = {owner: 0 for owner in range(len(owners)) if not self._live[owner]}
        self._view = self._base(points, ids, None)
        self._reset()
