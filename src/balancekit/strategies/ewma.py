"""Peak EWMA: Finagle's and Linkerd's latency-aware load, over power of two choices or a scan."""

from __future__ import annotations

import math
import random as _random
import time
from bisect import bisect_right
from collections.abc import Collection, Iterable
from math import exp, expm1, floor
from typing import Any, Final, Literal

from mypy_extensions import mypyc_attr

from .._core import (
    FLOAT_MAX,
    NATIVE_TOKENS,
    NEW_LEASE,
    SUPER,
    TOKENS,
    Clock,
    Delta,
    clock_reading,
    not_its_state,
)
from .._endpoint import EndpointLike
from .._errors import InvalidOption
from .._lease import Lease
from .._options import describe, number, seconds
from .._state import NATIVE, EndpointState
from .p2c import _TRIES, _TwoChoices
from .random import AVOID_DRAWS

__all__ = ["DEFAULT_DECAY", "DEFAULT_LATENCY", "DEFAULT_TOLERANCE", "PeakEWMA"]

# Final aliases of the counting switch and the compiled build's token source (balancekit._state):
# compiled (mypyc), a Final is a C static, a name imported from another module a dict lookup.
_NATIVE: Final = NATIVE
_NATIVE_TOKENS: Final = NATIVE_TOKENS
_NEW_LEASE: Final = NEW_LEASE

# Final aliases: mypyc reads these from C statics; a builtin (next) or a name imported from
# another module is looked up by name on every call otherwise (issue 15, perf).
_next: Final = next
_bisect_right: Final = bisect_right

#: Estimates compared without their decay lie in (_TINY, _HUGE): products stay normal floats.
_TINY: Final = 1e-300
_HUGE: Final = 1e300

#: Seconds for the estimate to fall to 1/e of itself with no news: Finagle's ``decayTime``
#: default and linkerd2-proxy's ``EWMA_DECAY`` (``linkerd/app/outbound``), both 10 s.
DEFAULT_DECAY: Final = 10.0

#: The estimate an endpoint starts with (tower's ``default_rtt``): linkerd2-proxy's
#: ``EWMA_DEFAULT_RTT``, 30 ms.
DEFAULT_LATENCY: Final = 0.030


#: Estimates within this fraction of each other count as equal (``tolerance=``): then the
#: in-flight counts decide, and with those equal the first candidate, drawn by weight.
DEFAULT_TOLERANCE: Final = 0.5


