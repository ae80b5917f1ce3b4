"""Least connections on least.py's index (sorted runs per weight merged on a heap): O(1) per
sequential request.

The index and its order are ``_LoadOrdered``'s (:mod:`balancekit.strategies.least`): each
eligible endpoint has one live entry, possibly stale (filed with a key below its current one,
never above), found by identity (``state.rank is entry``); a pick takes the smallest key
``(in_flight / weight, deadline, order)``. In sequential traffic (and whenever requests end in
the order they started) select+release is a ``popleft``, an ``append`` and one ``heapreplace``
on a heap of one entry per distinct weight (k); out-of-order keys go on the heap alone,
O(log n). What this module adds is the score and select/release with the common case inlined.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection, Iterable
from heapq import heapreplace
from typing import Any, Final

from mypy_extensions import mypyc_attr

from .._core import FLOAT_MAX, NATIVE_TOKENS, NEW_LEASE, SUPER, TOKENS, Clock
from .._endpoint import EndpointLike
from .._lease import Lease
from .._state import NATIVE, EndpointState
from .least import _IDLE, _Entry, _equal, _LoadOrdered, _precedes, _replace, _Run

__all__ = ["LeastConnections"]

# Final aliases of the counting switch and the compiled build's token source (balancekit._state):
# compiled (mypyc), a Final is a C static, a name imported from another module a dict lookup.
_NATIVE: Final = NATIVE
_NATIVE_TOKENS: Final = NATIVE_TOKENS
_NEW_LEASE: Final = NEW_LEASE

# Module-level Final aliases: the compiled build (mypyc) reads these from a C static, where a
# name imported from another module, or ``next``, is looked up in a dict on every call.
_TOKENS: Final = TOKENS
_FLOAT_MAX: Final = FLOAT_MAX
_next: Final = next
_heapreplace: Final = heapreplace
# deque's methods called as functions: compiled, ``d.popleft()`` looks the method up by name
# on every call (as ``DICT_POP`` in _core); pure Python, either costs the same (measured).
_popleft: Final = deque.popleft
_append: Final = deque.append
_IDLE_SCORE: Final[object] = _IDLE  # the same object, read from a C static when compiled


@mypyc_attr(allow_interpreted_subclasses=True)
class LeastConnections(_LoadOrdered):
    """The endpoint with the fewest requests in flight for its weight (NGINX ``least_conn``).

    Use it when request costs vary or are long-lived (streams, uploads): load follows what is
    actually outstanding. Score ``in_flight / weight``; ties go to the earliest virtual deadline,
    so idle endpoints share requests in proportion to weight. Under the balancer's lock,
    select and release are O(log k) for k distinct weights (O(1) in the pool's size) when
    requests end in the order they started, as sequential ones do, and O(log n) otherwise:
    each weight's endpoints are filed in a sorted run, the runs merged on a heap (see
    :mod:`balancekit.strategies.least`).

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
        self._start()

    def _score(self, state: EndpointState) -> float:
        return state.load / state.weight

    # select and release below are BalancerBase's with _pick, _top, _take, _on_release and
    # _refile_released inlined for the common case (no avoid, no health tracker, no elapsed or a
    # finite float one, which least connections does not learn from). Everything else takes
    # the general path; keep the two in step.

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        if avoid or self._health is not None:
            general: Lease = SUPER(LeastConnections, self).select(context, avoid)
            return general
        clock = self._clock  # LOAD_ATTR is specialised by 3.11, LOAD_METHOD of it is not
        started = clock()  # before the pick counts (as BalancerBase.select)
        lock = self._lock
        if _NATIVE:  # the bound method kept: no lookup by name (_LoadOrdered)
            self._lock_acquire()
        else:
            lock.acquire()
        try:
            heap = self._heap
            while True:  # _top
                if not heap:
                    raise self._nothing_available()
                entry: _Entry = heap[0]  # a tuple: compiled, its items are read natively
                state: EndpointState = entry[3]
                if state.rank is entry:
                    deadline = state.deadline
                    load = state.load
                    if _NATIVE:  # the same tests with native floats (_equal): no float boxed
                        if _equal(entry[1], deadline) and _equal(
                            entry[0], load / state.weight if load else 0.0
                        ):
                            break
                    elif entry[1] == deadline and entry[0] == (
                        load / state.weight if load else _IDLE_SCORE
                    ):
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
            if _NATIVE:
                self._lock_release()
            else:
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
        if _NATIVE:  # a native class: one C call
            return Lease(state.endpoint, token, started)
        lease = _NEW_LEASE(Lease)  # pure Python: no __init__ frame (_core.NEW_LEASE)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = started
        return lease

    def release(  # ``| Any``: see BalancerBase.release (mypyc's entry checks)
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """Report how the request on ``lease`` ended (see :meth:`BalancerBase.release`)."""
        if self._health is not None or (
            elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= _FLOAT_MAX)
        ):  # a finite float elapsed stays here: least connections does not learn from it
            SUPER(LeastConnections, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        try:
            if type(lease) is not Lease:
                state = None
            elif _NATIVE:  # two native dict operations, not a call of dict.pop (as _core's)
                outstanding = self._outstanding
                token = lease._token
                state = outstanding.get(token)
                if state is not None:
                    del outstanding[token]  # two releases that both read it: one del fails
            else:
                state = self._outstanding.pop(lease._token, None)
        except (TypeError, LookupError, AttributeError):  # not a lease: the general path says
            state = None
        if state is None:  # the general path raises InvalidLease
            SUPER(LeastConnections, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        if _NATIVE:  # counted where this build makes it atomic (balancekit._state)
            state.n_released += 1
            if not ok:
                state.n_failed += 1
        else:
            _next(state.released)
            if not ok:
                _next(state.failed)
        lock = self._lock
        if _NATIVE:  # the bound method kept: no lookup by name (_LoadOrdered)
            self._lock_acquire()
        else:
            lock.acquire()
        try:
            load = state.load - 1
            state.load = load
            rank: _Entry | None = state.rank  # _refile_released, for the entry picked last
            if rank is not None:
                heap = self._heap
                run: _Run | None = rank[4]
                if heap[0] is rank and run is not None:  # it leads its run
                    entries = run.entries
                    last: _Entry = entries[-1]
                    score = load / state.weight if load else _IDLE_SCORE
                    entry: Any = (score, state.deadline, state.order, state, run)
                    # Filed in its run if it sorts last there (or is alone in it): whatever the
                    # run's weight, its entries stay in key order.
                    if last is rank or (_precedes(last, entry, True) if _NATIVE else entry >= last):
                        _popleft(entries)  # the run's next entry, or this one, leads it now
                        _append(entries, entry)
                        state.rank = entry
                        if _NATIVE:
                            _replace(heap, entries[0])
                        else:
                            _heapreplace(heap, entries[0])
                    else:
                        self._refile_released(state)
                else:
                    self._refile_released(state)
        finally:
            if _NATIVE:
                self._lock_release()
            else:
                lock.release()
        if state.retired:
            self._forget_if_idle(state)
