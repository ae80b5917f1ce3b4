"""Envoy's earliest-deadline-first scheduler, the order of its weighted round robin.

Each entry has a *deadline*: when added, ``current_time + 1 / weight``. A pick takes the entry
with the earliest deadline (ties: the one added first), moves ``current_time`` to that deadline
and adds the entry back, so an endpoint of weight *w* comes round every ``1 / w`` of virtual
time. Floating-point arithmetic exactly as Envoy's C++ (IEEE doubles, ``1.0 / weight``), so the
same weights give the same order, pick for pick. O(log n) per pick (a binary heap).

Source: Envoy ``source/common/upstream/edf_scheduler.h`` (``EdfScheduler::add``, ``pick``,
``pickAndAdd``; ``EdfEntry`` ordered by deadline then ``order_offset_``), used by
``RoundRobinLoadBalancer`` when host weights differ; gRPC gRFC A31 describes the same scheduler.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from operator import truediv
from typing import Generic, TypeVar

from .._options import describe

__all__ = ["EdfScheduler", "edf_sequence"]

T = TypeVar("T")


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
