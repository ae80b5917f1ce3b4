"""Least connections and least response time: sorted runs merged on a heap, O(1) per request.

Both file every eligible endpoint by its *key* ``(score, deadline, order)``, re-filed lazily (see
``_LoadOrdered``): a pick takes the smallest key not avoided; a release re-files the endpoint.
Ties in score go to the earliest *virtual deadline* (earliest-deadline-first, as in weighted
fair queueing: each pick moves an endpoint's deadline on by ``1 / weight``), so equally loaded
endpoints take turns in proportion to their weights instead of the first one always winning.

Where entries are filed: each weight has a *run*, a deque of entries in non-decreasing key
order. A fresh entry whose key is at least the last one of its weight's run is appended to it,
O(1); any other is pushed on the heap alone, O(log n). The heap (``heapq``) holds those entries
and the *head* of each non-empty run (a k-way merge, as ``heapq.merge``): when a head leaves,
the next entry of its run takes its place on the heap.

A pick moves the picked endpoint's virtual deadline to ``virtual time + 1 / weight`` and the
virtual time never goes back, so among endpoints of one weight each pick's deadline is the
latest yet. So in sequential traffic (and whenever requests end in the order they started) a
release files its endpoint with load 0 at the end of its run: select+release is a ``popleft``,
an ``append`` and one ``heapreplace`` on a heap of one entry per distinct weight (k), where a
heap of every endpoint did a ``heapreplace`` on n entries (cache misses at 10,000: ~2x the cost
at 10, issue 15). Out-of-order keys (requests ending in another order, cancellations, membership
changes, LeastResponseTime's endpoints slower than the tolerance) go on the heap alone: never
worse than the heap, O(log n).

LeastConnections (least_conn.py) scores ``in_flight / weight``; LeastResponseTime
(least_time.py) adds its latency term. Both use this index (LeastResponseTime since issue 15:
on a heap of every endpoint its select+release cost ~1.8x as much at 10,000 endpoints as at 10).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable
from heapq import heappop, heappush, heapreplace
from typing import Any, Final, final

from mypy_extensions import i64, mypyc_attr

from .._core import BalancerBase, Clock, Delta
from .._endpoint import EndpointLike
from .._state import NATIVE, EndpointState

__all__ = ["PROBE_STEP", "LeastConnections", "LeastResponseTime"]

# Module-level Final aliases: the compiled build (mypyc) reads these from a C static, where a
# name imported from another module is looked up in a dict on every call.
_heappop: Final = heappop
_heappush: Final = heappush
_heapreplace: Final = heapreplace
_popleft: Final = deque.popleft
_append: Final = deque.append
_NATIVE: Final = NATIVE  # whether this module runs compiled (mypyc): see _precedes

#: An entry: pure Python, a tuple ``(score, deadline, order, state, run)``; compiled, a
#: :class:`_Node` with those fields (see there). Either is found again by identity (``state.rank
#: is entry``); ``run`` is the :class:`_Run` holding it, or None for an entry on the heap alone.
#: Code both builds run reads the items by index (``entry[3]``), which a node answers as the
#: tuple. A fixed-length tuple type would be unboxed by the compiled build (mypyc) and boxed
#: into a new object at each store, so the index and ``state.rank`` would hold different copies:
#: entries are typed ``Any``, and ``state.rank = entry = (...)`` is written as two statements (a
#: chained assignment boxes once per target).
_Entry = Any

#: The score of an idle endpoint, one object: entries of idle endpoints (all of them, between
#: sequential requests) then compare their scores by identity (``PyObject_RichCompareBool``'s
#: shortcut) in the heap and the runs, and no float is allocated for them. Any zero score is
#: filed as this one (``0.0 == -0.0 == _IDLE``: the keys are the same).
_IDLE: Final[object] = 0.0

#: How far a probe's sample moves the estimate at least: a starved endpoint that has recovered
#: (or worsened) shows it within a few probes, log2(old / new) of them.
PROBE_STEP: Final = 0.5


# -- the heap of the compiled build -------------------------------------------------------------
#
# ``heapq`` compares entries as tuples: ``PyObject_RichCompare`` on each, then on their items
# (``==`` until two differ, then ``<``), ~250 instructions per comparison (callgrind, issue 15).
# Compiled (mypyc), the entries are :class:`_Node` objects with native float and int fields,
# compared by ``_precedes`` (a few native comparisons: no float boxed or unboxed, no type test)
# and sifted by the functions below with native list operations. They are heapq's algorithm
# (CPython's Lib/heapq.py ``_siftdown``/``_siftup``, which Modules/_heapqmodule.c follows)
# with ``_precedes`` for its ``<``, and ``_precedes`` answers as the tuples' comparison does,
# so the heap's layout and every pick are the same in both builds. Hand-written because heapq
# takes no key function and its C comparisons are the cost; pure Python keeps tuples and heapq
# (its C code beats any Python sift or ``__lt__``: only the compiled build makes nodes).


@final
class _Node:
    """The compiled build's entry: the tuple ``(score, deadline, order, state, run)`` as a native
    object (mypyc), its key in native fields.

    Issue 15 (session 7): with tuples, each comparison unboxed the floats again
    (``PyFloat_AsDouble``, type tests: ~620 of the compiled LeastConnections' ~5,900
    instructions per select+release at N=10), and each release allocated a tuple and freed
    one. A node's fields are read natively, and the release that re-files the endpoint picked
    last (the common case) updates its node in place, after taking it off the run and the heap:
    nothing else holds it then, so no identity test sees the change. Code that both builds run
    reads the items by index (``entry[3]``), as the tuple's.

    Keys are never NaN (scores and deadlines are finite or infinite sums, products and
    quotients of finite non-negative floats, never ``0 * inf`` nor ``inf - inf``), the one case
    where the tuples' ``==`` (which takes the same NaN object as equal to itself) and native
    floats would differ.
    """

    __slots__ = ("deadline", "next", "order", "run", "score", "state")

    def __init__(
        self, score: float, deadline: float, order: int, state: EndpointState, run: _Run | None
    ) -> None:
        self.score = score
        self.deadline = deadline
        self.order = order
        self.state = state
        self.run = run
        # The entry after this one in its run (None: the last, or on the heap alone): the run's
        # deque as a chain, so the compiled paths find the next head without indexing the deque
        # (``PyObject_GetItem`` on a boxed index, ~80 instructions; see _Run.last).
        self.next: _Node | None = None

    def __getitem__(self, index: int) -> Any:
        """The tuple entry's item ``index`` (0-4), for the code both builds share."""
        if index == 0:
            return self.score
        if index == 1:
            return self.deadline
        if index == 2:
            return self.order
        if index == 3:
            return self.state
        if index == 4:
            return self.run
        raise IndexError(index)

    def __repr__(self) -> str:
        return f"_Node{(self.score, self.deadline, self.order, self.state, self.run)!r}"


