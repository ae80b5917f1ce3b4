"""An incremental consistent-hash ring: a flat sorted base plus a small overlay of recent changes.

The ring of Karger et al. (STOC 1997) as IPHash and Ketama use it. The readable state is one
immutable :class:`RingView`, published with one assignment, so lock-free readers see the ring
before a change or after it, never half of it:

- the **base**: every point in one sorted ``array('Q')`` (8 bytes a point), its owners in a
  parallel list, and main's bucket index ``starts[b]`` = the first point at or after
  ``b << shift`` (``2**bits`` >= points: a lookup jumps there and steps past about one point).
  A sentinel point (the top of the ring) ends the array, its owner the first point's, so the
  step loop needs no bounds check and wraps by itself.
- the **overlay** (empty after a build): points added since the base was laid out (a sorted
  list and their owners) and the base positions deleted since. A lookup reads the base as
  above, and only when the overlay is not empty (``view.dirty``) takes the nearer of the next
  live base point and the next added point (:meth:`RingView.resolve`).

A membership change copies the overlay (small) and, when the overlay reaches 1/COMPACT of the
ring, merges it into a new base (array slices between the changed positions, then the index):
O(points changed) per change plus O(P) every P/COMPACT changed points, amortised O(COMPACT) per
point. Measured (docs/benchmarks.md, "Membership changes"): lookups on a merged base at or
below the flat ring's time, ~20-24 bytes per point.

Why not per-bucket tuples of boxed ints (the previous layout): ~70 bytes a point scattered
on the heap and a 4-argument ``bisect`` per lookup made lookups 1.1-2.6x slower than the flat
ring. Why not ``sortedcontainers.SortedList``: its lookups bisect two levels (measured 5x slower).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable
from functools import cmp_to_key
from itertools import islice
from operator import eq, itemgetter
from typing import Any

from ..._state import EndpointState
from ._view import First, RingView

__all__ = ["PointRing", "RingView"]

#: The overlay is merged into the base when it holds 1/COMPACT of the ring's points.
COMPACT = 64
#: Below this many points a change merges at once (the merge costs about what the overlay saves).
SMALL = 4096

_point, _owner = itemgetter(0), itemgetter(1)


class PointRing:
    """The writer of a ring of ``width``-bit points (under the balancer's lock); ``view`` is what
    readers read. Equal points are kept in ``first`` order (``first(a, b)``: owner ``a`` goes
    before ``b``); ``past_equal`` makes a lookup skip a point equal to the hash (uhashring's
    ``bisect_right``). ``insert`` and ``delete`` collect changes; reading ``view`` publishes
    them as one new view (one change of membership, however many endpoints it touches)."""

    __slots__ = ("_added", "_first", "_removed", "_stale", "_view", "past_equal", "width")

    def __init__(self, width: int, count: int = 0, *, past_equal: bool = False) -> None:
        assert not (past_equal and width >= 64), "a past_equal ring needs a sentinel above it"
        self.width = width
        self.past_equal = past_equal
        self._view = self._base(array("Q"), [], None)
        self._reset()

    def _reset(self) -> None:
        view = self._view
        self._removed = set(view.removed)
        self._added: dict[tuple[int, EndpointState], int] = {}  # (point, owner) -> how many
        for pair in zip(view.added, view.added_owners, strict=True):
            self._added[pair] = self._added.get(pair, 0) + 1
        self._first = view.first
        self._stale = False

    def _base(self, points: array[int], owners: list[Any], first: First | None) -> RingView:
        """A merged view of sorted ``points`` (the sentinel appended here)."""
        points.append(min(1 << self.width, (1 << 64) - 1))
        owners.append(owners[0] if owners else None)
        return RingView(self.width, self.past_equal, first, points, owners, [], [], frozenset())

    @property
    def view(self) -> RingView:
        """The current view, with every change made so far published."""
        if self._stale:
            self._publish()
        return self._view

    @property
    def count(self) -> int:
        return self.view.count

    def items(self) -> list[tuple[int, EndpointState]]:
        return self.view.items()

    def owner_at(self, hashed: int) -> EndpointState | None:
        return self.view.owner_at(hashed)

    def find(self, hashed: int, accept: Callable[[EndpointState], bool]) -> EndpointState | None:
        return self.view.find(hashed, accept)

    def check(self) -> None:
        """Assert the view's layout, and that a pending overlay is within its bound."""
        view = self.view
        view.check()
        pending = len(view.added) + len(view.removed)
        assert not pending or (pending * COMPACT < view.count and view.count > SMALL)
        assert self._removed == view.removed and sum(self._added.values()) == len(view.added)

    def needs_relayout(self, count: int) -> bool:
        """Whether going to ``count`` points is better done by a build from scratch (a ring that
        more than doubles, e.g. the first build)."""
        return count > 2 * self.view.count + 64

    def insert(self, state: EndpointState, points: list[int], first: First) -> None:
        """Add ``points`` owned by ``state`` (to the overlay; a deleted base point is undeleted)."""
        view, removed, added = self._view, self._removed, self._added
        base, owners, size = view.points, view.owners, view.size
        for point in points:
            if removed:  # deleted from the base and back (mark_down, mark_up): undeleted
                index = bisect_left(base, point, 0, size)
                while index < size and base[index] == point:
                    if owners[index] is state and index in removed:
                        removed.discard(index)
                        break
                    index += 1
                else:
                    added[point, state] = added.get((point, state), 0) + 1
            else:
                added[point, state] = added.get((point, state), 0) + 1
        self._first, self._stale = first, True

    def delete(self, state: EndpointState, points: list[int]) -> None:
        """Remove ``points`` owned by ``state`` (each must be there)."""
        view, removed, added = self._view, self._removed, self._added
        base, owners, size = view.points, view.owners, view.size
        for point in points:
            held = added.get((point, state), 0)
            if held:
                if held == 1:
                    del added[point, state]
                else:
                    added[point, state] = held - 1
                continue
            index = bisect_left(base, point, 0, size)
            while owners[index] is not state or index in removed:  # equal points of others
                index += 1
            assert index < size and base[index] == point, "deleting a point not on the ring"
            removed.add(index)
        self._stale = True

    def forget(self, state: EndpointState) -> None:
        """Nothing to free: owners are referenced by the points themselves."""

    def _publish(self) -> None:
        """One new view from the changes collected: the overlay, or a merged base if large."""
        view, first = self._view, self._first
        multiset = self._added
        if max(multiset.values(), default=1) == 1:  # (no owner holds one point twice: usual)
            pairs = list(multiset)
        else:
            pairs = [pair for pair, times in multiset.items() for _ in range(times)]
        # The dict holds the last view's overlay in order, then what was added since: one sorted
        # run and a short tail, which the (stable) sort merges in about linear time.
        pairs.sort(key=_point)
        added = list(map(_point, pairs))
        if first is not None and any(map(eq, added, islice(added, 1, None))):
            pairs = _ties_in_order(pairs, first)  # equal points: in ``first`` order (rare)
            added = list(map(_point, pairs))
        added_owners = list(map(_owner, pairs))
        removed = frozenset(self._removed)
        live = view.size - len(removed) + len(added)
        if (len(added) + len(removed)) * COMPACT < live and live > SMALL:
            shared = (view.shift, view.starts)
            self._view = RingView(
                self.width, self.past_equal, first, view.points, view.owners, added,
                added_owners, removed, shared,
            )  # fmt: skip
            if pairs and multiset and max(multiset.values()) == 1:  # kept, in ring order now
                self._added = dict.fromkeys(pairs, 1)
                self._stale = False
                return
        else:
            self._view = self._merge(view, added, added_owners, removed, first)
        self._reset()

    def _merge(
        self,
        view: RingView,
        added: list[int],
        added_owners: list[EndpointState],
        removed: frozenset[int],
        first: First | None,
    ) -> RingView:
        """A new base: the live base with the added points in place (slices between them)."""
        base, owners, size = view.points, view.owners, view.size
        cuts: list[tuple[int, int, int]] = [(index, 1, 0) for index in removed]
        for k, point in enumerate(added):
            owner = added_owners[k]
            index = bisect_left(base, point, 0, size)
            while (
                index < size
                and base[index] == point
                and (index in removed or (first is not None and first(owners[index], owner)))
            ):
                index += 1
            cuts.append((index, 0, k))
        cuts.sort()
        raw = memoryview(base).cast("B")
        points: array[int] = array("Q")
        kept: list[Any] = []
        done = 0
        for index, kind, k in cuts:
            if index > done:
                points.frombytes(raw[8 * done : 8 * index])
                kept.extend(owners[done:index])
                done = index
            if kind == 0:
                points.append(added[k])
                kept.append(added_owners[k])
            else:
                done = index + 1
        points.frombytes(raw[8 * done : 8 * size])
        kept.extend(owners[done:size])
        return self._base(points, kept, first)

    def fill(self, owners: list[EndpointState], packed: list[int], rank_bits: int) -> None:
        """Lay out a new ring at once from sorted ``(point << rank_bits) | rank`` values, where
        ``rank`` indexes ``owners`` (the build from scratch)."""
        rank_mask = (1 << rank_bits) - 1
        points = array("Q", [value >> rank_bits for value in packed])
        self._view = self._base(points, [owners[value & rank_mask] for value in packed], None)
        self._reset()


def _ties_in_order(
    pairs: list[tuple[int, EndpointState]], first: First
) -> list[tuple[int, EndpointState]]:
    """``pairs`` sorted by point, with each run of equal points put in ``first`` order."""

    def compare(a: tuple[int, EndpointState], b: tuple[int, EndpointState]) -> int:
        if a[0] != b[0]:
            return -1 if a[0] < b[0] else 1
        if a[1] is b[1]:
            return 0
        return -1 if first(a[1], b[1]) else 1

    return sorted(pairs, key=cmp_to_key(compare))
