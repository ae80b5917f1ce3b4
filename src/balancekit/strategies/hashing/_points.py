"""An incremental consistent-hash ring: a flat sorted base plus an overlay, merged in chunks.

The ring of Karger et al. (STOC 1997) as IPHash and Ketama use it. The readable state is one
immutable :class:`RingView` (see :mod:`._view` for its layout), published with one assignment, so
lock-free readers see the ring before a change or after it, never half of it.

A change touches only its own points: each goes into the overlay, a persistent trie keyed by the
base's buckets (:mod:`._trie`), by copying the path to its bucket: O(log) per point, whatever the
overlay holds. Once the overlay holds 1/COMPACT of the ring, a **merge** starts: a new base
(:meth:`RingView.merge_steps`, then its bucket index, :func:`._view.index_steps`) is laid out
from the view of that moment, a bounded chunk per change (``STEP`` plus ``PER_POINT`` per point
changed), while that view and the changes since keep serving lookups. Changes made meanwhile go
into the old overlay (what readers see) and into a second one kept against the base being laid
out; when the base is complete it is published with that second overlay in one assignment. So
no change pays for a whole merge: a merge of P points ends within about 3P/PER_POINT changed
points, which keeps the overlay under about 1/COMPACT + 1/80 of the ring. (A ring of at most
SMALL points, or one change that alone leaves 1/BIG of the ring pending, merges at once: that
costs at most a few times the change itself.) :meth:`PointRing.settle` finishes a merge now.

Why cooperative chunks, not a thread: the core is sans-io (docs/architecture.md), the result does
not depend on timing (a merge changes the layout, never what a lookup returns), and tests can
stop a merge anywhere. Why not ``sortedcontainers.SortedList``: its lookups bisect two levels
(measured 5x slower).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Generator
from typing import Any

from ..._state import EndpointState
from ._trie import Node, Writer, depth_for
from ._view import First, RingView, index_steps, shift_for

__all__ = ["PICK_STEP", "PointRing", "RingView"]

#: A merge starts when the overlay holds 1/COMPACT of the ring's points.
COMPACT = 64
#: Rings of at most this many points merge at once (the merge costs about what a change does).
SMALL = 4096
#: Merge work (points merged or indexed) per change, and per point the change touched.
STEP, PER_POINT = 2048, 64
#: Owners of a replaced base released per step, once no reader holds it (see ``_release``).
RELEASE = 65_536
#: Merge work done by a pick that finds a merge under way (one pick in ``_keyed.PICK_EVERY``).
PICK_STEP = 2048
#: A change that alone leaves 1/BIG of the ring pending merges at once (within BIG x its cost).
BIG = 4

_refcount = getattr(sys, "getrefcount", None)

Merge = Generator[int, None, "tuple[array[int], list[Any], array[int]]"]


class _Overlay:
    """One overlay being written, against a base with buckets of ``shift`` bits."""

    __slots__ = ("added", "removed", "shift", "writer")

    def __init__(self, root: Node | None, shift: int, width: int, added: int, removed: int):
        self.writer = Writer(root, depth_for(width - shift))
        self.shift, self.added, self.removed = shift, added, removed

    def insert(self, point: int, owner: EndpointState, first: First) -> None:
        bucket = point >> self.shift
        entry = self.writer.get(bucket)
        new, new_owners, gone, gone_owners = entry if entry is not None else ((), (), (), ())
        for k, (p, o) in enumerate(zip(gone, gone_owners, strict=True)):
            if p == point and o is owner:  # deleted from the base and back: undeleted
                gone, gone_owners = gone[:k] + gone[k + 1 :], gone_owners[:k] + gone_owners[k + 1 :]
                self.removed -= 1
                break
        else:
            at = bisect_left(new, point)
            while (
                at < len(new)
                and new[at] == point
                and (new_owners[at] is owner or first(new_owners[at], owner))
            ):
                at += 1
            new, new_owners = (
                (*new[:at], point, *new[at:]),
                ((*new_owners[:at], owner, *new_owners[at:])),
            )
            self.added += 1
        self.writer.set(bucket, (new, new_owners, gone, gone_owners))

    def delete(self, point: int, owner: EndpointState) -> None:
        bucket = point >> self.shift
        entry = self.writer.get(bucket)
        new, new_owners, gone, gone_owners = entry if entry is not None else ((), (), (), ())
        for k, (p, o) in enumerate(zip(new, new_owners, strict=True)):
            if p == point and o is owner:  # added since the base was laid out: dropped
                new, new_owners = new[:k] + new[k + 1 :], new_owners[:k] + new_owners[k + 1 :]
                self.added -= 1
                break
        else:
            gone, gone_owners = (*gone, point), (*gone_owners, owner)
            self.removed += 1
        self.writer.set(bucket, (new, new_owners, gone, gone_owners) if new or gone else None)

    def publish(self) -> tuple[Node | None, int, int]:
        return self.writer.publish(), self.added, self.removed


class PointRing:
    """The writer of a ring of ``width``-bit points (under the balancer's lock); ``view`` is what
    readers read. Equal points are kept in ``first`` order (``first(a, b)``: owner ``a`` goes
    before ``b``); ``past_equal`` makes a lookup skip a point equal to the hash (uhashring's
    ``bisect_right``). ``insert`` and ``delete`` collect changes; reading ``view`` publishes
    them as one new view (one change of membership, however many endpoints it touches)."""

    __slots__ = (
        "_changed",
        "_first",
        "_merge",
        "_next",
        "_overlay",
        "_retired",
        "_stale",
        "_target",
        "_view",
        "past_equal",
        "width",
    )

    def __init__(self, width: int, count: int = 0, *, past_equal: bool = False) -> None:
        assert not (past_equal and width >= 64), "a past_equal ring needs a sentinel above it"
        self.width = width
        self.past_equal = past_equal
        self._view = self._base(array("Q"), [], None)
        self._reset()

    def _reset(self) -> None:
        """An empty overlay against the view's base, no merge running."""
        view = self._view
        self._overlay = _Overlay(view.root, view.shift, self.width, view.added, view.removed)
        self._next: _Overlay | None = None  # against the base being laid out
        self._merge: Merge | None = None
        self._target = view  # the view a running merge lays out
        self._first = view.first
        self._stale = False
        self._changed = 0  # points touched since the last publish
        self._retired: list[list[Any]] = []  # owners of replaced bases, released a chunk a step

    def _base(self, points: array[int], owners: list[Any], first: First | None) -> RingView:
        """A merged view of sorted ``points`` (the sentinel appended here)."""
        points.append(min(1 << self.width, (1 << 64) - 1))
        owners.append(owners[0] if owners else None)
        return RingView(self.width, self.past_equal, first, points, owners)

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
    def merging(self) -> bool:
        """Whether a merge is under way (finished by later changes, picks or :meth:`settle`)."""
        return self._merge is not None

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

    def insert(self, state: EndpointState, points: list[int], first: First) -> None:
        """Add ``points`` owned by ``state`` (to the overlay; a deleted base point is undeleted)."""
        overlay, following = self._overlay, self._next
        for point in points:
            overlay.insert(point, state, first)
            if following is not None:
                following.insert(point, state, first)
        self._first, self._stale = first, True
        self._changed += len(points)

    def delete(self, state: EndpointState, points: list[int]) -> None:
        """Remove ``points`` owned by ``state`` (each must be there)."""
        overlay, following = self._overlay, self._next
        for point in points:
            overlay.delete(point, state)
            if following is not None:
                following.delete(point, state)
        self._stale = True
        self._changed += len(points)

    def forget(self, state: EndpointState) -> None:
        """Nothing to free: owners are referenced by the points themselves."""

    def _publish(self) -> None:
        """One new view from the changes collected; a merge started or advanced by a chunk."""
        view = self._view
        overlay = self._overlay.publish()
        if self._next is not None:
            self._next.publish()  # ends its batch: its nodes may be published at the swap
        changed, self._changed, self._stale = self._changed, 0, False
        index = (view.shift, view.starts)
        self._view = RingView(
            self.width, self.past_equal, self._first, view.points, view.owners, index, overlay
        )
        view = self._view
        pending, live = view.pending, view.count
        self._release()
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
        self._next = _Overlay(None, shift, self.width, 0, 0)
        self._merge = self._laid_out(view)

    def _laid_out(self, view: RingView) -> Merge:
        points, owners = yield from view.merge_steps()
        starts = yield from index_steps(points, len(points) - 1, self.width)
        return points, owners, starts

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
            points, owners, starts = done.value
            following = self._next
            assert following is not None
            size = len(points) - 1
            self._retired.append(self._view.owners)
            self._view = RingView(
                self.width, self.past_equal, self._first, points, owners,
                (shift_for(size, self.width), starts), following.publish(),
            )  # fmt: skip
            self._overlay, self._next, self._merge = following, None, None
            self._target = self._view
            view = self._view
            if view.pending and view.pending * COMPACT >= view.count:
                self._start()  # changes during the merge filled the new overlay already
        self._release()
        return self._view

    def _release(self) -> None:
        """Free a chunk of the owners of a replaced base, once nothing but this list holds it.

        Dropping a list of 1.6M owners at once costs ~10-30 ms of reference counting, paid by
        whichever change swaps the base in. A reader may still hold a view of the old base
        (it read ``view`` just before the swap), so a list is only shortened while its
        reference count says nobody else can reach it: no published view refers to it any more,
        so once that count is reached it stays reached."""
        retired = self._retired
        while retired:
            owners = retired[0]
            if _refcount is None:  # not CPython: the collector frees it
                retired.clear()
                return
            if _refcount(owners) > 3:  # retired[0], ``owners`` and getrefcount's argument
                return
            del owners[-RELEASE:]
            if owners:
                return
            del retired[0]

    def settle(self, *, now: bool = False) -> RingView:
        """Publish every change and finish any merge (``now``: merge the whole overlay at once,
        dropping a merge under way); the resulting view."""
        view = self.view
        if now:
            if not view.pending:
                return view
            self._merge = self._laid_out(view)
            self._next = _Overlay(None, shift_for(view.count, self.width), self.width, 0, 0)
        while self._merge is not None:
            self.advance(float("inf"))
        return self._view

    def check(self) -> None:
        """Assert the view's layout; the overlay's bound; a merge's result is the same ring."""
        view = self.view
        view.check()
        assert (self._overlay.added, self._overlay.removed) == (view.added, view.removed)
        pending, live = view.pending, view.count
        if self._merge is None:
            assert not pending or (pending * COMPACT < live and live > SMALL)
            return
        assert pending * BIG < live and live > SMALL
        following = self._next
        assert following is not None
        steps = self._laid_out(self._target)  # the same merge, to the end, aside
        try:
            while True:
                next(steps)
        except StopIteration as done:
            points, owners, starts = done.value
        size = len(points) - 1
        after = RingView(
            self.width, self.past_equal, self._first, points, owners,
            (shift_for(size, self.width), starts),
            (following.writer.root, following.added, following.removed),
        )  # fmt: skip
        after.check()
        assert after.items() == view.items(), "the base being laid out + its overlay differ"

    def fill(self, owners: list[EndpointState], packed: list[int], rank_bits: int) -> None:
        """Lay out a new ring at once from sorted ``(point << rank_bits) | rank`` values, where
        ``rank`` indexes ``owners`` (the build from scratch)."""
        rank_mask = (1 << rank_bits) - 1
        points = array("Q", [value >> rank_bits for value in packed])
        self._view = self._base(points, [owners[value & rank_mask] for value in packed], None)
        self._reset()