def _precedes(a: _Node, b: _Node, tie: bool) -> bool:
    """``a < b`` (``a <= b`` with ``tie``) as the tuples ``(score, deadline, order, state, run)``
    compare: the first of the key's items that differs decides. Keys equal in all three are the
    same endpoint's (orders are unique), whose tuples then compare equal (the same state; runs
    compare equal, see :class:`_Run`): ``tie``."""
    if a.score != b.score:
        return a.score < b.score
    if a.deadline != b.deadline:
        return a.deadline < b.deadline
    if a.order != b.order:
        return a.order < b.order
    return tie


def _sorts_after(last: _Node, score: float, deadline: float, order: int) -> bool:
    """``_precedes(last, entry, True)`` for an ``entry`` with this key, without making it (the
    release tests this before it updates a node in place)."""
    if last.score != score:
        return last.score < score
    if last.deadline != deadline:
        return last.deadline < deadline
    return last.order <= order


def _sift_down(heap: list[_Node], start: i64, pos: i64) -> None:
    """``heapq._siftdown``: move ``heap[pos]`` up towards ``start`` while it precedes its parent.
    Indices are ``i64``: compiled, native arithmetic and list access (``int`` is tagged)."""
    item = heap[pos]
    while pos > start:
        parent_pos = (pos - 1) >> 1
        parent = heap[parent_pos]
        if not _precedes(item, parent, False):
            break
        heap[pos] = parent
        pos = parent_pos
    heap[pos] = item