@mypyc_attr(allow_interpreted_subclasses=True)
class PeakEWMA(_TwoChoices):
    """Pick the endpoint with the lowest expected wait: latency estimate x (1 + in flight / weight).

    Each endpoint keeps a *peak-sensitive*, time-decayed moving average of its response times:

    * a sample above the current estimate replaces it at once (a slowing server is avoided at
      the first slow response, not after an average catches up);
    * a sample below it is blended into the current estimate with weight
      ``1 - exp(-dt / decay)``, ``dt`` the seconds since the previous sample (a sample after a
      long quiet spell counts for more), so a sample below the estimate never raises it;
    * with no news the estimate fades, ``estimate(now) = latency * exp(-(now - t) / decay)``,
      so a server that looked slow is eventually tried again and cannot starve.

    The estimate is read at ``now`` without being changed (tower's ``PeakEwma`` and Finagle
    decay it in place on every read; here reads are pure, so the same samples give the same
    estimates however often a pick looks). A failed request counts as at least the current
    estimate: failing fast never makes a server look fast. The cost compared is
    ``estimate(now) * (1 + in_flight / weight)`` (:meth:`cost`; tower's ``estimate * (pending
    + 1)`` for weight 1: the weight counts the requests served side by side, not the speed of
    an idle server, so an idle heavy endpoint is not taken as faster than an idle light one),
    with two rules for estimates
    that do not tell the candidates apart:

    * *tolerance*: two estimates within a factor ``1 + tolerance`` of each other (default
      0.5) count as equal; then the fewer requests in flight per weight wins, and with those
      equal too, the first candidate, which was drawn by weight. Only a difference larger than
      the tolerance decides by latency. ``tolerance=0`` compares the costs exactly (tower).
    * *not measured yet*: an endpoint with no sample of its own (just added) counts as equal
      to whichever candidate it is compared with, so the in-flight counts decide, as in least
      connections: it gets its share at once, one request at a time while its first is out,
      without being flooded as the best score would be or starved as a pessimistic default
      would be. :meth:`estimate` reports it as ``default_latency`` decaying from when it
      joined (tower's ``default_rtt``); its first sample replaces that.

    *At low concurrency* (one request at a time, every in-flight count 0) the estimates alone
    decide. Without the two rules the endpoint measured first took every sequential request
    while the other's 30 ms prior decayed towards the 2 ms measured (tens of seconds), a
    replica added later waited the same way, and afterwards whichever endpoint had the lower
    estimate kept the traffic until a peak moved it. With them, two identical servers with
    lognormal jitter (sigma 0.3) split 30,000 back-to-back requests 50/50, and a new replica's
    first request comes within tens of milliseconds at 100 requests/s
    (``python -m balancekit.sim.sequential``, docs/simulator.md). A response slower than
    ``1 + tolerance`` times the other's estimate still moves all the traffic away until it has
    decayed back within the tolerance (``decay * ln(peak / other / (1 + tolerance))`` seconds),
    which is the point of peak sensitivity: with heavy-tailed latencies (sigma 1) the larger
    share of a minute's sequential requests is 50-62 % (ten seeds).

    ``choices=2`` (default): two distinct candidates drawn by weight, the cheaper wins (Finagle,
    linkerd2-proxy), O(1) per pick; with two endpoints both are always the candidates, so the
    tolerance is what shares them. ``choices="all"``: a full scan for the cheapest, O(n),
    starting at a weighted random endpoint so that ties share by weight; estimates within the
    tolerance of the best scanned one count as the best. Both under the balancer's lock;
    release is O(1). ``rng=`` / ``seed=`` make the draws reproducible.

    Use it for backends whose speed differs or changes (mixed hardware, noisy neighbours, GC
    pauses): it moves traffic away from a slow server within one response.

    >>> now = [0.0]
    >>> lb = PeakEWMA(["a:1", "b:1"], seed=1, clock=lambda: now[0])
    >>> slow = lb.select()
    >>> lb.release(slow, elapsed=2.0)  # one very slow response: avoided at once
    >>> lb.select().address != slow.address
    True

    Sources: Finagle ``com.twitter.finagle.loadbalancer.PeakEwma`` (``Metric.observe``);
    linkerd2-proxy ``linkerd/proxy/balance`` with tower ``tower/src/load/peak_ewma.rs``
    (``RttEstimate::update``, ``decay``); the Buoyant post "Beyond Round Robin" (2016). An
    unmeasured endpoint as in Finagle's ``PeakEwma`` (cost 0 while idle, a penalty while its
    first request is pending), here as a tie so that the load decides. The tolerance is this
    library's: none of those sources has one.
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        # ``| Any``: mypyc checks a float parameter on entry (TypeError for 10**400 or a str,
        # True taken as 1.0); the options are checked below, alike in both builds.
        decay: float | Any = DEFAULT_DECAY,
        default_latency: float | Any = DEFAULT_LATENCY,
        choices: int | Literal["all"] | Any = 2,
        tolerance: float | Any = DEFAULT_TOLERANCE,
        rng: _random.Random | Any | None = None,
        seed: int | Any | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        decay = seconds("decay", decay)
        default_latency = seconds("default_latency", default_latency)
        tolerance = number(
            "tolerance", tolerance, high=100, low_open=False, high_open=False, what="in [0, 100]"
        )
        if choices != 2 and choices != "all":
            raise InvalidOption(
                f'choices must be 2 (power of two choices) or "all", not {describe(choices)}'
            )
        super().__init__(endpoints, rng=rng, seed=seed, clock=clock)
        self._decay = decay
        self._default_latency = default_latency
        self._scan = choices == "all"
        self._tie = 1.0 + tolerance  # estimates within this factor of each other are equal
        # Two estimates both sampled at most _calm seconds ago and within a factor _near of
        # each other are within the tolerance after their decay, whatever it is (select).
        self._calm = decay * (math.log(self._tie) / 2.0)
        self._near = math.sqrt(self._tie) * (1.0 - 1e-9)
        self._joined: dict[str, float] = {}  # when each member joined: the prior decays from it
        self._start()

    def estimate(self, address: EndpointLike, now: float | Any | None = None) -> float:
        """The latency estimate (seconds) of a member at ``now`` (default: the clock); O(1).

        Pure: reading changes nothing.
        """
        when = clock_reading(now)
        with self._lock:
            return self._estimate(self._member(address), self._clock() if when is None else when)

    def cost(self, address: EndpointLike, now: float | Any | None = None) -> float:
        """What a pick compares for a member: ``estimate * (1 + in_flight / weight)``; O(1)."""
        when = clock_reading(now)
        with self._lock:
            return self._cost(self._member(address), self._clock() if when is None else when)

    def _estimate(self, state: EndpointState, now: float) -> float:
        if state.latency is None:  # the prior, decaying since the endpoint joined
            latency, since = self._default_latency, now - self._joined.get(state.address, now)
        else:
            latency, since = state.latency, now - state.latency_at
        if since <= 0:
            return latency
        return latency * math.exp(-since / self._decay)

    def _cost(self, state: EndpointState, now: float) -> float:
        return self._estimate(state, now) * (1 + state.load / state.weight)

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        now, joined = self._clock(), self._joined
        self._joined = {address: joined.get(address, now) for address in self._members}
        super()._rebuild(eligible)

    def _apply(self, delta: Delta) -> None:
        if delta.full:
            self._rebuild(self._eligible_list)
            return
        joined = self._joined
        for state in delta.left:
            joined.pop(state.endpoint.address, None)
        if delta.joined:
            now = self._clock()
            for state in delta.joined:
                joined[state.endpoint.address] = now
        super()._apply(delta)

    def _sampled(self, state: EndpointState, now: float) -> float | None:
        """The estimate at ``now`` from the endpoint's own samples; ``None`` before the first."""
        if state.latency is None:
            return None
        since = now - state.latency_at
        return state.latency if since <= 0 else state.latency * math.exp(-since / self._decay)

    def _better(self, first: EndpointState, second: EndpointState) -> EndpointState:
        # _sampled inlined for both (two Python calls fewer on every pick)
        now, decay = self._clock(), self._decay
        a, b = first.latency, second.latency
        if a is not None and now > first.latency_at:
            a *= math.exp((first.latency_at - now) / decay)
        if b is not None and now > second.latency_at:
            b *= math.exp((second.latency_at - now) / decay)
        tie = self._tie
        if a is None or b is None or (a <= b * tie and b <= a * tie):  # as fast: load decides
            if second.load * first.weight < first.load * second.weight:  # in flight per weight
                return second
            return first
        if b * (1 + second.load / second.weight) < a * (1 + first.load / first.weight):
            return second
        return first

    def _choose(self, avoid: Collection[str]) -> EndpointState:
        if not self._scan:
            return super()._choose(avoid)
        table = self._table
        start = self._draw(table, avoid)  # a weighted random start: ties share by weight
        states, now = table.states, self._clock()
        n = len(states)
        offset = states.index(start)
        order = [states[(offset + step) % n] for step in range(n)]
        if avoid:
            order = [state for state in order if state.endpoint.address not in avoid]
        estimates = [self._sampled(state, now) for state in order]
        best = min((e for e in estimates if e is not None), default=None)
        if best is None:  # nothing measured yet: every estimate is equal, the load decides
            best = 0.0
        limit = best * self._tie
        scale = best if best > 0.0 else 1e-9  # a 0 s best counts as 1 ns: the load still counts
        chosen, chosen_cost = start, math.inf
        for state, estimate in zip(order, estimates, strict=True):
            if estimate is None or estimate <= limit:  # as fast as the best: least connections
                cost = scale * state.load / state.weight
            else:  # slower: its expected wait
                cost = estimate * (1 + state.load / state.weight)
            if cost < chosen_cost:
                chosen, chosen_cost = state, cost
        return chosen

    def _learn(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        now = self._clock()
        if state.latency is None:  # the first sample replaces the prior
            state.latency = elapsed if ok else max(elapsed, self._estimate(state, now))
        else:
            current = self._estimate(state, now)
            sample = elapsed if ok else max(elapsed, current)
            if sample >= current:  # a peak: take it at once
                state.latency = sample
            else:
                since = max(0.0, now - state.latency_at)
                state.latency = current + (sample - current) * -math.expm1(-since / self._decay)
        state.latency_at = now

    # select and release below are BalancerBase's with _pick, _choose, _better and _on_release/
    # _learn inlined for the common case (no avoid, no health tracker, choices=2, a finite float
    # elapsed or none): the same draws and the same arithmetic, so seeded sequences and the
    # estimates are unchanged, and one clock reading per select (the pick's, also the lease's
    # start) and one per release (there were two of each with elapsed=None). Issue 15: Python
    # calls were most of the cost (py-spy, docs/benchmarks.md). Everything else takes the
    # general path; keep the two in step (tests/perf_guard/test_fast_paths.py).
    # A sample at or above the estimate's last value (``elapsed >= latency``) is a peak without
    # computing the decay: the decayed estimate, ``latency * exp(-since / decay)`` with
    # ``exp(...) <= 1``, is at most ``latency`` (rounding is monotonic), so ``sample >= current``
    # holds whatever ``ok`` and ``since``, and the peak replaces the estimate with ``elapsed``.
    # ~1 in 2 samples of a steady server, every one of a constant latency: one ``exp`` fewer
    # (issue 15; tests/strategies/test_ewma_peak.py).
    # _decay_once: a sample below the last value with no time since (or the clock set back)
    # leaves the estimate as it is, as _learn's arithmetic does: a blend of weight
    # ``-expm1(-0.0) == 0.0`` adds ``-0.0`` (a failure's sample is the estimate itself). Else
    # exp and expm1 take the one exponent ``-since / decay``, divided once. Priced with
    # callgrind (PeakEWMA, N = 10, select + release with every sample below the estimate):
    # the decay cost 2,304 instructions over a peak (13,161 -> 15,465), 387 of them saved here.

    # _tie_calm: two candidates whose raw estimates a, b are within ``near = sqrt(tie) * (1 -
    # 1e-9)`` of each other, both sampled at most ``calm = decay * ln(tie) / 2`` seconds ago
    # (or in the future: a clock set back, no decay), are equals for _better without computing
    # the decay. Each decay factor is in [exp(-ln(tie) / 2), 1] = [1 / sqrt(tie), 1] (up to a
    # few ulps of the division and exp), so a' = a * f_a <= a <= near * b and b' * tie >= b *
    # tie / sqrt(tie) = sqrt(tie) * b: a' <= b' * tie with a margin of 1e-9 relative, far beyond
    # the rounding (~1e-15), and symmetrically. _TINY and _HUGE keep every product a normal
    # float (no subnormal rounding, no overflow). Issue 15: two exp calls fewer per pick of a
    # pool whose estimates are within the tolerance and recent (tests/strategies/
    # test_ewma_calm.py, against the general path's _better).
    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        if avoid or self._health is not None or self._scan:
            lease: Lease = SUPER(PeakEWMA, self).select(context, avoid)
            return lease
        lock = self._lock
        lock.acquire()
        try:
            owners = self._owners  # a light line of two or more: see _TwoChoices
            if owners is not None:  # _TwoChoices._choose's hot path: two subscripts
                random = self._random
                total = self._owners_total  # a float (see _TwoChoices)
                state = owners[floor(random() * total)]
                second = owners[floor(random() * total)]
                if second is state:  # _second's rejection draws, inlined (the same draws)
                    for _ in _TRIES:
                        second = owners[floor(random() * total)]
                        if second is not state:
                            break
                    else:  # _second's exact draw among the rest
                        second_or_none = self._second(self._table, state, (), 0)
                        if second_or_none is not None:
                            second = second_or_none
            else:
                guide = self._guide
                if guide is not None and guide.line is self._table:
                    # a heavy line's guide (_guide.py): one short bisection per draw, as _pair's
                    owners, random, total = guide.states, self._random, guide.scale
                    point = floor(random() * total)
                    block = point // guide.step
                    state = owners[
                        _bisect_right(guide.sums, point, guide.marks[block], guide.marks[block + 1])
                    ]
                    point = floor(random() * total)
                    block = point // guide.step
                    second = owners[
                        _bisect_right(guide.sums, point, guide.marks[block], guide.marks[block + 1])
                    ]
                    if second is state:
                        second_or_none = self._second(self._table, state, (), AVOID_DRAWS - 1)
                        if second_or_none is not None:
                            second = second_or_none
                else:  # no table of its own (yet), or one endpoint: _TwoChoices._pair
                    state, second_or_none = self._pair()
                    second = state if second_or_none is None else second_or_none
            clock = self._clock  # a local first: see p2c's _clock_local
            now = clock()
            if second is not state:  # _better
                a, b = state.latency, second.latency
                if (  # within the tolerance whatever the decay: no exp (see _tie_calm)
                    a is not None  # (_near and _calm read where used: two locals fewer)
                    and b is not None
                    and _TINY < b <= a * self._near < _HUGE
                    and a <= b * self._near
                    and now - state.latency_at <= self._calm
                    and now - second.latency_at <= self._calm
                ):
                    if state.load and (  # idle, the first wins (p2c's _idle_first)
                        second.load * state.weight < state.load * second.weight
                    ):
                        state = second
                else:
                    if a is not None and now > state.latency_at:
                        a *= exp((state.latency_at - now) / self._decay)
                    if b is not None and now > second.latency_at:
                        b *= exp((second.latency_at - now) / self._decay)
                    if a is None or b is None or (a <= b * self._tie and b <= a * self._tie):
                        if state.load and (  # idle, the first wins (as above)
                            second.load * state.weight < state.load * second.weight
                        ):
                            state = second
                    elif b * (1 + second.load / second.weight) < a * (
                        1 + state.load / state.weight
                    ):
                        state = second
            state.load += 1
            state.n_selected += 1  # under the lock: atomic in both builds (balancekit._state)
        finally:
            lock.release()
        if _NATIVE:  # one test of the build, as BalancerBase.select
            token = _NATIVE_TOKENS.take()
            self._outstanding[token] = state
            if state.retired:  # removed since the lock was let go: BalancerBase._select_again
                return self._select_again(state, token, now, context, avoid)
            return Lease(state.endpoint, token, now)  # a native class: one C call
        token = _next(TOKENS)
        self._outstanding[token] = state
        if state.retired:  # (as above)
            return self._select_again(state, token, now, context, avoid)
        lease = _NEW_LEASE(Lease)  # pure Python: no __init__ frame (_core.NEW_LEASE)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = now
        return lease

    def release(  # ``| Any``: see BalancerBase.release (mypyc's entry checks)
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """Report how the request on ``lease`` ended (see :meth:`BalancerBase.release`)."""
        if self._health is not None or (
            elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= FLOAT_MAX)
        ):
            SUPER(PeakEWMA, self).release(lease, ok=ok, elapsed=elapsed)
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
            SUPER(PeakEWMA, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        lock = self._lock
        lock.acquire()
        try:
            state.n_released += 1  # under the lock: atomic in both builds (balancekit._state)
            if failed:
                state.n_failed += 1
            state.load -= 1  # first: a clock that raises leaves the in-flight count exact
            clock = self._clock  # (as in select)
            try:
                now = clock()
            except BaseException:  # nothing learned; a removed endpoint forgotten all the same
                if state.retired:
                    self._forget_if_idle(state)
                raise
            if elapsed is None:  # a clock set back while the request ran: 0, never negative
                elapsed = now - lease._started  # within_float(elapsed), inlined:
                elapsed = (
                    elapsed if 0.0 < elapsed <= FLOAT_MAX else FLOAT_MAX if elapsed > 0.0 else 0.0
                )
            latency = state.latency  # _learn
            if latency is None:  # the first sample replaces the prior
                state.latency = max(elapsed, self._estimate(state, now)) if failed else elapsed
            elif elapsed >= latency:  # a peak, whatever the decay: no exp (see below)
                state.latency = elapsed
            else:  # below the estimate's last value: see _decay_once
                since = now - state.latency_at
                if not since <= 0:  # time passed (or NaN, as _learn): the estimate decays
                    since = -since / self._decay  # the exponent, for exp and expm1 alike
                    current = latency * exp(since)
                    if elapsed >= current:  # a peak: take it at once
                        state.latency = elapsed
                    elif not failed:  # blended in with weight 1 - exp(-since / decay)
                        state.latency = current + (elapsed - current) * -expm1(since)
                    else:  # a failure faster than the estimate: the sample is the estimate
                        state.latency = current
            state.latency_at = now
        finally:
            lock.release()
        if state.retired:
            self._forget_if_idle(state)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            assert set(self._joined) == set(self._members)
            for state in self._members.values():
                assert state.latency is None or 0 <= state.latency < math.inf
