"""Least response time: in-flight requests times a moving average of latency, on least.py's index.

The index (sorted runs per weight merged on a heap), its lazy re-filing and the
earliest-deadline-first tie rule are ``_LoadOrdered``'s
(:mod:`balancekit.strategies.least`). What this module adds is the latency term: a time-decayed
moving average per endpoint, a *tie tolerance* (estimates within it of the best count as the
best, so near-equal endpoints take turns instead of the one measured lowest taking everything),
probes of endpoints left idle, and the same treatment for endpoints not measured yet.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Collection, Iterable
from heapq import heapreplace
from math import exp
from typing import Any, Final, cast

from mypy_extensions import mypyc_attr

from .._core import FLOAT_MAX, NATIVE_TOKENS, NEW_LEASE, SUPER, TOKENS, Clock, Delta, not_its_state
from .._endpoint import EndpointLike
from .._lease import Lease
from .._options import number, seconds
from .._state import NATIVE, EndpointState
from .least import _IDLE, PROBE_STEP, _LoadOrdered, _Node, _refile_at_end, _Run

__all__ = ["DEFAULT_TOLERANCE", "LeastResponseTime"]

# Final aliases of the counting switch and the compiled build's token source (balancekit._state):
# compiled (mypyc), a Final is a C static, a name imported from another module a dict lookup.
_NATIVE: Final = NATIVE
_NATIVE_TOKENS: Final = NATIVE_TOKENS
_NEW_LEASE: Final = NEW_LEASE

# Final aliases: mypyc reads these from C statics; a builtin (next) or a name imported from
# another module is looked up by name on every call otherwise (issue 15, perf).
_next: Final = next
_heapreplace: Final = heapreplace
# deque's methods called as functions: compiled, ``d.popleft()`` looks the method up by name
# on every call (as ``DICT_POP`` in _core); pure Python, either costs the same (measured).
_popleft: Final = deque.popleft
_append: Final = deque.append
_move_to_end: Final = OrderedDict.move_to_end
_IDLE_SCORE: Final[object] = _IDLE  # the same object, read from a C static when compiled

#: Latency estimates within this fraction above the best one count as equal to it (``tolerance=``).
DEFAULT_TOLERANCE: Final = 0.5


def min_step_gap(decay: float, min_step: float) -> float:
    """The gap between samples (seconds) below which a sample's step, ``max(1 - exp(-gap /
    decay), min_step)``, is ``min_step``: release then takes ``min_step`` without calling
    ``exp`` (issue 15: between sequential requests the gap is microseconds, ~0.1 % of the
    default ``decay * -ln(1 - min_step)``, 1.05 s; the call and its arithmetic were ~60 ns of
    a pure-Python select+release).

    Exact, not approximate: the gap is 1e-6 (relatively) below ``decay * -ln(1 - min_step)``,
    where ``1 - exp(-gap / decay)`` is ``min_step`` less at least ``(1 - min_step) * 1e-6 *
    -ln(1 - min_step)``, far beyond the rounding of ``exp`` and of the division (~1e-16) for
    ``1e-6 <= min_step <= 0.999``. Outside that range, or when the product leaves the normal
    floats, 0.0: only a gap below 0 (a clock set back, where the step is ``min_step`` too)
    skips ``exp``."""
    if not 1e-6 <= min_step <= 0.999:
        return 0.0
    gap = decay * -math.log1p(-min_step) * (1.0 - 1e-6)
    return gap if 1e-300 < gap < FLOAT_MAX else 0.0


def faster_than(reference: float, tie: float) -> float:
    """The least float ``x`` with ``x * tie >= reference`` (the product rounded), for ``tie > 1``;
    ``-inf`` for ``tie <= 1``: then, for any ``latency >= 0``, ``latency < faster_than(reference,
    tie)`` is exactly ``tie > 1.0 and latency * tie < reference``, one comparison where the
    release tested ``tie``, multiplied and compared (issue 15: ~200 of ~19,200 instructions of
    a pure-Python select+release).

    Exact, not approximate: a product rounded to nearest never decreases as ``x`` grows
    (``tie > 0``), so the ``x`` whose product is below ``reference`` are exactly those below
    the least one whose product is not; ``reference / tie`` is within an ulp or two of it, and
    the two loops step from there to it (tests/strategies/test_least_time_faster.py)."""
    if not tie > 1.0:
        return -math.inf
    x = reference / tie
    if x == math.inf:  # an infinite reference: start from the largest finite quotient, a few
        x = FLOAT_MAX / tie  # ulps from where the products overflow (review6: stepping down
        # from FLOAT_MAX one ulp at a time took ~2**51 steps, holding the lock)
    while x * tie >= reference and x != -math.inf:
        x = math.nextafter(x, -math.inf)
    while x * tie < reference:
        x = math.nextafter(x, math.inf)
    return x


def _latency(state: EndpointState) -> float:
    assert state.latency is not None
    return state.latency


@mypyc_attr(allow_interpreted_subclasses=True)
class LeastResponseTime(_LoadOrdered):
    """In-flight requests combined with a decaying average of response time (NGINX ``least_time``).

    Score ``(in_flight + 1) * latency / weight``: the expected wait for a new request, the cost
    Finagle's peak-EWMA and tower's ``PeakEwma`` use. ``latency`` is an exponentially weighted
    moving average of the elapsed times reported to ``release``, decayed by time as in Finagle
    (``w = exp(-dt / decay)``): a sample after a long quiet spell counts for more. Each sample
    moves the estimate at least ``min_step`` of the way toward itself, so an estimate is never
    frozen by a burst of samples in a short time. A failed request counts as a sample of at
    least the current estimate: failing fast never makes an endpoint look faster.

    *Ties within a tolerance*: the *reference* is the lowest estimate among the endpoints,
    taken again every ``probe_interval`` seconds, and sooner (after ``probe_interval / 16`` and
    n picks) when the endpoint that set it slows past the tolerance or another is faster
    beyond it. An estimate
    up to ``1 + tolerance`` times the reference (default 0.5), or no estimate yet, scores as
    the reference itself, and such endpoints are
    equals, scored ``in_flight * reference / weight``: ordered by in-flight requests per weight
    and then by earliest deadline (they take turns in proportion to weight, as in
    :class:`LeastConnections`; with ``in_flight + 1`` the heaviest idle one would win every
    sequential request). Only an endpoint slower than that is scored by its own estimate,
    ``(in_flight + 1) * latency / weight``. ``tolerance=0`` orders by the estimates exactly.
    Before any sample the reference is ``default_latency``. A new endpoint is one of the equals
    at once: not the best score (it would take every request until measured) and not a fixed
    pessimistic default (it would wait for a probe).

    *At low concurrency* (one request at a time) the latency term alone decides. Without the
    tolerance the endpoint with the lower moving average took every request, and the other,
    no longer measured, kept the estimate that had lost until a probe: 55-99 % of 2,000
    sequential requests (ten seeds) went to one of two identical servers, and a replica added at 100
    requests/s got its first request from the probe after 1.02 s. With it they split 50/50
    (lognormal jitter, sigma 0.3) and a replica gets a request within tens of milliseconds
    (``python -m balancekit.sim.sequential``, docs/simulator.md). Very heavy tails (sigma 1)
    still push an endpoint out of the tolerance for a while: the larger share of a minute's
    sequential requests is 50-61 % (ten seeds).

    An endpoint that gets no traffic because it looked slow is *probed*: one request goes to the
    endpoint not selected for longest once it has waited ``probe_interval`` seconds, and the
    probe's sample moves its estimate at least halfway (:data:`PROBE_STEP`), so a recovered
    endpoint wins its share back within about ``probe_interval * log2(old / new latency)``
    seconds, and no endpoint starves. Select and release are O(log k) for k distinct weights
    (O(1) in the pool's size) when requests end in the order they started and the estimates are
    within the tolerance, and O(log n) otherwise, under the balancer's lock: LeastConnections'
    index (:mod:`balancekit.strategies.least`); re-taking the reference re-files every
    endpoint, O(n), once per ``probe_interval``, and early at most once per n picks (O(1)
    amortised).

    Sources: NGINX Plus ``least_time``; Finagle ``PeakEwma`` (``com.twitter.finagle.loadbalancer``);
    linkerd2-proxy ``linkerd/ewma``. The tolerance and the reference are this library's.
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        # ``| Any``: mypyc checks a float parameter on entry (TypeError for 10**400 or a str,
        # True taken as 1.0); the options are checked below, alike in both builds.
        decay: float | Any = 10.0,
        default_latency: float | Any = 0.030,
        min_step: float | Any = 0.1,
        probe_interval: float | Any = 1.0,
        tolerance: float | Any = DEFAULT_TOLERANCE,
        clock: Clock = time.monotonic,
    ) -> None:
        decay = seconds("decay", decay)
        default_latency = seconds("default_latency", default_latency)
        probe_interval = seconds("probe_interval", probe_interval)
        tolerance = number(
            "tolerance", tolerance, high=100, low_open=False, high_open=False, what="in [0, 100]"
        )
        min_step = number(
            "min_step", min_step, high=1, high_open=False, what="a fraction in (0, 1]"
        )
        super().__init__(endpoints, clock=clock)
        self._decay = decay
        self._default_latency = default_latency
        self._min_step = min_step
        self._short_gap = min_step_gap(decay, min_step)  # gaps below it step by min_step
        self._probe_interval = probe_interval
        self._tie = 1.0 + tolerance
        # The best estimate when last looked (at most probe_interval ago), or default_latency
        # before any sample: estimates up to _limit = _reference * (1 + tolerance), and those of
        # endpoints not measured yet, score as _reference. Constant between refreshes, so the
        # heap's keys still move only with the endpoint's own load and samples.
        self._reference = default_latency
        self._limit = default_latency * self._tie
        self._best: EndpointState | None = None  # whose estimate _reference is
        # For the pure-Python release's test of a sample against the reference, one comparison
        # each (faster_than): _watched is _best when there is a tolerance (else None), and a
        # latency below _faster_than is faster than _reference beyond it. Set with them.
        self._watched: EndpointState | None = None
        self._faster_than = faster_than(default_latency, self._tie)
        # When to look at the reference again: _refresh_at, possibly early (see _on_release);
        # an early look also waits for as many picks as endpoints since the last (_picks,
        # _picks_at), so its O(n) costs O(1) per pick amortised; _due_at is the periodic one.
        self._refreshed_at = self._refresh_at = self._due_at = -math.inf
        self._picks = self._picks_at = 0
        # Eligible endpoints, least recently picked first; each one's state.picked_at says when.
        # The keys are the states (hashed by identity): no id() per pick, iterated directly.
        self._last_picked: OrderedDict[EndpointState, None] = OrderedDict()
        # Its first endpoint and that one's picked_at (inf: none), kept by every change of
        # _last_picked, for the selects (see _note_oldest).
        self._oldest: EndpointState | None = None
        self._oldest_at = math.inf
        # Endpoints whose next sample answers a probe: the states themselves, not their id()s,
        # which a removed endpoint's successor could reuse and inherit a stale mark with.
        self._probing: set[EndpointState] = set()
        self._start()

    def _score(self, state: EndpointState) -> float:
        latency = state.latency
        if latency is None or latency <= self._limit:  # as fast as the best: least connections
            return state.load * self._reference / state.weight
        return (state.load + 1) * latency / state.weight

    def _rereference(self, now: float) -> None:
        """Take the best estimate as the reference again and re-file every endpoint (O(n)):
        every ``probe_interval``, and sooner (at most 16 times as often, and only after as many
        picks as there are endpoints) when the best one's estimate rises out of the tolerance
        or another's falls below it (not with ``tolerance=0``, where any move would), and at
        the first sample of all (under the lock)."""
        self._refreshed_at = now
        self._refresh_at = self._due_at = now + self._probe_interval
        self._picks_at = self._picks
        live = self._live_states()
        # min(measured, key=latency) as a loop: the first of the least (``<`` as min compares,
        # NaN included), without a Python call per endpoint (issue 15, session 8: at 10,000
        # endpoints the key calls were most of this O(n) look).
        best: EndpointState | None = None
        least: Any = None
        for state in live:
            latency = state.latency
            if latency is not None and (best is None or latency < least):
                best = state
                least = latency
        self._best = best
        self._watched = self._best if self._tie > 1.0 else None
        reference = self._default_latency if self._best is None else _latency(self._best)
        if reference == self._reference:
            return
        self._reference, self._limit = reference, reference * self._tie
        self._faster_than = faster_than(reference, self._tie)
        self._refile_all(live)

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        super()._rebuild(eligible)
        now = self._clock()
        previous = self._last_picked
        for state in eligible:
            if state not in previous:  # new or returning: counts as picked now
                state.picked_at = now
        # Least recently picked first; equal times keep the order they joined in.
        ordered = sorted(eligible, key=lambda state: state.picked_at)
        self._last_picked = OrderedDict.fromkeys(ordered)
        self._note_oldest()

    def _apply(self, delta: Delta) -> None:
        if delta.full:
            self._rebuild(self._eligible_list)
            return
        super()._apply(delta)
        last_picked = self._last_picked
        for state in delta.removed:
            del last_picked[state]
        if delta.added:
            now = self._clock()
            for state in delta.added:  # new or returning: counts as picked now (the last)
                state.picked_at = now
                last_picked[state] = None
        self._note_oldest()

    def _note_oldest(self) -> None:
        """Note the endpoint picked longest ago (``_last_picked``'s first) and when, O(1).

        The selects test ``_oldest_at`` for a probe instead of iterating ``_last_picked`` at
        every pick (issue 15: an ordered dict's iterator looks its first key up in the dict and
        touches the second's node and state, ~100 ns a pick at 10,000 endpoints; ~40 ns at 10,
        measured; compiled, since session 7, ~190 of ~6,300 instructions per select+release at
        N=10). The first changes only when it is picked (moved to the end: 16-25 % of
        sequential picks over weights 1-5) or membership changes, so every change of
        ``_last_picked`` calls this."""
        for state in self._last_picked:
            self._oldest = state
            self._oldest_at = state.picked_at
            return
        self._oldest = None
        self._oldest_at = math.inf  # never due (now - inf is -inf, or NaN for an infinite now)

    # _pick and _on_release below are _LoadOrdered's with the probe, the pick's bookkeeping and
    # the learning inlined (three Python calls fewer) and one clock reading per pick (there
    # were two): ~200 ns of ~3,900 per select+release at N=10 (measured).

    def _claim(self, state: EndpointState) -> None:
        state.picked_at = self._clock()
        self._last_picked.move_to_end(state)
        if state is self._oldest:
            self._note_oldest()
        self._take(state)

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        lock = self._lock
        lock.acquire()  # explicit: half the cost of `with` on this path
        try:
            now = self._clock()
            self._picks += 1
            if now >= self._refresh_at and (
                now >= self._due_at or self._picks - self._picks_at > self._live
            ):
                self._rereference(now)
            last_picked = self._last_picked
            state = next(iter(last_picked), None)
            if state is not None and now - state.picked_at >= self._probe_interval:
                self._probing.add(state)  # a probe: the endpoint picked longest ago
            else:
                state = self._top()
            if avoid and state.endpoint.address in avoid:
                state = self._first_not_avoided(avoid)
            state.picked_at = now  # a slot, not a (time, state) tuple stored: ~190 ns (measured)
            last_picked.move_to_end(state)
            if state is self._oldest:
                self._note_oldest()
            self._take(state)
            return state
        finally:
            lock.release()

    def _on_release(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        lock = self._lock
        lock.acquire()
        try:
            state.load -= 1
            try:
                now = self._clock()
            except BaseException:  # a clock that raises: re-filed by its load, nothing learned
                self._refile_released(state)
                raise
            if state.latency is None:
                state.latency = elapsed if ok else max(elapsed, self._default_latency)
                if self._best is None:  # the first sample of all: the next pick refreshes
                    self._refresh_at = self._due_at = now
            else:
                sample = elapsed if ok else max(elapsed, state.latency)
                # max() spelled as conditionals (the same values, max's tie rule included):
                # two builtin calls fewer, ~60 ns.
                since = now - state.latency_at
                since = since if since > 0.0 else 0.0
                step = 1.0 - math.exp(-since / self._decay)
                step = step if step > self._min_step else self._min_step
                if self._probing and state in self._probing:  # news from a starved one
                    self._probing.discard(state)
                    step = max(step, PROBE_STEP)
                latency = state.latency + step * (sample - state.latency)
                # a blend may round one ulp past its sample: past the largest float, inf (then
                # NaN at the next blend); the fast paths below do the same
                state.latency = latency if latency <= FLOAT_MAX else FLOAT_MAX
            state.latency_at = now
            latency, tie = state.latency, self._tie
            if tie > 1.0 and (
                (state is self._best and latency > self._limit) or latency * tie < self._reference
            ):  # the best has slowed, or one is faster beyond the tolerance: look again soon
                self._refresh_at = min(
                    self._refresh_at, self._refreshed_at + self._probe_interval / 16
                )
            self._refile_released(state)
        finally:
            lock.release()

    # select and release below are BalancerBase's with _pick, _top, _score, _take, _on_release
    # and _refile_released inlined for the common case (no avoid, no health tracker, a finite
    # float elapsed or none): no Python call beyond select and release themselves (there were
    # eleven, five of them _score), one clock reading per select (the pick's, also the lease's
    # start) and one per release (two with elapsed=None). The same arithmetic in the same order,
    # so the keys, estimates and picks are unchanged. Issue 15 (py-spy: the calls were most of
    # the cost; docs/benchmarks.md). Everything else takes the general path; keep the two in
    # step (tests/perf_guard/test_fast_paths.py).
    # Each has a twin for the compiled build (``_select_compiled``, ``_release_compiled``: the
    # same steps with native key tests, sifts and dict operations; issue 15, lcfast), called
    # after one test of the build, so pure Python pays no test per compiled-only step; keep
    # the three in step (tests/perf_guard runs in both builds).

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        if avoid or self._health is not None:
            general: Lease = SUPER(LeastResponseTime, self).select(context, avoid)
            return general
        if _NATIVE:  # one test of the build: each has a fast path of its own
            return self._select_compiled(context, avoid)
        lock = self._lock
        lock.acquire()
        try:
            now = self._clock()
            self._picks += 1
            if now >= self._refresh_at and (
                now >= self._due_at or self._picks - self._picks_at > self._live
            ):
                self._rereference(now)
            # The endpoint picked longest ago, as noted (_note_oldest): no iteration.
            if now - self._oldest_at >= self._probe_interval:
                state: Any = self._oldest  # (not None: _oldest_at is finite)
                self._probing.add(state)  # a probe: the endpoint picked longest ago
                deadline = state.deadline
            else:  # _top, with _score inlined
                heap, reference, limit = self._heap, self._reference, self._limit
                while True:
                    if not heap:
                        raise self._nothing_available()
                    entry: Any = heap[0]  # Any: see least._Entry (identity under mypyc)
                    state = entry[3]
                    if state.rank is entry:
                        load = state.load
                        latency = state.latency
                        if latency is None or latency <= limit:
                            score: Any = load * reference / state.weight if load else _IDLE_SCORE
                        else:
                            score = (load + 1) * latency / state.weight
                        deadline = state.deadline
                        if entry[1] == deadline and entry[0] == score:
                            break
                        # Stale (a probe moved its deadline on, or its estimate rose): re-filed
                        # with its current key. Inlined for an entry that heads a run of two or
                        # more and sorts last in it: _drop_top's heapreplace of the run's next
                        # head, then _file's append (issue 15, session 8: after probes, the
                        # probed endpoints' entries surface stale one after another).
                        run: Any = entry[4]
                        if run is not None:
                            entries = run.entries
                            if len(entries) > 1:
                                key = score if score else _IDLE_SCORE
                                fresh: Any = (key, deadline, state.order, state, run)
                                if fresh >= entries[-1]:
                                    _popleft(entries)
                                    _append(entries, fresh)
                                    state.rank = fresh  # two statements: see least._Entry
                                    _heapreplace(heap, entries[0])
                                    continue
                        self._drop_top()
                        self._file(state)
                    else:
                        self._drop_top()  # dead
            state.picked_at = now
            last_picked = self._last_picked
            _move_to_end(last_picked, state)
            if state is self._oldest:  # every probe, 16-25 % of sequential picks
                for oldest in last_picked:  # _note_oldest, inlined (not empty: state is in it)
                    self._oldest = oldest  # (issue 15, session 8: at 10,000 endpoints, a pick
                    self._oldest_at = oldest.picked_at  # every second or so each, most picks
                    break  # are probes; callgrind: the call was ~500 instructions)
            state.load += 1  # _take
            if deadline > self._virtual_time:
                self._virtual_time = deadline
            state.deadline = self._virtual_time + 1.0 / state.weight
            state.n_selected += 1  # under the lock: an int, not next() (balancekit._state)
        finally:
            lock.release()
        token = _next(TOKENS)
        self._outstanding[token] = state
        if state.retired:  # removed since the lock was let go: BalancerBase._select_again
            return self._select_again(state, token, now, context, avoid)
        lease = _NEW_LEASE(Lease)  # pure Python: no __init__ frame (_core.NEW_LEASE)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = now
        return lease

    def _select_compiled(self, context: Any, avoid: Collection[str]) -> Lease:
        """:meth:`select`'s fast path in the compiled build (mypyc): the pure one's steps, with
        the picked state typed (untyped, its attributes were read and written by name:
        ``PyObject_GetAttr``/``SetAttr``), the key tested in native floats (a
        :class:`~balancekit.strategies.least._Node`'s fields: nothing boxed), the lock's bound
        methods kept (no lookup by name), counted and leased natively (balancekit._state,
        _lease)."""
        self._lock_acquire()
        try:
            # The reading as the clock gave it, for the lease, and as a native float for the
            # arithmetic. Called as Any: a Clock returns float, so mypyc unboxed the reading and
            # boxed it again for the lease (an int one as a float).
            clock: Any = self._clock
            clocked = clock()
            now: float = clocked
            self._picks += 1
            if now >= self._refresh_at and (
                now >= self._due_at or self._picks - self._picks_at > self._live
            ):
                self._rereference(now)
            # The endpoint picked longest ago, as noted (_note_oldest): no iteration. Typed:
            # compiled, an untyped state (None, then an entry's Any item) was read and written
            # by name (``PyObject_GetAttr``/``SetAttr``, ~1,500 instructions a pick).
            oldest = self._oldest
            state: EndpointState
            if oldest is not None and now - self._oldest_at >= self._probe_interval:
                state = oldest
                self._probing.add(state)  # a probe: the endpoint picked longest ago
                deadline = state.deadline
            else:  # _top, with _score inlined
                heap: list[_Node] = self._heap  # typed: its items are nodes, read natively
                reference, limit = self._reference, self._limit
                while True:
                    if not heap:
                        raise self._nothing_available()
                    entry = heap[0]
                    top: EndpointState = entry.state  # typed, then narrowed: native attributes
                    state = top
                    filed: object = state.rank  # object: ``is`` with an Any narrows entry to Any
                    if filed is entry:  # (and mypyc read its fields boxed, compared generically)
                        load = state.load
                        latency = state.latency
                        deadline = state.deadline
                        if latency is None or latency <= limit:
                            value = load * reference / state.weight if load else 0.0
                        else:
                            value = (load + 1) * latency / state.weight
                        if entry.deadline == deadline and entry.score == value:
                            break
                        self._drop_top()  # stale: re-filed with its current key
                        self._file(state)
                    else:
                        self._drop_top()  # dead
            state.picked_at = now
            _move_to_end(self._last_picked, state)
            if state is oldest:  # 16-25 % of sequential picks (see _note_oldest)
                self._note_oldest()
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
            return self._select_again(state, token, clocked, context, avoid)
        return Lease(state.endpoint, token, clocked)  # a native class: one C call

    def release(  # ``| Any``: see BalancerBase.release (mypyc's entry checks)
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """Report how the request on ``lease`` ended (see :meth:`BalancerBase.release`)."""
        if self._health is not None or (
            elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= FLOAT_MAX)
        ):
            SUPER(LeastResponseTime, self).release(lease, ok=ok, elapsed=elapsed)
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
            SUPER(LeastResponseTime, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        lock = self._lock
        lock.acquire()
        try:
            state.n_released += 1  # under the lock: ints, not next() (balancekit._state)
            if failed:
                state.n_failed += 1
            state.load -= 1  # first: a clock that raises leaves the in-flight count exact
            try:
                now = self._clock()
            except BaseException:  # and re-filed by its load (_on_release): nothing learned
                self._refile_released(state)
                if state.retired:
                    self._forget_if_idle(state)
                raise
            if elapsed is None:  # a clock set back while the request ran: 0, never negative
                elapsed = now - lease._started  # within_float(elapsed), inlined:
                elapsed = (
                    elapsed if 0.0 < elapsed <= FLOAT_MAX else FLOAT_MAX if elapsed > 0.0 else 0.0
                )
            latency = state.latency
            if latency is None:
                state.latency = latency = max(elapsed, self._default_latency) if failed else elapsed
                if self._best is None:  # the first sample of all: the next pick refreshes
                    self._refresh_at = self._due_at = now
            else:
                sample = latency if failed and elapsed < latency else elapsed  # failed: the max
                since = now - state.latency_at
                if since < self._short_gap:  # 1 - exp(-since / decay) <= min_step: no exp
                    step = self._min_step
                else:
                    since = since if since > 0.0 else 0.0
                    step = 1.0 - exp(-since / self._decay)
                    step = step if step > self._min_step else self._min_step
                if self._probing and state in self._probing:  # news from a starved one
                    self._probing.discard(state)
                    step = PROBE_STEP if step < PROBE_STEP else step  # max(step, PROBE_STEP)
                latency = latency + step * (sample - latency)
                state.latency = latency = latency if latency <= FLOAT_MAX else FLOAT_MAX
            state.latency_at = now
            # tie > 1.0 and (... or latency * tie < self._reference), as _faster_than has it
            if (state is self._watched and latency > self._limit) or latency < self._faster_than:
                # the best has slowed, or one is faster beyond the tolerance: look again soon
                self._refresh_at = min(
                    self._refresh_at, self._refreshed_at + self._probe_interval / 16
                )
            rank = state.rank  # _refile_released, with _score inlined
            if rank is not None:
                load = state.load
                if latency <= self._limit:
                    score: Any = load * self._reference / state.weight if load else _IDLE_SCORE
                else:
                    score = (load + 1) * latency / state.weight
                heap = self._heap
                if heap[0] is rank:  # picked last, typically
                    run: _Run | None = rank[4]
                    if run is not None:  # it leads its run
                        entries = run.entries
                        last = entries[-1]
                        fresh: Any = (score, state.deadline, state.order, state, run)
                        # Filed in its run if it sorts last there (or is alone in it): whatever
                        # the run's weight, its entries stay in key order.
                        if last is rank or fresh >= last:
                            _popleft(entries)  # the run's next entry, or this one, leads it now
                            _append(entries, fresh)
                            state.rank = fresh  # two statements: see least._Entry
                            _heapreplace(heap, entries[0])
                        else:
                            self._refile_released(state)
                    else:
                        self._refile_released(state)
                elif score < rank[0]:  # _refile_released's other case: its key fell below the
                    self._refile(state)  # filed one (a probe's release, typically, does not)
        finally:
            lock.release()
        if state.retired:
            self._forget_if_idle(state)

    def _release_compiled(self, lease: Lease | Any, ok: bool | Any, elapsed: float | None) -> None:
        """:meth:`release`'s fast path in the compiled build (mypyc): the pure one's steps,
        with the outstanding entry read and deleted natively (a subscript and a ``del``, as
        ``BalancerBase.release``: no call of ``dict.pop``), the lock's bound methods kept, the
        endpoint's node re-filed at the end of its run in place (``least._refile_at_end``, as
        LeastConnections: no entry allocated), and ``elapsed`` typed (:meth:`release` passes
        None or a finite float only): the estimate's arithmetic in native floats (typed
        ``Any``, it was ``PyNumber_*`` calls and boxed floats)."""
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
            SUPER(LeastResponseTime, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        state.n_released += 1  # counted where this build makes it atomic (balancekit._state)
        if failed:
            state.n_failed += 1
        self._lock_acquire()
        try:
            state.load -= 1  # first: a clock that raises leaves the in-flight count exact
            try:
                now = self._clock()
            except BaseException:  # and re-filed by its load (_on_release): nothing learned
                self._refile_released(state)
                if state.retired:
                    self._forget_if_idle(state)
                raise
            # Native floats: ``elapsed`` and ``state.latency`` are optional, so boxed; each use of
            # them unboxed them again (``PyFloat_AsDouble``, ~5 a release).
            waited: float
            if elapsed is None:  # a clock set back while the request ran: 0, never negative
                gap: float = now - lease._started  # within_float(gap), inlined:
                waited = gap if 0.0 < gap <= FLOAT_MAX else FLOAT_MAX if gap > 0.0 else 0.0
            else:
                waited = elapsed
            latency: float
            known = state.latency
            if known is None:
                latency = waited if not failed else max(waited, self._default_latency)
                state.latency = latency
                if self._best is None:  # the first sample of all: the next pick refreshes
                    self._refresh_at = self._due_at = now
            else:
                latency = known
                # max(waited, latency) when failed
                sample = waited if not failed or waited >= latency else latency
                since = now - state.latency_at
                if since < self._short_gap:  # 1 - exp(-since / decay) <= min_step: no exp
                    step = self._min_step
                else:
                    since = since if since > 0.0 else 0.0
                    step = 1.0 - exp(-since / self._decay)
                    step = step if step > self._min_step else self._min_step
                if self._probing and state in self._probing:  # news from a starved one
                    self._probing.discard(state)
                    step = max(step, PROBE_STEP)
                latency = latency + step * (sample - latency)
                latency = latency if latency <= FLOAT_MAX else FLOAT_MAX
                state.latency = latency
            state.latency_at = now
            tie = self._tie
            if tie > 1.0 and (
                (state is self._best and latency > self._limit) or latency * tie < self._reference
            ):  # the best has slowed, or one is faster beyond the tolerance: look again soon
                self._refresh_at = min(
                    self._refresh_at, self._refreshed_at + self._probe_interval / 16
                )
            rank = cast("_Node | None", state.rank)  # _refile_released, with _score inlined
            if rank is not None:
                nodes: list[_Node] = self._heap
                run = rank.run
                if nodes[0] is rank and run is not None:  # picked last, typically: it leads its run
                    load = state.load
                    if latency <= self._limit:
                        score = load * self._reference / state.weight if load else 0.0
                    else:
                        score = (load + 1) * latency / state.weight
                    if not _refile_at_end(nodes, run, rank, score, state.deadline):
                        self._refile_released(state)
                else:
                    self._refile_released(state)
        finally:
            self._lock_release()
        if state.retired:
            self._forget_if_idle(state)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            assert len(self._last_picked) == self._live
            assert self._watched is (self._best if self._tie > 1.0 else None)
            assert self._faster_than == faster_than(self._reference, self._tie)
            first = next(iter(self._last_picked), None)
            assert self._oldest is first
            # Not ``is``: compiled, the floats are native (each read boxes a new object). NaN
            # (a clock that returns it) equals itself here.
            noted, expected = self._oldest_at, (math.inf if first is None else first.picked_at)
            assert noted == expected or (noted != noted and expected != expected)