def _sift_up(heap: list[_Node], pos: i64) -> None:
    """``heapq._siftup``: the smaller child moved up to a leaf, then ``heap[pos]`` sifted down
    from there."""
    end: i64 = len(heap)
    start = pos
    item = heap[pos]
    child = 2 * pos + 1
    while child < end:
        right = child + 1
        if right < end and not _precedes(heap[child], heap[right], False):
            child = right
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    heap[pos] = item
    _sift_down(heap, start, pos)


def _push(heap: list[_Node], entry: _Node) -> None:
    """``heapq.heappush``."""
    heap.append(entry)
    _sift_down(heap, 0, len(heap) - 1)


def _pop(heap: list[_Node]) -> None:
    """``heapq.heappop``, the popped entry dropped."""
    last = heap.pop()
    if heap:
        heap[0] = last
        _sift_up(heap, 0)


def _replace(heap: list[_Node], entry: _Node) -> None:
    """``heapq.heapreplace``, the replaced entry dropped."""
    heap[0] = entry
    _sift_up(heap, 0)


def _refile_at_end(
    nodes: list[_Node], run: _Run, rank: _Node, score: float, deadline: float
) -> bool:
    """Compiled release: re-file ``rank`` (the heap's top, leading ``run``) with the key
    ``(score, deadline)`` at the end of its run, in place, if it sorts last there or is alone
    in it (whatever the run's weight, its entries stay in key order); then the run's next head
    leads it on the heap. False, changing nothing, when it would not sort last: the caller
    re-files it the general way (``_LoadOrdered._refile_released``). Shared by
    LeastConnections' and LeastResponseTime's compiled releases."""
    last = run.last  # entries[-1] (see _Run): not indexed
    if last is None or not (  # (not None: the run holds rank)
        last is rank or _sorts_after(last, score, deadline, rank.order)
    ):
        return False
    entries = run.entries
    following = rank.next  # the run's next head (None: rank was alone)
    _popleft(entries)
    rank.score = score  # off the run and the heap: updated in place
    rank.deadline = deadline
    _append(entries, rank)
    if following is None:  # alone in its run: it leads it again
        following = rank
    else:  # chained last (see _Run)
        last.next = rank
        rank.next = None
        run.last = rank
    _replace(nodes, following)
    return True


class _Run:
    """The entries of one weight filed in key order; only the first is on the heap.

    Entries compare as tuples; two reach ``run`` only when they are the same endpoint's with
    equal keys (a dead one and its successor in another run): they then count as equal,
    whichever run, where comparing deques would recurse through their entries.

    Compiled, the nodes in ``entries`` are also chained (``_Node.next``) and ``last`` is the
    last one appended: while ``entries`` is not empty, ``entries[-1]``. The compiled paths read
    these instead of indexing the deque (each index a ``PyObject_GetItem`` on a boxed int). Pure
    Python leaves ``last`` None and indexes the deque (a C subscript there).
    """

    __slots__ = ("entries", "last", "weight")

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.entries: deque[_Entry] = deque()
        self.last: _Node | None = None

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True


