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
from typing import Any, Final, cast

from mypy_extensions import mypyc_attr

from .._core import FLOAT_MAX, NATIVE_TOKENS, NEW_LEASE, SUPER, TOKENS, Clock, not_its_state
from .._endpoint import EndpointLike
from .._lease import Lease
from .._state import NATIVE, EndpointState
from .least import _IDLE, _LoadOrdered, _Node, _refile_at_end, _Run

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
    # Each has a twin for the compiled build (``_select_compiled``, ``_release_compiled``: the
    # same steps with native key tests, sifts and dict operations; issue 15, lcfast), called
    # after one test of the build, so pure Python pays no test per compiled-only step; keep
    # the three in step (tests/perf_guard runs in both builds).

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        if avoid or self._health is not None:
            general: Lease = SUPER(LeastConnections, self).select(context, avoid)
            return general
        if _NATIVE:  # one test of the build: each has a fast path of its own
            return self._select_compiled(context, avoid)
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
                    score = load / state.weight if load else _IDLE_SCORE
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
            state.n_selected += 1  # under the lock: an int, not next() (balancekit._state)
        finally:
            lock.release()
        token = _next(_TOKENS)
        self._outstanding[token] = state
        if state.retired:  # removed since the lock was let go: BalancerBase._select_again
            return self._select_again(state, token, started, context, avoid)
        lease = _NEW_LEASE(Lease)  # pure Python: no __init__ frame (_core.NEW_LEASE)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = started
        return lease

    def _select_compiled(self, context: Any, avoid: Collection[str]) -> Lease:
        """:meth:`select`'s fast path in the compiled build (mypyc): the pure one's steps, with
        the key tested in native floats (a :class:`~balancekit.strategies.least._Node`'s fields:
        nothing boxed), the lock's bound methods kept (no lookup by name), counted and leased
        natively (balancekit._state, _lease)."""
        # Before the pick counts (as BalancerBase.select). Called as Any: the reading kept as
        # the clock gave it, for the lease (a Clock returns float: mypyc unboxed the reading and
        # boxed it again, an int one as a float).
        clock: Any = self._clock
        started = clock()
        self._lock_acquire()
        try:
            heap: list[_Node] = self._heap  # typed: its items are nodes, read natively
            while True:  # _top
                if not heap:
                    raise self._nothing_available()
                entry = heap[0]
                state = entry.state
                filed: object = state.rank  # object: ``is`` with an Any narrows entry to Any
                if filed is entry:  # (and mypyc read its fields boxed, compared generically)
                    deadline = state.deadline
                    load = state.load
                    if entry.deadline == deadline and entry.score == (
                        load / state.weight if load else 0.0
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
            self._lock_release()
        token = _NATIVE_TOKENS.take()  # counted where this build makes it atomic
        state.n_selected += 1
        self._outstanding[token] = state
        if state.retired:  # removed since the lock was let go: BalancerBase._select_again
            return self._select_again(state, token, started, context, avoid)
        return Lease(state.endpoint, token, started)  # a native class: one C call

    def release(  # ``| Any``: see BalancerBase.release (mypyc's entry checks)
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """Report how the request on ``lease`` ended (see :meth:`BalancerBase.release`)."""
        if self._health is not None or (
            elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= _FLOAT_MAX)
        ):  # a finite float elapsed stays here: least connections does not learn from it
            SUPER(LeastConnections, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        if _NATIVE:  # one test of the build: each has a fast path of its own
            self._release_compiled(lease, ok, elapsed)
            return None
        failed = not ok  # first: an ok whose truth raises changes nothing (review7)
        try:
            if type(lease) is Lease:
                endpoint = lease._endpoint  # (before the pop: a blank lease has none)
                state = self._outstanding.pop(lease._token, None)
            else:
                state = None
        except (TypeError, LookupError, AttributeError):  # not a lease: the general path says
            state = None
        if (
            state is not None and state.endpoint is not endpoint and not_its_state(state, endpoint)
        ):  # another lease's token: put back, refused below
            self._outstanding[lease._token] = state
            state = None
        if state is None:  # the general path raises InvalidLease
            SUPER(LeastConnections, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        lock = self._lock
        lock.acquire()
        try:
            state.n_released += 1  # under the lock: ints, not next() (balancekit._state)
            if failed:
                state.n_failed += 1
            load = state.load - 1
            state.load = load
            rank = state.rank  # _refile_released, for the entry picked last
            if rank is not None:
                heap = self._heap
                run: _Run | None = rank[4]
                if heap[0] is rank and run is not None:  # it leads its run
                    entries = run.entries
                    last = entries[-1]
                    score = load / state.weight if load else _IDLE_SCORE
                    entry: Any = (score, state.deadline, state.order, state, run)
                    # Filed in its run if it sorts last there (or is alone in it): whatever the
                    # run's weight, its entries stay in key order.
                    if last is rank or entry >= last:
                        _popleft(entries)  # the run's next entry, or this one, leads it now
                        _append(entries, entry)
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

    def _release_compiled(self, lease: Lease | Any, ok: bool | Any, elapsed: Any) -> None:
        """:meth:`release`'s fast path in the compiled build (mypyc): the pure one's steps,
        with the outstanding entry read and deleted natively (a subscript and a ``del``, as
        ``BalancerBase.release``: no call of ``dict.pop``), the lock's bound methods kept, and
        the endpoint's node re-filed at the end of its run in place, compared and sifted
        natively (``least._refile_at_end``, shared with LeastResponseTime): no entry is
        allocated or freed."""
        failed = not ok  # first: an ok whose truth raises changes nothing (review7)
        try:
            if type(lease) is Lease:
                outstanding = self._outstanding
                token = lease._token
                state = outstanding.get(token)
                if state is not None:
                    endpoint = lease._endpoint
                    if state.endpoint is not endpoint and not_its_state(state, endpoint):
                        state = None  # another lease's token: the general path refuses it
                    else:
                        del outstanding[token]  # two releases that both read it: one del fails
            else:
                state = None
        except (TypeError, LookupError, AttributeError):  # not a lease: the general path says
            state = None
        if state is None:  # the general path raises InvalidLease
            SUPER(LeastConnections, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        state.n_released += 1  # counted where this build makes it atomic (balancekit._state)
        if failed:
            state.n_failed += 1
        self._lock_acquire()
        try:
            load = state.load - 1
            state.load = load
            rank = cast("_Node | None", state.rank)  # _refile_released, for the entry picked last
            if rank is not None:
                nodes: list[_Node] = self._heap
                run = rank.run
                if nodes[0] is rank and run is not None:  # it leads its run
                    score = load / state.weight if load else 0.0
                    if not _refile_at_end(nodes, run, rank, score, state.deadline):
                        self._refile_released(state)
                else:
                    self._refile_released(state)
        finally:
            self._lock_release()
        if state.retired:
            self._forget_if_idle(state)
