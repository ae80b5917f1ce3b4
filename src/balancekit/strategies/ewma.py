"""Peak EWMA: Finagle's and Linkerd's latency-aware load, over power of two choices or a scan."""

from __future__ import annotations

import math
import random as _random
import time
from collections.abc import Collection, Iterable
from typing import Literal

from .._core import Clock
from .._endpoint import EndpointLike
from .._errors import InvalidOption
from .._options import seconds
from .._state import EndpointState
from .p2c import _TwoChoices

__all__ = ["DEFAULT_DECAY", "DEFAULT_LATENCY", "PeakEWMA"]

#: Seconds for the estimate to fall to 1/e of itself with no news: Finagle's ``decayTime``
#: default and linkerd2-proxy's ``EWMA_DECAY`` (``linkerd/app/outbound``), both 10 s.
DEFAULT_DECAY = 10.0

#: The estimate an endpoint starts with (tower's ``default_rtt``): linkerd2-proxy's
#: ``EWMA_DEFAULT_RTT``, 30 ms.
DEFAULT_LATENCY = 0.030


class PeakEWMA(_TwoChoices):
    """Pick the endpoint with the lowest expected wait: latency estimate x (in flight + 1).

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
    estimates however often a pick looks). Until its first sample an endpoint's estimate is
    ``default_latency`` decaying from when it joined (as tower's: a too-pessimistic default does
    not keep a new endpoint out for long); the first sample replaces it (tower blends it in,
    so a fast new server is overestimated until the prior has decayed, about
    ``decay * ln(default / latency)`` seconds). A failed request counts as at least the current
    estimate: failing fast never makes a server look fast. The cost compared is
    ``estimate(now) * (in_flight + 1) / weight`` (:meth:`cost`).

    ``choices=2`` (default): two distinct candidates drawn by weight, the cheaper wins (Finagle,
    linkerd2-proxy), O(1) per pick. ``choices="all"``: a full scan for the cheapest, O(n),
    starting at a weighted random endpoint so that ties share by weight. Both under the
    balancer's lock; release is O(1). ``rng=`` / ``seed=`` make the draws reproducible.

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
    (``RttEstimate::update``, ``decay``); the Buoyant post "Beyond Round Robin" (2016).
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        decay: float = DEFAULT_DECAY,
        default_latency: float = DEFAULT_LATENCY,
        choices: int | Literal["all"] = 2,
        rng: _random.Random | None = None,
        seed: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        decay = seconds("decay", decay)
        default_latency = seconds("default_latency", default_latency)
        if choices != 2 and choices != "all":
            raise InvalidOption(
                f'choices must be 2 (power of two choices) or "all", not {choices!r}'
            )
        super().__init__(endpoints, rng=rng, seed=seed, clock=clock)
        self._decay = decay
        self._default_latency = default_latency
        self._scan = choices == "all"
        self._joined: dict[str, float] = {}  # when each member joined: the prior decays from it
        self._start()

    def estimate(self, address: EndpointLike, now: float | None = None) -> float:
        """The latency estimate (seconds) of a member at ``now`` (default: the clock); O(1).

        Pure: reading changes nothing.
        """
        with self._lock:
            return self._estimate(self._member(address), self._clock() if now is None else now)

    def cost(self, address: EndpointLike, now: float | None = None) -> float:
        """What a pick compares for a member: ``estimate * (in_flight + 1) / weight``; O(1)."""
        with self._lock:
            return self._cost(self._member(address), self._clock() if now is None else now)

    def _estimate(self, state: EndpointState, now: float) -> float:
        if state.latency is None:  # the prior, decaying since the endpoint joined
            latency, since = self._default_latency, now - self._joined.get(state.address, now)
        else:
            latency, since = state.latency, now - state.latency_at
        if since <= 0:
            return latency
        return latency * math.exp(-since / self._decay)

    def _cost(self, state: EndpointState, now: float) -> float:
        return self._estimate(state, now) * (state.load + 1) / state.weight

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        now, joined = self._clock(), self._joined
        self._joined = {address: joined.get(address, now) for address in self._members}
        super()._rebuild(eligible)

    def _better(self, first: EndpointState, second: EndpointState) -> EndpointState:
        now = self._clock()
        return second if self._cost(second, now) < self._cost(first, now) else first

    def _choose(self, avoid: Collection[str]) -> EndpointState:
        if not self._scan:
            return super()._choose(avoid)
        table = self._table
        start = self._draw(table, avoid)  # a weighted random start: ties share by weight
        states, now = table.states, self._clock()
        best, best_cost = start, self._cost(start, now)
        offset = states.index(start)
        n = len(states)
        for step in range(1, n):
            state = states[(offset + step) % n]
            if avoid and state.endpoint.address in avoid:
                continue
            cost = self._cost(state, now)
            if cost < best_cost:
                best, best_cost = state, cost
        return best

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

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            assert set(self._joined) == set(self._members)
            for state in self._members.values():
                assert state.latency is None or 0 <= state.latency < math.inf
