"""Least connections on a heap merging sorted runs, one per weight: O(1) per sequential request.

The order is ``_LoadOrdered``'s (:mod:`balancekit.strategies.least`): each eligible endpoint has
one live entry, possibly stale (filed with a key below its current one, never above), found by
identity (``state.rank is entry``); a pick takes the smallest key ``(score, deadline, order)``.
What differs is where entries are filed. Each weight has a *run*: a deque of entries in
non-decreasing key order. A fresh entry whose key is at least the last one of its weight's run
is appended to it, O(1); any other is pushed on the heap alone, O(log n). The heap holds those
entries and the *head* of each non-empty run (a k-way merge, as ``heapq.merge``): when a head
leaves, the next entry of its run takes its place on the heap.

A pick moves the picked endpoint's virtual deadline to ``virtual time + 1 / weight`` and the
virtual time never goes back, so among endpoints of one weight each pick's deadline is the
latest yet. So in sequential traffic (and whenever requests end in the order they started) a
release files its endpoint with load 0 at the end of its run: select+release is a ``popleft``,
an ``append`` and one ``heapreplace`` on a heap of one entry per distinct weight (k), where
the heap alone did a ``heapreplace`` on n entries (cache misses at 10,000: ~2x the cost at 10,
issue 15). Out-of-order keys (requests ending in another order, cancellations, membership
changes) go on the heap alone, as before: never worse than the heap, O(log n).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection, Iterable
from heapq import heappop, heappush, heapreplace
from typing import Any, Final

from mypy_extensions import mypyc_attr

from .._core import FLOAT_MAX, NATIVE_TOKENS, TOKENS, BalancerBase, Clock, Delta
from .._endpoint import EndpointLike
from .._lease import Lease
from .._state import NATIVE, EndpointState
from .least import _LoadOrdered

__all__ = ["LeastConnections"]

# Final aliases of the counting switch and the compiled build's token source (balancekit._state):
# compiled (mypyc), a Final is a C static, a name imported from another module a dict lookup.
_NATIVE: Final = NATIVE
_NATIVE_TOKENS: Final = NATIVE_TOKENS

# Module-level Final aliases: the compiled build (mypyc) reads these from a C static, where a
# name imported from another module, or ``next``, is looked up in a dict on every call.
_TOKENS: Final = TOKENS
_FLOAT_MAX: Final = FLOAT_MAX
_next: Final = next
_heappop: Final = heappop
_heappush: Final = heappush
_heapreplace: Final = heapreplace

#: The score of an idle endpoint, one object: entries of idle endpoints (all of them, between
#: sequential requests) then compare their scores by identity (``PyObject_RichCompareBool``'s
#: shortcut) in the heap and the runs, and no float is divided and allocated for them.
_IDLE: Final[object] = 0.0

#: An entry ``(score, deadline, order, state, run)``: ``run`` is the :class:`_Run` holding it, or
#: None for an entry on the heap alone. Typed ``tuple[Any, ...]``: see least.py's ``_Entry``.
_Entry = tuple[Any, ...]


class _Run:
    """The entries of one weight filed in key order; only the first is on the heap.

    Entries compare as tuples; two reach ``run`` only when they are the same endpoint's with
    equal keys (a dead one and its successor in another run): they then count as equal,
    whichever run, where comparing deques would recurse through their entries.
    """

    __slots__ = ("entries", "weight")

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.entries: deque[_Entry] = deque()

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True


@mypyc_attr(allow_interpreted_subclasses=True)
class LeastConnections(_LoadOrdered):
    """The endpoint with the fewest requests in flight for its weight (NGINX ``least_conn``).

    Use it when request costs vary or are long-lived (streams, uploads): load follows what is
    actually outstanding. Score ``in_flight / weight``; ties go to the earliest virtual deadline,
    so idle endpoints share requests in proportion to weight. Under the balancer's lock,
    select and release are O(log k) for k distinct weights (O(1) in the pool's size) when
    requests end in the order they started, as sequential ones do, and O(log n) otherwise:
    each weight's endpoints are filed in a sorted run, the runs merged on a heap (see
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
        self._runs: dict[float, _Run] = {}
        self._filed = 0  # entries in the heap and the runs, dead ones included
        self._start()

    def _score(self, state: EndpointState) -> float:
        return state.load / state.weight

    # -- the index, under the lock ---------------------------------------------------------------

    def _file(self, state: EndpointState) -> None:
        """File a fresh entry for ``state``'s current key and make it the live one: at the end of
        its weight's run when it sorts last there (on the heap too if the run was empty), else
        on the heap alone."""
        weight = state.weight
        run = self._runs.get(weight)
        if run is None:
            run = _Run(weight)
            self._runs[weight] = run
        entries = run.entries
        load = state.load
        entry: Any = (load / weight if load else _IDLE, state.deadline, state.order, state, run)
        if not entries:
            entries.append(entry)
            _heappush(self._heap, entry)
        elif entry >= entries[-1]:
            entries.append(entry)
        else:
            entry = (entry[0], entry[1], entry[2], state, None)
            _heappush(self._heap, entry)
        state.rank = entry
        self._filed += 1

    def _drop_top(self) -> None:
        """Remove the heap's first entry; if it heads a run, the run's next one takes its place."""
        heap = self._heap
        run: _Run | None = heap[0][4]
        if run is None:
            _heappop(heap)
        else:
            entries = run.entries
            entries.popleft()
            if entries:
                _heapreplace(heap, entries[0])
            else:
                _heappop(heap)
        self._filed -= 1

    def _refile(self, state: EndpointState) -> None:
        """File a fresh entry for ``state`` whose old one stays dead where it is: after a
        rebuild from the live entries when dead ones outnumber them (O(n) every n such
        entries, so O(1) amortised)."""
        if self._filed > 2 * self._live + 32:
            live = [other for other in self._live_states() if other is not state]
            self._reset()
            for other in sorted(live, key=_current_key):
                self._file(other)
        self._file(state)

    def _live_states(self) -> list[EndpointState]:
        """The endpoints whose live entry is filed, in no order."""
        live = [e[3] for e in self._heap if e[4] is None and e[3].rank is e]
        for run in self._runs.values():
            live += [e[3] for e in run.entries if e[3].rank is e]
        return live

    def _reset(self) -> None:
        for state in self._live_states():
            state.rank = None
        self._heap = []
        self._runs = {}
        self._filed = 0

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        self._reset()
        for state in eligible:
            if state.deadline < self._virtual_time:  # new or returning: no credit for absence
                state.deadline = self._virtual_time + 1.0 / state.weight
        for state in sorted(eligible, key=_current_key):  # in order: every entry in a run
            self._file(state)
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
            self._refile(state)
        for state in delta.reweighted:
            self._refile(state)

    def _first(self) -> EndpointState | None:
        """The endpoint with the smallest key (None if none is filed): drops dead entries and
        re-files stale ones on the way."""
        heap = self._heap
        while heap:
            entry: Any = heap[0]
            state: EndpointState = entry[3]
            if state.rank is entry:
                if entry[0] == state.load / state.weight and entry[1] == state.deadline:
                    return state
                self._drop_top()
                self._file(state)
            else:
                self._drop_top()
        return None

    def _top(self) -> EndpointState:
        state = self._first()
        if state is None:
            raise self._nothing_available()
        return state

    def _first_not_avoided(self, avoid: Collection[str]) -> EndpointState:
        """The smallest key not avoided: first entries taken off until one is not avoided,
        then filed again. O(k log n) for k taken (as the heap alone)."""
        skipped: list[EndpointState] = []
        try:
            while True:
                state = self._first()
                if state is None:
                    raise self._nothing_available(avoid)
                self._drop_top()
                skipped.append(state)
                if state.endpoint.address not in avoid:
                    return state
        finally:
            for state in skipped:
                self._file(state)

    def _refile_released(self, state: EndpointState) -> None:
        """After a release: re-file ``state`` if its entry is first or its key fell below it."""
        rank = state.rank
        if rank is None:  # no longer eligible
            return
        if self._heap[0] is rank:  # picked last, typically: re-filed, nothing left dead
            self._drop_top()
            self._file(state)
        elif state.load / state.weight < rank[0]:  # deadlines never go back: only the score
            self._refile(state)

    # select and release below are BalancerBase's with _pick, _top, _take, _on_release and
    # _refile_released inlined for the common case (no avoid, no health tracker, no elapsed or a
    # finite float one, which least connections does not learn from). Everything else takes
    # the general path; keep the two in step.

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        if avoid or self._health is not None:
            return super().select(context, avoid=avoid)
        clock = self._clock  # LOAD_ATTR is specialised by 3.11, LOAD_METHOD of it is not
        started = clock()  # before the pick counts (as BalancerBase.select)
        lock = self._lock
        lock.acquire()
        try:
            heap = self._heap
            while True:  # _top
                if not heap:
                    raise self._nothing_available()
                entry: Any = heap[0]
                state: EndpointState = entry[3]
                if state.rank is entry:
                    deadline = state.deadline
                    load = state.load
                    score = load / state.weight if load else _IDLE
                    if entry[1] == deadline and entry[0] == score:
                        break
                    self._drop_top()
                    self._file(state)
                else:
                    self._drop_top()
            state.load += 1  # _take
            if deadline > self._virtual_time:
                self._virtual_time = deadline
            state.deadline = self._virtual_time + 1.0 / state.weight
        finally:
            lock.release()
        if _NATIVE:  # counted where this build makes it atomic (balancekit._state)
            token = _NATIVE_TOKENS.take()
            state.n_selected += 1
        else:
            token = _next(_TOKENS)
            _next(state.selected)
        self._outstanding[token] = state
        if state.retired:  # removed since the lock was let go: BalancerBase._select_again
            return self._select_again(state, token, context, avoid)
        return Lease(state.endpoint, token, started)

    def release(  # ``| Any``: see BalancerBase.release (mypyc's entry checks)
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """Report how the request on ``lease`` ended (see :meth:`BalancerBase.release`)."""
        if self._health is not None or (
            elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= _FLOAT_MAX)
        ):  # a finite float elapsed stays here: least connections does not learn from it
            return super().release(lease, ok=ok, elapsed=elapsed)
        try:
            state = self._outstanding.pop(lease._token, None) if type(lease) is Lease else None
        except (TypeError, LookupError, AttributeError):  # not a lease: the general path says
            state = None
        if state is None:  # the general path raises InvalidLease
            return super().release(lease, ok=ok, elapsed=elapsed)
        if _NATIVE:  # counted where this build makes it atomic (balancekit._state)
            state.n_released += 1
            if not ok:
                state.n_failed += 1
        else:
            _next(state.released)
            if not ok:
                _next(state.failed)
        lock = self._lock
        lock.acquire()
        try:
            load = state.load - 1
            state.load = load
            rank = state.rank  # _refile_released, for the entry picked last
            if rank is not None:
                heap = self._heap
                run: _Run | None = rank[4]
                if heap[0] is rank and run is not None:  # it leads its run
                    entries = run.entries
                    last = entries[-1]
                    score = load / state.weight if load else _IDLE
                    entry: Any = (score, state.deadline, state.order, state, run)
                    # Filed in its run if it sorts last there (or is alone in it): whatever the
                    # run's weight, its entries stay in key order.
                    if last is rank or entry >= last:
                        entries.popleft()  # the run's next entry, or this one, leads it now
                        entries.append(entry)
                        state.rank = entry
                        _heapreplace(heap, entries[0])
                    else:
                        self._refile_released(state)
                else:
                    self._refile_released(state)
        finally:
            lock.release()
        if state.retired:
            self._forget_if_idle(state)

    def _check_invariants(self) -> None:
        BalancerBase._check_invariants(self)  # not _LoadOrdered's: it knows the heap alone
        with self._lock:
            heap = self._heap
            for i in range(1, len(heap)):
                assert heap[(i - 1) // 2] <= heap[i]
            heads = {id(run.entries[0]) for run in self._runs.values() if run.entries}
            alone = [entry for entry in heap if entry[4] is None]
            assert {id(entry) for entry in heap if entry[4] is not None} == heads
            assert len(heap) == len(alone) + len(heads)
            entries = list(alone)
            for weight, run in self._runs.items():
                assert run.weight == weight
                filed = list(run.entries)
                assert all(entry[4] is run for entry in filed)
                assert all(filed[i - 1][:3] <= filed[i][:3] for i in range(1, len(filed)))
                entries += filed
            assert self._filed == len(entries)
            live = [entry for entry in entries if entry[3].rank is entry]
            eligible = self._eligible()
            assert len(live) == len(eligible) == self._live
            assert {id(entry[3]) for entry in live} == {id(state) for state in eligible}
            for state in eligible:
                assert state.rank is not None and state.rank[3] is state
                assert state.rank[:3] <= (self._score(state), state.deadline, state.order)
                assert state.load == state.in_flight() >= 0


def _current_key(state: EndpointState) -> tuple[float, float, int]:
    return (state.load / state.weight, state.deadline, state.order)
