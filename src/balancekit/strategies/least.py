"""Least connections and least response time: a heap of endpoints by load, O(log n).

Both keep every eligible endpoint in a binary heap (``heapq``, with lazy invalidation) of entries
``(score, deadline, order, state)``, re-filed lazily (see ``_LoadOrdered``): a pick takes the
first entry that is up to date and not avoided; a release re-files the endpoint. Ties in score
go to the earliest *virtual deadline* (earliest-deadline-first, as in weighted fair queueing:
each pick moves an endpoint's deadline on by ``1 / weight``), so equally loaded endpoints take
turns in proportion to their weights instead of the first one always winning.

LeastConnections (least_conn.py) keeps these keys and this order but files the entries in sorted
runs, one per weight, merged on the heap: O(1) in n for sequential traffic (issue 15).
LeastResponseTime (least_time.py) uses the heap here as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from heapq import heapify, heappop, heappush, heapreplace
from typing import Any, Final

from mypy_extensions import mypyc_attr

from .._core import BalancerBase, Clock, Delta
from .._endpoint import EndpointLike
from .._state import EndpointState

__all__ = ["PROBE_STEP", "LeastConnections", "LeastResponseTime"]

#: A heap entry (score, deadline, order, state), found again by identity (``state.rank is
#: entry``). A fixed-length tuple type would be unboxed by the compiled build (mypyc) and boxed
#: into a new object at each store, so the heap and ``state.rank`` would hold different copies:
#: entries are typed ``tuple[Any, ...]``, a local that is re-assigned a fresh entry ``Any`` (not
#: narrowed to the literal's fixed-length type), and ``state.rank = entry = (...)`` is written
#: as two statements (a chained assignment boxes once per target).
_Entry = tuple[Any, ...]

#: How far a probe's sample moves the estimate at least: a starved endpoint that has recovered
#: (or worsened) shows it within a few probes, log2(old / new) of them.
PROBE_STEP: Final = 0.5


@mypyc_attr(allow_interpreted_subclasses=True)
class _LoadOrdered(BalancerBase):
    """The shared machinery: a binary heap of (score, deadline, order, state), under the lock.

    An endpoint's *key* is ``(score, deadline, order)``; a pick takes the smallest. Each eligible
    endpoint has exactly one *live* entry, the one ``state.rank`` holds (others are dead and
    dropped when they reach the top, or when they outnumber the live ones: a compaction, O(n)
    every n pushes, so O(1) amortised). A live entry may be *stale*: filed with a key below the
    endpoint's current one, never above. So when the top entry is live and up to date it is the
    smallest key; when it is stale it is re-filed with the current key and the top looked at
    again. A key only rises at a pick (one more in flight, a later deadline) and may fall at a
    release (one fewer in flight, a new latency). So a pick files nothing; a release re-files
    the endpoint in place when its entry is the top (the endpoint picked last, in sequential
    traffic) and pushes a fresh entry only when its key fell below the filed one. Sequential
    traffic then costs one ``heapreplace`` per select+release, not a ``heapreplace`` and a
    ``heappush`` plus the compactions those pushes cause. Pick and release are O(log n) in C.
    """

    _observes_release = True

    def __init__(self, endpoints: Iterable[EndpointLike], *, clock: Clock) -> None:
        super().__init__(endpoints, clock=clock)
        self._heap: list[_Entry] = []
        self._live = 0
        self._virtual_time = 0.0

    def _score(self, state: EndpointState) -> float:
        raise NotImplementedError

    def _entry(self, state: EndpointState) -> _Entry:
        """A fresh entry for ``state``'s current key, recorded as its live one."""
        entry: _Entry = (self._score(state), state.deadline, state.order, state)
        state.rank = entry
        return entry

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        for entry in self._heap:
            entry[3].rank = None
        for state in eligible:
            if state.deadline < self._virtual_time:  # new or returning: no credit for absence
                state.deadline = self._virtual_time + 1.0 / state.weight
        self._heap = [self._entry(state) for state in eligible]
        heapify(self._heap)
        self._live = len(eligible)

    def _apply(self, delta: Delta) -> None:
        """O(log n) per endpoint changed: a removed one's entry is left dead (dropped when it
        surfaces or at a compaction), a new one is pushed with a deadline of ``now``'s virtual
        time (no credit for absence), and a re-weighted one gets a fresh entry (its key may
        have fallen; the old entry is dead). Before issue 11 every change re-filed every
        endpoint and moved every overdue deadline up to the virtual time; now only the
        endpoints that changed are touched."""
        if delta.full:
            self._rebuild(self._eligible_list)
            return
        for state in delta.removed:
            state.rank = None
            self._live -= 1
        for state in delta.added:
            if state.deadline < self._virtual_time:  # new or returning: no credit for absence
                state.deadline = self._virtual_time + 1.0 / state.weight
            self._live += 1
            self._push(self._entry(state))
        for state in delta.reweighted:
            self._push(self._entry(state))

    def _top(self) -> EndpointState:
        """The endpoint with the smallest key: drops dead entries and re-files stale ones."""
        heap = self._heap
        while heap:
            entry: Any = heap[0]
            state: EndpointState = entry[3]
            if state.rank is not entry:
                heappop(heap)
                continue
            score = self._score(state)
            if entry[0] == score and entry[1] == state.deadline:
                return state
            entry = (score, state.deadline, state.order, state)
            state.rank = entry
            heapreplace(heap, entry)
        raise self._nothing_available()

    def _first_not_avoided(self, avoid: Collection[str]) -> EndpointState:
        heap, skipped = self._heap, []
        try:
            while heap:
                entry = heappop(heap)
                state: EndpointState = entry[3]
                if state.rank is not entry:
                    continue
                if entry[0] != self._score(state) or entry[1] != state.deadline:
                    heappush(heap, self._entry(state))  # stale: it comes round again if due
                    continue
                skipped.append(entry)
                if state.endpoint.address not in avoid:
                    return state
            raise self._nothing_available(avoid)
        finally:
            for entry in skipped:
                heappush(heap, entry)

    def _claim(self, state: EndpointState) -> None:
        self._take(state)

    def _take(self, state: EndpointState) -> None:
        """Count a pick of ``state`` and move its deadline on (under the lock); files nothing."""
        state.load += 1
        if state.deadline > self._virtual_time:
            self._virtual_time = state.deadline
        state.deadline = self._virtual_time + 1.0 / state.weight

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        lock = self._lock
        lock.acquire()  # explicit: half the cost of `with` on this path
        try:
            state = self._top()
            if avoid and state.endpoint.address in avoid:
                state = self._first_not_avoided(avoid)
            self._take(state)
            return state
        finally:
            lock.release()

    def _on_release(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        lock = self._lock
        lock.acquire()
        try:
            state.load -= 1
            self._learn(state, ok, elapsed)
            self._refile_released(state)
        finally:
            lock.release()

    def _on_cancel(self, state: EndpointState) -> None:
        """A cancelled pick: its load back, re-filed; nothing learned (no latency sample)."""
        with self._lock:
            state.load -= 1
            self._refile_released(state)

    def _refile_released(self, state: EndpointState) -> None:
        """After a release: re-file ``state`` if its entry is the top or its key fell below it."""
        rank = state.rank
        if rank is None:  # no longer eligible
            return
        score = self._score(state)
        if self._heap[0] is rank:  # picked last, typically: re-filed in place, nothing left dead
            entry: Any = (score, state.deadline, state.order, state)
            state.rank = entry
            heapreplace(self._heap, entry)
        elif score < rank[0]:  # deadlines never go back: the key fell only if the score did
            entry = (score, state.deadline, state.order, state)
            state.rank = entry
            self._push(entry)

    def _push(self, entry: _Entry) -> None:
        """Push a fresh entry, compacting first when dead entries outnumber live ones."""
        heap = self._heap
        if len(heap) > 2 * self._live + 32:
            self._heap = heap = [e for e in heap if e[3].rank is e]
            heapify(heap)
        heappush(heap, entry)

    def _learn(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        """Update whatever the score depends on besides the load (under the lock)."""

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            heap = self._heap
            for i in range(1, len(heap)):
                assert heap[(i - 1) // 2] <= heap[i]
            live = [entry for entry in heap if entry[3].rank is entry]
            eligible = self._eligible()
            assert len(live) == len(eligible) == self._live
            assert {id(entry[3]) for entry in live} == {id(state) for state in eligible}
            for state in eligible:
                assert state.rank is not None and state.rank[3] is state
                assert state.rank[:3] <= (self._score(state), state.deadline, state.order)
                assert state.load == state.in_flight() >= 0


# LeastConnections (least_conn.py, its own index) and LeastResponseTime (least_time.py) outgrew
# this module; exported here as before.
from .least_conn import LeastConnections  # noqa: E402  (needs _LoadOrdered above)
from .least_time import LeastResponseTime  # noqa: E402
