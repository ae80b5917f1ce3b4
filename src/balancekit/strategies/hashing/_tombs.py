"""Ketama's tombstones: ring points whose digest index is past their server's count.

libketama (``ketama.c``, ``ketama_create_continuum``) and uhashring (``ring_ketama.py``) give a
server of weight w among N servers of total weight W a digest count that depends on W and N, so
one weight change moves every server's count (1 -> 2 among 10,000 equal servers: every other
server drops from 40 digests to 39). Digest k of a server is the same at any count, so
:class:`~.ketama.Ketama` leaves such points on the ring and a lookup skips them: a point of
digest k (its position in its server's sequence, 4 points a digest) is **live** iff
``k < digests[weight of its owner]``. This module answers that question for the readers; the
writer (Ketama, under its lock) decides when to drop dead points for good.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from ..._state import EndpointState

if TYPE_CHECKING:  # (_view imports this module for its ``tombs`` slot)
    from ._view import RingView

__all__ = ["Tombs"]


class Tombs(dict[EndpointState, frozenset[int]]):
    """Which points of a ring are live: one object per published state (never changed but
    for its cache).

    ``digests``: weight -> digests per server of that weight now. ``points``: server -> its
    points in digest order (4 per digest), as stored on the ring (live and dead); the writer
    replaces an array (never writes one a reader may hold) and shares the dict between states.

    The object itself maps a server to its dead points (a frozenset, empty if none), filled
    by the lookups that land on it (``__missing__``): a lookup's test is ``point not in
    tombs[state]``, one subscript and one set test, no call (issue 11: the test was a
    ``dict.get`` call, a ``None`` test and the set test, ~20 bytecodes a lookup, 1.25x).
    """

    __slots__ = ("digests", "points")

    def __init__(self, digests: dict[int, int], points: dict[EndpointState, array[int]]) -> None:
        super().__init__()
        self.digests = digests
        self.points = points

    def __missing__(self, state: EndpointState) -> frozenset[int]:
        """``state``'s dead points (its digests past the count), remembered for this state of
        the ring; what :meth:`live` reads first. (Concurrent lookups may both compute it: the
        same set, so either write is right.)"""
        owned = self.points.get(state)
        digests = self.digests.get(state.weight)
        if owned is None or digests is None or len(owned) <= 4 * digests:
            tail: frozenset[int] = frozenset()
        else:
            tail = frozenset(owned[4 * digests :])
        self[state] = tail
        return tail

    def live(self, point: int, state: EndpointState) -> bool:
        """Whether ``point`` of ``state`` is live: its first copy among the server's points is
        below the count (an equal point of one server at a live and a dead digest is live)."""
        if point not in self[state]:  # the dead tail: usually a digest or two
            return True  # (array.index compares boxed ints: ~40 ns a point, so not first)
        owned = self.points.get(state)
        digests = self.digests.get(state.weight)
        if owned is None or digests is None:
            return True  # a reader racing a change: see Ketama
        try:
            return owned.index(point) < 4 * digests
        except ValueError:
            return True

    def walk(self, view: RingView, index: int) -> EndpointState | None:
        """The owner of the first live base point from ``index`` on, where a lookup without
        ``avoid`` landed (nothing pending in the overlay from its key up to that point); None
        where a pending change or the top of the ring is in the way (the caller then walks
        :meth:`RingView.find_live`). Each step is a bucket test (if the view is dirty), one
        subscript and a set test, so stepping past the ~1/40 of points a weight change
        leaves dead costs about what landing does (issue 11): no call per point, no closure,
        no ``array.index`` (~6 us on a 160-point server). A value in its server's dead tail
        is dead unless the server holds it twice (then the next position holds it too: equal
        points are adjacent, and a lookup or this walk meets the first of them), which
        :meth:`live` settles exactly."""
        points, ids, table, size = view.points, view.ids, view.table, view.size
        dirty, marks, shift = view.dirty, view.marks, view.shift
        top = points[index] >> shift  # buckets up to here: checked by the lookup
        while index < size:
            point = points[index]
            if dirty:  # RingView.clean, from the last bucket checked to this point's
                bucket = point >> shift
                if bucket != top:
                    if marks[bucket] or (bucket > top + 1 and view.marked(top + 1, bucket)):
                        return None
                    top = bucket
            state: EndpointState = table[ids[index]]
            if point not in self[state] or (points[index + 1] == point and self.live(point, state)):
                return state
            index += 1
        return None

    def accept(self, avoid: Collection[str]) -> Callable[[int, EndpointState], bool]:
        """A walk's test: a live point of a server not in ``avoid``."""
        live = self.live
        if not avoid:
            return live
        return lambda point, state: state.endpoint.address not in avoid and live(point, state)

    def live_items(self, items: list[tuple[int, EndpointState]]) -> list[tuple[int, EndpointState]]:
        """``items`` (the ring's points in order) without the dead ones."""
        keep: dict[tuple[int, EndpointState], int] = {}  # a dead tail's point -> copies kept
        for state, owned in self.points.items():
            digests = self.digests.get(state.weight)
            if digests is not None and len(owned) > 4 * digests:
                head = owned[: 4 * digests]
                for point in owned[4 * digests :]:
                    keep[(point, state)] = head.count(point)
        if not keep:
            return items
        out: list[tuple[int, EndpointState]] = []
        for pair in items:
            left = keep.get(pair)
            if left is None:
                out.append(pair)
            elif left:
                keep[pair] = left - 1
                out.append(pair)
        return out