@mypyc_attr(allow_interpreted_subclasses=True)
class _LoadOrdered(BalancerBase):
    """The shared machinery: entries ``(score, deadline, order, state, run)`` in sorted runs
    merged on a heap (see the module's docstring), under the lock.

    An endpoint's *key* is ``(score, deadline, order)``; a pick takes the smallest. Each eligible
    endpoint has exactly one *live* entry, the one ``state.rank`` holds (others are dead and
    dropped when they reach the top, or when they outnumber the live ones: a rebuild, O(n)
    every n such entries, so O(1) amortised). A live entry may be *stale*: filed with a key
    below the endpoint's current one, never above. So when the first entry is live and up to
    date it is the smallest key; when it is stale it is re-filed with the current key and the
    first one looked at again. A key rises at a pick (one more in flight, a later deadline);
    at a release the load falls (and LeastResponseTime's latency may move either way). So a
    pick files nothing; a release re-files the endpoint when its entry is first (the endpoint
    picked last, in sequential traffic: at the end of its run, nothing left dead) and files a
    fresh entry only when its key fell below the filed one.
    """

    _observes_release = True

    def __init__(self, endpoints: Iterable[EndpointLike], *, clock: Clock) -> None:
        super().__init__(endpoints, clock=clock)
        self._heap: list[_Entry] = []
        self._runs: dict[float, _Run] = {}
        self._filed = 0  # entries in the heap and the runs, dead ones included
        self._live = 0
        self._virtual_time = 0.0
        # The lock's bound methods, kept for the compiled fast paths: ``lock.acquire()`` is
        # looked up by name on every call there (``PyObject_VectorcallMethod``), a kept bound
        # method is called directly (~12 ns per acquire + release, measured). Pure Python calls
        # ``lock.acquire()``: a kept bound method is slower there (~20 ns, measured).
        self._lock_acquire: Callable[[], object] = self._lock.acquire
        self._lock_release: Callable[[], object] = self._lock.release

    def _score(self, state: EndpointState) -> float:
        raise NotImplementedError

    def _key(self, state: EndpointState) -> tuple[float, float, int]:
        """``state``'s current key."""
        return (self._score(state), state.deadline, state.order)

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
        score = self._score(state)
        if _NATIVE:  # a node (see _Node), chained in its run (see _Run)
            node = _Node(score, state.deadline, state.order, state, run)
            last = run.last
            if not entries:
                entries.append(node)
                run.last = node
                _push(self._heap, node)
            elif last is not None and _precedes(last, node, True):  # (not None: not empty)
                entries.append(node)
                last.next = node
                run.last = node
            else:
                node.run = None
                _push(self._heap, node)
            state.rank = node
        else:
            entry: Any = (score if score else _IDLE, state.deadline, state.order, state, run)
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
        if _NATIVE:
            nodes: list[_Node] = heap  # typed: the node's fields read natively
            top = nodes[0]
            run = top.run
            following = top.next  # the run's next head (None: the run is empty after)
            if run is not None:
                run.entries.popleft()
            if following is not None:
                _replace(nodes, following)
            else:
                if run is not None:  # emptied: keep no popped node (nor its endpoint) alive
                    run.last = None  # (review7b: a removed endpoint's state stayed reachable)
                _pop(nodes)
            self._filed -= 1
            return
        run = heap[0][4]
        if run is not None:
            entries = run.entries
            entries.popleft()
            if entries:
                _heapreplace(heap, entries[0])
                self._filed -= 1
                return
        _heappop(heap)
        self._filed -= 1

    def _refile(self, state: EndpointState) -> None:
        """File a fresh entry for ``state`` whose old one stays dead where it is: after a
        rebuild from the live entries when dead ones outnumber them (O(n) every n such
        entries, so O(1) amortised)."""
        if self._filed > 2 * self._live + 32:
            live = [other for other in self._live_states() if other is not state]
            self._refile_all(live)
        self._file(state)

    def _refile_all(self, states: list[EndpointState]) -> None:
        """Drop every entry and file ``states`` afresh, in key order: each in its run."""
        self._reset()
        for state in sorted(states, key=self._key):
            self._file(state)

    def _live_states(self) -> list[EndpointState]:
        """The endpoints whose live entry is filed, in no order."""
        if _NATIVE:  # the nodes' fields read natively (by index, each a call of __getitem__:
            # at 10,000 endpoints, ~45 % of LeastResponseTime's reference refresh, callgrind)
            nodes: list[_Node] = self._heap
            found = [node.state for node in nodes if node.run is None and node.state.rank is node]
            for run in self._runs.values():
                chained: deque[_Node] = run.entries
                found += [node.state for node in chained if node.state.rank is node]
            return found
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
        for state in eligible:
            if state.deadline < self._virtual_time:  # new or returning: no credit for absence
                state.deadline = self._virtual_time + 1.0 / state.weight
        self._refile_all(eligible)
        self._live = len(eligible)

    def _apply(self, delta: Delta) -> None:
        """O(1) or O(log n) per endpoint changed: a removed one's entry is left dead (dropped
        when it surfaces or at a rebuild), a new one is filed with a deadline of ``now``'s
        virtual time (no credit for absence), and a re-weighted one gets a fresh entry (its
        key may have fallen; the old entry is dead). Before issue 11 every change re-filed every
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
                if entry[0] == self._score(state) and entry[1] == state.deadline:
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
        """After a release: re-file ``state`` if its entry is first or its key fell below it."""
        rank = state.rank
        if rank is None:  # no longer eligible
            return
        if self._heap[0] is rank:  # picked last, typically: re-filed, nothing left dead
            self._drop_top()
            self._file(state)
        elif self._score(state) < rank[0]:  # deadlines never go back: only the score
            self._refile(state)

    def _learn(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        """Update whatever the score depends on besides the load (under the lock)."""

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            heap = self._heap
            if heap:  # one shape throughout: tuples in pure Python, nodes compiled
                assert all(type(entry) is (_Node if _NATIVE else tuple) for entry in heap)
            for i in range(1, len(heap)):
                assert _key_of(heap[(i - 1) // 2]) <= _key_of(heap[i])
            heads = {id(run.entries[0]) for run in self._runs.values() if run.entries}
            alone = [entry for entry in heap if entry[4] is None]
            assert {id(entry) for entry in heap if entry[4] is not None} == heads
            assert len(heap) == len(alone) + len(heads)
            entries = list(alone)
            for weight, run in self._runs.items():
                assert run.weight == weight
                filed = list(run.entries)
                assert all(entry[4] is run for entry in filed)
                if _NATIVE and filed:  # the chain is the deque (see _Run)
                    chained: list[_Node] = [filed[0]]
                    while (following := chained[-1].next) is not None:
                        chained.append(following)
                    assert _same(chained, filed) and run.last is filed[-1]
                elif _NATIVE:  # an emptied run holds no node (review7b)
                    assert run.last is None
                assert all(_key_of(filed[i - 1]) <= _key_of(filed[i]) for i in range(1, len(filed)))
                entries += filed
            assert self._filed == len(entries)
            live = [entry for entry in entries if entry[3].rank is entry]
            eligible = self._eligible()
            assert len(live) == len(eligible) == self._live
            assert {id(entry[3]) for entry in live} == {id(state) for state in eligible}
            for state in eligible:
                assert state.rank is not None and state.rank[3] is state
                assert _key_of(state.rank) <= self._key(state)
                assert state.load == state.in_flight() >= 0


def _same(a: list[Any], b: list[Any]) -> bool:
    """The same objects in the same order."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _key_of(entry: _Entry) -> tuple[float, float, int]:
    """An entry's key ``(score, deadline, order)``, of either shape (for the invariants)."""
    return (entry[0], entry[1], entry[2])


# LeastConnections (least_conn.py) and LeastResponseTime (least_time.py), the strategies on this
# index, live in modules of their own; exported here as before.
from .least_conn import LeastConnections  # noqa: E402  (needs _LoadOrdered above)
from .least_time import LeastResponseTime  # noqa: E402
