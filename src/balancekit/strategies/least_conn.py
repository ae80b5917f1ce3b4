"""Least connections on a heap and a sorted run: O(1) per select+release in sequential traffic.

The order is ``_LoadOrdered``'s (:mod:`balancekit.strategies.least`): each eligible endpoint has
one live entry ``(score, deadline, order, state)``, possibly stale (filed below its current key,
never above), and a pick takes the smallest key. What differs is where entries are filed. Next
to the heap is a *run*: a deque of entries in non-decreasing key order. An entry whose key is at
least the run's last one is appended to the run, O(1); any other is pushed on the heap, O(log n).
The smallest entry is the smaller of the two heads, and an entry leaves from a head, O(1) for
the run.

In sequential traffic (and whenever requests end in the order they started) every re-filed key
is the largest yet: a release files its endpoint with load 0 and the latest virtual deadline
(each pick moves the picked endpoint's deadline past every other one), so the run holds the
endpoints in turn, the heap stays empty, and select+release costs a ``popleft`` and an
``append`` at any n, where the heap alone cost one ``heapreplace`` (O(log n), cache misses at
10,000 endpoints: ~2x the N = 10 cost, issue 15). Out-of-order keys (concurrent requests ending
in another order, a cancellation, a membership change) go to the heap: never worse than the
heap alone. This is the two-queue idea of a monotone FIFO beside a priority queue (as in
``heapq.merge``'s sorted inputs, or the "calendar"/FIFO fast path of timer wheels).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection, Iterable
from heapq import heapify, heappop, heappush, heapreplace
from typing import Any, Final

from mypy_extensions import mypyc_attr

from .._core import FLOAT_MAX, TOKENS, BalancerBase, Clock, Delta, new_lease
from .._endpoint import EndpointLike
from .._lease import Lease
from .._state import EndpointState
from .least import _Entry, _LoadOrdered

__all__ = ["LeastConnections"]

# Module-level Final aliases: the compiled build (mypyc) reads these from a C static, where a
# name imported from another module, or ``next``, is looked up in a dict on every call.
_TOKENS: Final = TOKENS
_new_lease: Final = new_lease
_LEASE: Final = Lease
_FLOAT_MAX: Final = FLOAT_MAX
_next: Final = next
_heappop: Final = heappop
_heappush: Final = heappush
_heapreplace: Final = heapreplace


@mypyc_attr(allow_interpreted_subclasses=True)
class LeastConnections(_LoadOrdered):
    """The endpoint with the fewest requests in flight for its weight (NGINX ``least_conn``).

    Use it when request costs vary or are long-lived (streams, uploads): load follows what is
    actually outstanding. Score ``in_flight / weight``; ties go to the earliest virtual deadline,
    so idle endpoints share requests in proportion to weight. Under the balancer's lock, select
    and release are O(1) when requests end in the order they started (sequential traffic among
    them) and O(log n) otherwise: endpoints are filed in a sorted run beside a heap (see
    :mod:`balancekit.strategies.least_conn`).

    At low concurrency (one request at a time) every endpoint has 0 in flight at each pick, so
    the deadlines decide: sequential requests go round in proportion to weight (exactly 50/50
    between two equal servers), whatever their speed. It does not see latency: for that, use
    :class:`LeastResponseTime` or :class:`~balancekit.PeakEWMA`.

    >>> lb = LeastConnections(["a:1", "b:1"])
    >>> first = lb.select()
    >>> lb.select().address != first.address  # a is busy, b is idle
    True
    """

    def __init__(
        self, endpoints: Iterable[EndpointLike] = (), *, clock: Clock = time.monotonic
    ) -> None:
        super().__init__(endpoints, clock=clock)
        self._run: deque[_Entry] = deque()
        self._start()

    def _score(self, state: EndpointState) -> float:
        return state.load / state.weight

    # -- the index: a heap and a sorted run (under the lock) ------------------------------------

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        for entry in self._heap:
            entry[3].rank = None
        for entry in self._run:
            entry[3].rank = None
        for state in eligible:
            if state.deadline < self._virtual_time:  # new or returning: no credit for absence
                state.deadline = self._virtual_time + 1.0 / state.weight
        # Sorted, all in the run (timsort: O(n) for the usual already-ordered pool).
        self._run = deque(sorted([self._entry(state) for state in eligible]))
        self._heap = []
        self._live = len(eligible)

    def _apply(self, delta: Delta) -> None:
        """As ``_LoadOrdered._apply``: O(1) or O(log n) per endpoint changed."""
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

    def _head(self) -> _Entry | None:
        """The smaller of the two heads (None when both are empty); removes nothing."""
        run, heap = self._run, self._heap
        if run:
            if heap and heap[0] < run[0]:
                return heap[0]
            return run[0]
        return heap[0] if heap else None

    def _drop_head(self, entry: _Entry) -> None:
        """Remove ``entry``, the head of the run or of the heap."""
        run = self._run
        if run and run[0] is entry:
            run.popleft()
        else:
            _heappop(self._heap)

    def _file(self, entry: _Entry) -> None:
        """File a fresh entry: appended to the run when it sorts last there, else on the heap."""
        run = self._run
        if not run or entry >= run[-1]:
            run.append(entry)
        else:
            _heappush(self._heap, entry)

    def _push(self, entry: _Entry) -> None:
        """File a fresh entry that leaves another dead: compacting first when dead entries
        outnumber live ones (O(n) every n such entries, so O(1) amortised)."""
        if len(self._heap) + len(self._run) > 2 * self._live + 32:
            self._run = deque([e for e in self._run if e[3].rank is e])  # still sorted
            heap = [e for e in self._heap if e[3].rank is e]
            heapify(heap)
            self._heap = heap
        self._file(entry)

    def _top(self) -> EndpointState:
        """The endpoint with the smallest key: drops dead entries and re-files stale ones."""
        while True:
            entry: Any = self._head()
            if entry is None:
                raise self._nothing_available()
            state: EndpointState = entry[3]
            if state.rank is not entry:
                self._drop_head(entry)
                continue
            score = state.load / state.weight
            if entry[0] == score and entry[1] == state.deadline:
                return state
            self._drop_head(entry)
            self._file(self._entry(state))

    def _first_not_avoided(self, avoid: Collection[str]) -> EndpointState:
        """The smallest key not avoided: heads taken off until one is not avoided, then put
        back at the front of the run (each is at most everything left, and they come off in
        order, so the run stays sorted). O(k) plus the heap's O(log n) per entry taken."""
        skipped: list[_Entry] = []
        try:
            while True:
                entry: Any = self._head()
                if entry is None:
                    raise self._nothing_available(avoid)
                state: EndpointState = entry[3]
                self._drop_head(entry)
                if state.rank is not entry:
                    continue
                if entry[0] != state.load / state.weight or entry[1] != state.deadline:
                    self._file(self._entry(state))  # stale: it comes round again if due
                    continue
                skipped.append(entry)
                if state.endpoint.address not in avoid:
                    return state
        finally:
            run = self._run
            for entry in reversed(skipped):
                run.appendleft(entry)

    def _refile_released(self, state: EndpointState) -> None:
        """After a release: re-file ``state`` if its entry is a head or its key fell below it."""
        rank = state.rank
        if rank is None:  # no longer eligible
            return
        run, heap = self._run, self._heap
        if run and run[0] is rank:  # picked last, typically: moved, nothing left dead
            run.popleft()
            self._file(self._entry(state))
        elif heap and heap[0] is rank:
            _heappop(heap)
            self._file(self._entry(state))
        elif state.load / state.weight < rank[0]:  # deadlines never go back: only the score
            self._push(self._entry(state))

    # select and release below are BalancerBase's with _pick, _top, _take, _on_release and
    # _refile_released inlined for the common case (no avoid, no health tracker, no elapsed or a
    # finite float one, which least connections does not learn from). Everything else takes
    # the general path; keep the two in step.

    def select(self, context: Any = None, *, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        if avoid or self._health is not None:
            return super().select(context, avoid=avoid)
        started = self._clock()  # before the pick counts (as BalancerBase.select)
        lock = self._lock
        lock.acquire()
        try:
            run = self._run
            heap = self._heap
            while True:  # _top
                if heap:
                    entry: Any = heap[0]
                    if run and run[0] < entry:
                        entry = run[0]
                elif run:
                    entry = run[0]
                else:
                    raise self._nothing_available()
                state: EndpointState = entry[3]
                if state.rank is entry:
                    deadline = state.deadline
                    score = state.load / state.weight
                    if entry[1] == deadline and entry[0] == score:
                        break
                    self._drop_head(entry)
                    self._file(self._entry(state))
                else:
                    self._drop_head(entry)
            state.load += 1  # _take
            if deadline > self._virtual_time:
                self._virtual_time = deadline
            state.deadline = self._virtual_time + 1.0 / state.weight
        finally:
            lock.release()
        token = _next(_TOKENS)
        _next(state.selected)
        self._outstanding[token] = state
        if state.retired:  # removed since the lock was let go: BalancerBase._select_again
            return self._select_again(state, token, context, avoid)
        return _new_lease(_LEASE, (state.endpoint, token, started))

    def release(  # ``| Any``: see BalancerBase.release (mypyc's entry checks)
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """Report how the request on ``lease`` ended (see :meth:`BalancerBase.release`)."""
        if self._health is not None or (
            elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= _FLOAT_MAX)
        ):  # a finite float elapsed stays here: least connections does not learn from it
            return super().release(lease, ok=ok, elapsed=elapsed)
        try:
            state = self._outstanding.pop(lease[1], None)
        except (TypeError, LookupError):  # not a lease at all: the general path says so
            state = None
        if state is None:  # the general path raises InvalidLease
            return super().release(lease, ok=ok, elapsed=elapsed)
        _next(state.released)
        if not ok:
            _next(state.failed)
        lock = self._lock
        lock.acquire()
        try:
            state.load -= 1
            rank = state.rank  # _refile_released
            if rank is not None:
                run = self._run
                if run and run[0] is rank:  # picked last, typically
                    run.popleft()
                    entry: Any = (state.load / state.weight, state.deadline, state.order, state)
                    state.rank = entry
                    if not run or entry >= run[-1]:
                        run.append(entry)
                    else:
                        _heappush(self._heap, entry)
                else:
                    self._refile_released(state)
        finally:
            lock.release()
        if state.retired:
            self._forget_if_idle(state)

    def _check_invariants(self) -> None:
        BalancerBase._check_invariants(self)  # not _LoadOrdered's: it knows the heap alone
        with self._lock:
            heap, run = self._heap, list(self._run)
            for i in range(1, len(heap)):
                assert heap[(i - 1) // 2] <= heap[i]
            for i in range(1, len(run)):
                assert run[i - 1] <= run[i]
            live = [entry for entry in heap + run if entry[3].rank is entry]
            eligible = self._eligible()
            assert len(live) == len(eligible) == self._live
            assert {id(entry[3]) for entry in live} == {id(state) for state in eligible}
            for state in eligible:
                assert state.rank is not None and state.rank[3] is state
                assert state.rank[:3] <= (self._score(state), state.deadline, state.order)
                assert state.load == state.in_flight() >= 0
