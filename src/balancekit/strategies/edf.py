"""Envoy's earliest-deadline-first scheduler, the order of its weighted round robin.

Each entry has a *deadline*: when added, ``current_time + 1 / weight``. A pick takes the entry
with the earliest deadline (ties: the one added first), moves ``current_time`` to that deadline
and adds the entry back, so an endpoint of weight *w* comes round every ``1 / w`` of virtual
time. Floating-point arithmetic exactly as Envoy's C++ (IEEE doubles, ``1.0 / weight``), so the
same weights give the same order, pick for pick. O(log n) per pick (a binary heap).
:class:`EdfByWeight` gives the same order kept per weight class, which WeightedRoundRobin uses:
a restart after a change costs O(k) for k distinct weights instead of a rebuild of n entries.

Source: Envoy ``source/common/upstream/edf_scheduler.h`` (``EdfScheduler::add``, ``pick``,
``pickAndAdd``; ``EdfEntry`` ordered by deadline then ``order_offset_``), used by
``RoundRobinLoadBalancer`` when host weights differ; gRPC gRFC A31 describes the same scheduler.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter, truediv
from typing import Generic, TypeVar

from .._options import describe
from .._state import EndpointState

__all__ = ["EdfByWeight", "EdfScheduler", "edf_sequence"]

T = TypeVar("T")
_seq = attrgetter("seq")


class EdfScheduler(Generic[T]):
    """A min-heap of ``(deadline, order, weight, item)``; see the module docstring.

    ``order`` is a counter incremented by every ``add`` (Envoy's ``order_offset_``): among equal
    deadlines the entry added earliest wins, so equal weights give plain round robin.
    """

    __slots__ = ("_current_time", "_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, float, T]] = []
        self._current_time = 0.0
        self._order = 0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, weight: float, item: T) -> None:
        """Insert ``item`` with deadline ``current_time + 1 / weight``; O(log n)."""
        if not weight > 0:
            raise ValueError(f"EDF weights must be positive, not {describe(weight)}")
        entry = (self._current_time + 1.0 / weight, self._order, weight, item)
        self._order += 1
        heapq.heappush(self._heap, entry)

    def pick_and_add(self) -> T:
        """Take the earliest-deadline item and add it back with the same weight; O(log n)."""
        if not self._heap:
            raise IndexError("pick from an empty EdfScheduler")
        deadline, _, weight, item = self._heap[0]
        self._current_time = deadline
        entry = (deadline + 1.0 / weight, self._order, weight, item)
        self._order += 1
        heapq.heapreplace(self._heap, entry)
        return item

    def check(self) -> None:
        """Assert the heap order and that no deadline lies in the past."""
        heap = self._heap
        for i in range(1, len(heap)):
            assert heap[(i - 1) // 2][:2] <= heap[i][:2]
        assert all(entry[0] >= self._current_time for entry in heap)
        assert all(entry[1] < self._order for entry in heap)


def edf_sequence(weights: Sequence[float]) -> Iterator[int]:
    """Yield, forever, the indices Envoy's EDF scheduler picks for ``weights`` added in order.

    >>> import itertools
    >>> "".join("ab"[i] for i in itertools.islice(edf_sequence([2, 4]), 14))
    'babbabbabbabba'
    """
    scheduler: EdfScheduler[int] = EdfScheduler()
    if weights and not min(weights) > 0:
        raise ValueError(f"EDF weights must be positive, not {describe(min(weights))}")
    # What `add` for each weight in order gives (deadline 0.0 + 1.0 / w, order = index), built
    # in C and heapified: the picks depend only on the entries, whose (deadline, order) keys
    # are distinct, not on the heap's layout. ~10x faster than n adds at n = 10,000.
    heap = list(
        zip(
            map(truediv, itertools.repeat(1.0), weights),
            itertools.count(),
            weights,
            itertools.count(),
            strict=False,
        )
    )
    heapq.heapify(heap)
    scheduler._heap = heap
    scheduler._order = len(heap)
    pick = scheduler.pick_and_add
    while True:
        yield pick()


class _WeightClass:
    """The endpoints of one weight, in join order, and where Envoy's EDF is among them."""

    __slots__ = ("deadline", "first_round", "head", "inverse", "members", "orders")

    def __init__(self, weight: float) -> None:
        self.inverse = 1.0 / weight  # as Envoy's ``1.0 / weight``
        self.members: list[EndpointState] = []  # join order (seq)
        self.orders: list[int] = []  # each member's order_offset once re-added (round >= 1)
        self.head = 0  # the member whose entry comes first in this class
        self.deadline = self.inverse  # the deadline of the head's round
        self.first_round = True  # the head's entry is its initial one (order = join order)


class EdfByWeight:
    """Envoy's EDF order (:class:`EdfScheduler` over the endpoints added in join order, restarted
    from scratch on every change, as Envoy rebuilds it), kept per weight class: a change costs
    O(log n) per endpoint changed plus O(k) for the restart, and a pick O(log k), for k distinct
    weights (Envoy: O(n) per change, O(log n) per pick).

    Why this is the same order, pick for pick: the entries of one weight w all start at
    deadline ``1.0 / w`` with order_offsets increasing in join order, and each one picked is
    re-added at ``deadline + 1.0 / w`` with an order_offset larger than any before. So within a
    class the entries, sorted by (deadline, order_offset), are always the members in join order
    rotated: those still in the current round (deadline ``D``) from ``head`` on, then those
    already re-added (deadline ``D + 1.0 / w``, order_offsets in the order they were picked).
    The earliest entry of the whole scheduler is the earliest of the k class heads: a heap of k
    keys ``(deadline, round > 0, order_offset or join position, class)``. An initial entry's
    order_offset is its index in join order, which ``seq`` orders alike; every re-added one is
    larger than all of those, hence the second key. Checked against :class:`EdfScheduler` and
    Envoy's reference loop in tests/strategies/test_edf.py.
    """

    __slots__ = ("_classes", "_heap", "_ids", "_order")

    def __init__(self, states: Iterable[EndpointState] = ()) -> None:
        self._classes: dict[float, _WeightClass] = {}
        self._ids: dict[int, _WeightClass] = {}  # id(class) -> class, for the heap's keys
        self._heap: list[tuple[float, bool, int, int]] = []
        self._order = 0
        for state in states:
            self.add(state)
        self.restart()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, state: EndpointState) -> None:
        """Add ``state`` with its weight, in join order; :meth:`restart` before the next pick."""
        weight = state.weight
        if not weight > 0:
            raise ValueError(f"EDF weights must be positive, not {describe(weight)}")
        group = self._classes.get(weight)
        if group is None:
            group = self._classes[weight] = _WeightClass(weight)
            self._ids[id(group)] = group
        index = bisect_left(group.members, state.seq, key=_seq)
        group.members.insert(index, state)
        group.orders.insert(index, 0)

    def remove(self, state: EndpointState, weight: float) -> None:
        """Take out ``state``, added with ``weight``; :meth:`restart` before the next pick."""
        group = self._classes[weight]
        index = bisect_left(group.members, state.seq, key=_seq)
        assert group.members[index] is state
        del group.members[index], group.orders[index]
        if not group.members:
            del self._classes[weight], self._ids[id(group)]

    def restart(self) -> None:
        """Start over as a new EdfScheduler with every endpoint added in join order; O(k)."""
        heap = []
        for group in self._classes.values():
            group.head, group.deadline, group.first_round = 0, group.inverse, True
            heap.append((group.deadline, False, group.members[0].seq, id(group)))
        heapq.heapify(heap)
        self._heap = heap
        self._order = 0

    def __iter__(self) -> EdfByWeight:
        return self

    def __next__(self) -> EndpointState:
        """The next pick; O(log k)."""
        heap = self._heap
        if not heap:
            raise IndexError("pick from an empty EdfByWeight")
        group = self._ids[heap[0][3]]
        head = group.head
        state = group.members[head]
        group.orders[head] = self._order  # re-added behind the rest, with the next offset
        self._order += 1
        head += 1
        if head == len(group.members):  # the round is over: the next one, a deadline later
            head, group.first_round = 0, False
            group.deadline += group.inverse
        group.head = head
        order = group.members[head].seq if group.first_round else group.orders[head]
        heapq.heapreplace(heap, (group.deadline, not group.first_round, order, heap[0][3]))
        return state

    def check(self, states: list[EndpointState]) -> None:
        """Assert the classes hold ``states`` (join order) by weight, one heap key each."""
        seen = sorted(
            (state for group in self._classes.values() for state in group.members), key=_seq
        )
        assert [id(s) for s in seen] == [id(s) for s in states]
        for weight, group in self._classes.items():
            assert group.members and all(s.weight == weight for s in group.members)
            assert len(group.orders) == len(group.members)
        assert len(self._heap) == len(self._classes)
