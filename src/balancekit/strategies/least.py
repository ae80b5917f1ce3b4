"""Least connections and least response time: a heap of endpoints by load, O(log n).

Both keep every eligible endpoint in a binary heap (``heapq``, with lazy invalidation) of entries
``(score, deadline, order, state)``. A pick takes the first entry not avoided and re-files it;
a release re-files the released endpoint. Ties in score go to the earliest *virtual deadline*
(earliest-deadline-first, as in weighted fair queueing: each pick moves an endpoint's deadline
on by ``1 / weight``), so equally loaded endpoints take turns in proportion to their weights
instead of the first one always winning.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable
from heapq import heapify, heappop, heappush, heapreplace
from typing import Any

from .._core import BalancerBase, Clock
from .._endpoint import EndpointLike
from .._errors import InvalidOption
from .._state import EndpointState

__all__ = ["PROBE_STEP", "LeastConnections", "LeastResponseTime"]

_Entry = tuple[float, float, int, EndpointState]

#: How far a probe's sample moves the estimate at least: a starved endpoint that has recovered
#: (or worsened) shows it within a few probes, log2(old / new) of them.
PROBE_STEP = 0.5


class _LoadOrdered(BalancerBase):
    """The shared machinery: a binary heap of (score, deadline, order, state), under the lock.

    Invalidation is lazy: re-filing an endpoint pushes a fresh entry and records it in
    ``state.rank``; an entry is live only while it *is* its state's rank, and dead ones are
    dropped when they reach the top or when they outnumber the live ones (a rebuild, O(n) every
    n operations, so O(1) amortised). Pick and release are O(log n) in C (``heapq``).
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

    def _top(self) -> EndpointState:
        """The endpoint with the smallest live key, dropping dead entries above it."""
        heap = self._heap
        while heap:
            entry = heap[0]
            if entry[3].rank is entry:
                return entry[3]
            heappop(heap)
        raise self._nothing_available()

    def _first_not_avoided(self, avoid: Collection[str]) -> EndpointState:
        heap, skipped = self._heap, []
        try:
            while heap:
                entry = heappop(heap)
                if entry[3].rank is not entry:
                    continue
                skipped.append(entry)
                if entry[3].endpoint.address not in avoid:
                    return entry[3]
            raise self._nothing_available(avoid)
        finally:
            for entry in skipped:
                heappush(heap, entry)

    def _refile(self, state: EndpointState) -> None:
        """Push ``state``'s fresh entry, compacting when dead entries outnumber live ones."""
        heap = self._heap
        if len(heap) > 2 * self._live + 32:
            self._heap = heap = [e for e in heap if e[3].rank is e]
            heapify(heap)
        entry: _Entry = (self._score(state), state.deadline, state.order, state)
        state.rank = entry
        if heap and heap[0][3] is state:
            heapreplace(heap, entry)  # the common case: re-filing the endpoint just picked
        else:
            heappush(heap, entry)

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        lock = self._lock
        lock.acquire()  # explicit: half the cost of `with` on this path
        try:
            state = self._top()
            if avoid and state.endpoint.address in avoid:
                state = self._first_not_avoided(avoid)
            self._before_take(state)
            state.load += 1
            if state.deadline > self._virtual_time:
                self._virtual_time = state.deadline
            state.deadline = self._virtual_time + 1.0 / state.weight
            self._refile(state)
            return state
        finally:
            lock.release()

    def _before_take(self, state: EndpointState) -> None:
        """Hook for a strategy's bookkeeping on the endpoint about to be picked (under the lock)."""

    def _on_release(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        lock = self._lock
        lock.acquire()
        try:
            state.load -= 1
            self._learn(state, ok, elapsed)
            if state.rank is not None:
                self._refile(state)
        finally:
            lock.release()

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
            for state in eligible:
                assert state.rank is not None and state.rank[0] == self._score(state)
                assert state.load == state.in_flight() >= 0


class LeastConnections(_LoadOrdered):
    """The endpoint with the fewest requests in flight for its weight (NGINX ``least_conn``).

    Use it when request costs vary or are long-lived (streams, uploads): load follows what is
    actually outstanding. Score ``in_flight / weight``; ties go to the earliest virtual deadline,
    so idle endpoints share requests in proportion to weight. Select and release are O(log n)
    (a heap), under the balancer's lock.

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


class LeastResponseTime(_LoadOrdered):
    """In-flight requests combined with a decaying average of response time (NGINX ``least_time``).

    Score ``(in_flight + 1) * latency / weight``: the expected wait for a new request, the cost
    Finagle's peak-EWMA and tower's ``PeakEwma`` use. ``latency`` is an exponentially weighted
    moving average of the elapsed times reported to ``release``, decayed by time as in Finagle
    (``w = exp(-dt / decay)``): a sample after a long quiet spell counts for more. Each sample
    moves the estimate at least ``min_step`` of the way toward itself, so an estimate is never
    frozen by a burst of samples in a short time. A failed request counts as a sample of at
    least the current estimate: failing fast never makes an endpoint look faster.

    New endpoints start at ``default_latency``. An endpoint that gets no traffic because it looked
    slow is *probed*: one request goes to the endpoint not selected for longest once it has waited
    ``probe_interval`` seconds, and the probe's sample moves its estimate at least halfway
    (:data:`PROBE_STEP`), so a recovered endpoint wins its share back within about
    ``probe_interval * log2(old / new latency)`` seconds, and no endpoint starves. Equal
    endpoints tie and take turns (earliest deadline first).
    Select and release are O(log n), under the balancer's lock.

    Sources: NGINX Plus ``least_time``; Finagle ``PeakEwma`` (``com.twitter.finagle.loadbalancer``);
    linkerd2-proxy ``linkerd/ewma``.
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        decay: float = 10.0,
        default_latency: float = 0.030,
        min_step: float = 0.1,
        probe_interval: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        for name, value in (
            ("decay", decay),
            ("default_latency", default_latency),
            ("probe_interval", probe_interval),
        ):
            if not isinstance(value, int | float) or not 0 < value < math.inf:
                raise InvalidOption(f"{name} must be a positive number of seconds, not {value!r}")
        if not isinstance(min_step, int | float) or not 0 < min_step <= 1:
            raise InvalidOption(f"min_step must be a fraction in (0, 1], not {min_step!r}")
        super().__init__(endpoints, clock=clock)
        self._decay = float(decay)
        self._default_latency = float(default_latency)
        self._min_step = float(min_step)
        self._probe_interval = float(probe_interval)
        self._last_picked: OrderedDict[int, tuple[float, EndpointState]] = OrderedDict()
        self._probing: set[int] = set()  # endpoints whose next sample answers a probe
        self._start()

    def _score(self, state: EndpointState) -> float:
        latency = self._default_latency if state.latency is None else state.latency
        return (state.load + 1) * latency / state.weight

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        super()._rebuild(eligible)
        now = self._clock()
        previous = self._last_picked
        self._last_picked = OrderedDict()
        for state in eligible:  # keep the least-recently-picked order of survivors
            self._last_picked[id(state)] = previous.get(id(state), (now, state))
        self._last_picked = OrderedDict(sorted(self._last_picked.items(), key=lambda i: i[1][0]))

    def _top(self) -> EndpointState:
        now = self._clock()
        picked_at, state = next(iter(self._last_picked.values()), (now, None))
        if state is not None and now - picked_at >= self._probe_interval:
            self._probing.add(id(state))
            return state
        return super()._top()

    def _before_take(self, state: EndpointState) -> None:
        self._last_picked[id(state)] = (self._clock(), state)
        self._last_picked.move_to_end(id(state))

    def _learn(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        now = self._clock()
        if state.latency is None:
            state.latency = elapsed if ok else max(elapsed, self._default_latency)
        else:
            sample = elapsed if ok else max(elapsed, state.latency)
            since = max(0.0, now - state.latency_at)
            step = max(self._min_step, 1.0 - math.exp(-since / self._decay))
            if id(state) in self._probing:  # fresh news from a starved endpoint
                self._probing.discard(id(state))
                step = max(step, PROBE_STEP)
            state.latency += step * (sample - state.latency)
        state.latency_at = now

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            assert len(self._last_picked) == self._live
