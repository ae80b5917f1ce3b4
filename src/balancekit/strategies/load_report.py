"""gRPC's client-side weighted round robin (gRFC A58): weights from the load servers report.

Servers report their load with each response (ORCA: ``cpu_utilization``, ``qps``, ``eps``, e.g.
parsed from an ``endpoint-load-metrics`` header or a trailer). The client turns each report
into a weight, ``qps / (utilization + eps / qps * error_utilization_penalty)``, and serves the
endpoints in weighted round robin, so a server that is busier per query gets fewer queries.
"""

from __future__ import annotations

import itertools
import math
import time
from array import array
from collections.abc import Collection, Iterable
from operator import attrgetter
from typing import Any

from mypy_extensions import mypyc_attr

from .._core import BalancerBase, Clock, Delta, clock_reading
from .._endpoint import Endpoint, EndpointLike
from .._errors import InvalidOption
from .._lease import Lease
from .._options import describe
from .._state import EndpointState
from ._orca import MAX_WEIGHT, MIN_WEIGHT, LoadReport
from ._wrr_stats import WrrStats
from .round_robin import rotate_past

__all__ = ["STRIDE_MAX_WEIGHT", "LoadReport", "LoadReportWeightedRoundRobin", "stride_weights"]

#: The largest scaled weight of the stride scheduler (a uint16, as gRPC's ``kMaxWeight``).
STRIDE_MAX_WEIGHT = 65535
#: No endpoint weighs more than this many times the mean (gRPC's ``kMaxRatio``) ...
STRIDE_MAX_RATIO = 10.0
#: ... nor less than this fraction of the mean (gRPC's ``kMinRatio``).
STRIDE_MIN_RATIO = 0.01

#: Scheduler candidates a pick tries against ``avoid`` before it takes the next endpoint not
#: avoided in order (so a pick costs O(len(avoid)) at worst, whatever the weights).
AVOID_CANDIDATES = 8

#: Shortest ``weight_update_period`` (A58: "values less than 100ms are capped at 100ms").
MIN_UPDATE_PERIOD = 0.1


class _Weight:
    """A58's per-endpoint weight record: the weight and its two timestamps."""

    __slots__ = ("last_updated", "non_empty_since", "weight")

    def __init__(self) -> None:
        self.weight = 0.0
        self.last_updated = -math.inf
        self.non_empty_since: float | None = None  # None: A58's "infinity"


#: An endpoint state's address (``state.endpoint.address``), for C-level maps.
_address = attrgetter("endpoint.address")


def _lround(value: float) -> int:
    """C's ``lround``: halves away from zero (Python's ``round`` rounds them to even)."""
    return math.floor(value + 0.5)


def stride_weights(weights: list[float]) -> array[int] | None:
    """Scale A58 weights for the static stride scheduler, or ``None`` for plain round robin.

    As gRPC C-core's ``StaticStrideScheduler::Make``: fewer than two positive weights means
    round robin; weights of 0 (no valid report) take the mean of the positive ones; the largest
    is capped at :data:`STRIDE_MAX_RATIO` x the mean and scaled to :data:`STRIDE_MAX_WEIGHT`;
    none falls below :data:`STRIDE_MIN_RATIO` x the mean (nor below 1).
    """
    # Clamped as LoadReport.weight clamps (finite, float32's range), so any input is safe here.
    # One pass per step with the clamps written as comparisons (no min/max/_lround calls): the
    # same values, ~3x faster at n = 10,000, where a membership change recomputes them all.
    weights = [
        (MAX_WEIGHT if weight > MAX_WEIGHT else weight) if weight >= MIN_WEIGHT else 0.0
        for weight in weights
    ]
    positive = [weight for weight in weights if weight > 0]
    if len(positive) < 2:
        return None
    mean = sum(positive) / len(positive)
    largest = min(max(positive), STRIDE_MAX_RATIO * mean)
    scale = STRIDE_MAX_WEIGHT / largest
    scaled_mean = _lround(scale * mean)
    lowest = max(1, _lround(scaled_mean * STRIDE_MIN_RATIO))  # <= scaled_mean <= the maximum
    floor = math.floor
    return array(
        "H",
        [
            (
                scaled
                if lowest <= (scaled := floor(weight * scale + 0.5)) <= STRIDE_MAX_WEIGHT
                else (lowest if scaled < lowest else STRIDE_MAX_WEIGHT)
            )
            if weight > 0
            else scaled_mean
            for weight in weights
        ],
    )


@mypyc_attr(allow_interpreted_subclasses=True)
class LoadReportWeightedRoundRobin(BalancerBase):
    """Weighted round robin with weights computed from the load servers report (gRFC A58).

    Report each server's load with :meth:`report` (a lease or an address, and a
    :class:`LoadReport`), e.g. from a response header after ``release``. The endpoints'
    configured weights are not used: A58 weighs by reported load alone. Exactly as A58:

    * weight = ``qps / (utilization + eps / qps * error_utilization_penalty)``; a report with no
      utilization or no qps is ignored;
    * ``blackout_period``: a weight counts only after reports have come for this long (after the
      first report, after expiry, and after an endpoint comes back up with ``mark_up``);
      ``blackout_period=0`` skips the test entirely, as C-core's ``GetWeight`` does, so an
      endpoint back up keeps its unexpired weight;
    * a weight is clamped to a finite range (:data:`~balancekit.strategies._orca.MAX_WEIGHT`,
      float32's, as C-core keeps weights in a ``float``), so no report can break a pick;
    * ``weight_expiration_period``: a weight not refreshed for this long stops counting;
    * endpoints without a valid weight get the mean of the valid ones; with fewer than two
      valid weights, plain round robin;
    * weights are recomputed every ``weight_update_period`` (checked on each pick against the
      injected clock) and on every membership change.

    Scheduling is gRPC C-core's static stride scheduler: a pick is ``next()`` on a shared
    counter ``s``; endpoint ``i = s mod n`` in generation ``g = s div n`` is taken when
    ``(w_i * g + i * 32767) mod 65535 >= 65535 - w_i``, else the next ``s`` is tried. The
    largest scaled weight is 65535, so a pick takes at most *n* steps and about
    ``65535 / mean`` (at most ~10) on average: O(1), lock-free, weights in an ``array('H')``
    (2 bytes per endpoint). A58 first described an EDF scheduler; gRPC replaced it with this.
    With ``avoid``, up to :data:`AVOID_CANDIDATES` scheduler candidates are tried, then the next
    endpoint not avoided in order is taken: O(len(avoid)) more at worst, never O(n).

    *At low concurrency* (one request at a time) it behaves as at high concurrency: the
    schedule looks neither at requests in flight nor at latency this client measures, only at
    the weights from the servers' reports. Without reports (or with fewer than two valid
    weights) it is plain round robin: two identical servers split sequential requests exactly
    50/50, and a replica added later takes its turn from the next round (10 ms after it joined
    at 100 requests/s; ``python -m balancekit.sim.sequential``). With reports the split follows
    the reported weights (equal reports: 50/50), a newcomer counting with the mean weight until
    its own reports have lasted ``blackout_period``. What it cannot see is a server that is
    slow without reporting it: that server keeps its share.

    Deviation, for determinism: A58's ``GetWeight`` clears ``non_empty_since`` when it finds a
    weight expired; here reads change nothing and a report that arrives after expiry restarts
    the blackout instead, which is what gRPC does whenever its periodic update ran in between.

    Sources: gRFC A58 (``A58-client-side-weighted-round-robin-lb-policy.md``); gRPC C-core
    ``src/core/load_balancing/weighted_round_robin/static_stride_scheduler.cc``; Envoy
    ``client_side_weighted_round_robin`` (the same policy, same defaults).

    >>> now = [0.0]
    >>> lb = LoadReportWeightedRoundRobin(["a:1", "b:1"], blackout_period=0, clock=lambda: now[0])
    >>> lb.report("a:1", LoadReport(cpu_utilization=0.5, qps=300))  # weight 600
    >>> lb.report("b:1", LoadReport(cpu_utilization=0.5, qps=100))  # weight 200
    >>> now[0] += 1.0  # the next weight update
    >>> picks = [lb.select().address for _ in range(400)]
    >>> picks.count("a:1"), picks.count("b:1")
    (300, 100)
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        blackout_period: float = 10.0,
        weight_expiration_period: float = 180.0,
        weight_update_period: float = 1.0,
        error_utilization_penalty: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        options = (
            ("blackout_period", blackout_period, True),
            ("weight_expiration_period", weight_expiration_period, False),
            ("weight_update_period", weight_update_period, False),
            ("error_utilization_penalty", error_utilization_penalty, True),
        )
        for name, value, zero_ok in options:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidOption(f"{name} must be a number, not {describe(value)}")
            low_ok = value >= 0 if zero_ok else value > 0
            if not low_ok or value == math.inf:
                allowed = ">= 0" if zero_ok else "> 0"
                raise InvalidOption(f"{name} must be finite and {allowed}, not {describe(value)}")
        super().__init__(endpoints, clock=clock)
        self._blackout = float(blackout_period)
        self._expiration = float(weight_expiration_period)
        self._period = max(float(weight_update_period), MIN_UPDATE_PERIOD)
        self._penalty = float(error_utilization_penalty)
        self._weights: dict[str, _Weight] = {}
        self._counter = itertools.count()
        self._fallback = itertools.count()  # avoided picks' own rotation (_not_avoided)
        self._scheduler: tuple[tuple[EndpointState, ...], array[int] | None] = ((), None)
        self._next_update = -math.inf
        #: gRFC A78's counters, one update per rebuild: read by ``balancekit.metrics``.
        self.wrr_stats = WrrStats()
        self._start()

    # -- reports ---------------------------------------------------------------------------------

    def report(self, target: Lease | EndpointLike, load: LoadReport) -> None:
        """Record a server's load report; ``target`` is the lease it answered, or its address.

        A report on a lease whose endpoint has been removed since is ignored; an address that is
        not a member raises :class:`UnknownEndpoint`. The new weight takes effect at the next
        weight update (every ``weight_update_period``), as in gRPC. O(1).
        """
        if not isinstance(load, LoadReport):
            raise InvalidOption(f"load must be a balancekit.LoadReport, not {describe(load)}")
        weight = load.weight(self._penalty)
        with self._lock:
            if isinstance(target, Lease):
                if not isinstance(target[0], Endpoint):
                    raise InvalidOption(
                        f"target must be a Lease from select, not {describe(target)}"
                    )
                address = target[0].address
                if address not in self._members:
                    return
            else:
                address = self._member(target).endpoint.address
            if weight <= 0:
                return
            now = self._clock()
            record = self._weights.get(address)
            if record is None:
                record = self._weights[address] = _Weight()
            if record.non_empty_since is None or now - record.last_updated >= self._expiration:
                record.non_empty_since = now
            record.last_updated = now
            record.weight = weight

    def weight_at(self, address: EndpointLike, now: float | None = None) -> float:
        """The weight A58 would use for ``address`` at ``now`` (default: the clock), 0 when it
        has none yet (no report, blackout, or expired); before the fallback to the mean."""
        when = clock_reading(now)
        with self._lock:
            state = self._member(address)
            return self._weight_of(state.endpoint.address, self._clock() if when is None else when)

    def _weight_of(self, address: str, now: float) -> float:
        record = self._weights.get(address)
        if record is None or now - record.last_updated >= self._expiration:
            return 0.0
        # C-core's GetWeight: the blackout test only when the period is above 0, so with
        # blackout_period=0 an endpoint back up keeps its (unexpired) weight at once.
        if self._blackout > 0 and (
            record.non_empty_since is None or now - record.non_empty_since < self._blackout
        ):
            return 0.0
        return record.weight

    # -- the strategy ----------------------------------------------------------------------------

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        for address in [a for a in self._weights if a not in self._members]:
            del self._weights[address]
        self._reweigh()

    def _apply(self, delta: Delta) -> None:
        """A change: blackout again for endpoints back up, records of members gone dropped,
        O(changed); then the weights recomputed as A58 does on every change: O(n) in Python
        when any endpoint has a report (one loop and two comprehensions; ~1-2 ms at n = 10,000
        on a quiet machine), else an O(n) copy in C."""
        weights = self._weights
        for state in delta.added:  # back up (A58: a subchannel becoming READY): blackout again
            record = weights.get(state.endpoint.address)
            if record is not None:
                record.non_empty_since = None
        for state in delta.left:
            weights.pop(state.endpoint.address, None)
        if delta.full:
            self._rebuild(self._eligible_list)
        elif delta.size:
            self._reweigh()

    def _reweigh(self) -> None:
        """Recompute every eligible endpoint's weight and swap the scheduler in."""
        now = self._clock()
        states = tuple(self._eligible_list)
        if self._weights:  # some endpoint has reported: A58's weights, mean for the rest
            weights, stale = self._weights_now(states, now)
            self._scheduler = (states, stride_weights(weights))
            self.wrr_stats.update(
                weights,
                fallback=self._scheduler[1] is None,
                not_yet_usable=weights.count(0.0) - stale,
                stale=stale,
            )
        else:  # no reports at all: round robin, without a pass over the pool
            self._scheduler = (states, None)
            self.wrr_stats.update_unreported(len(states))
        self._next_update = now + self._period

    def _weights_now(
        self, states: tuple[EndpointState, ...], now: float
    ) -> tuple[list[float], int]:
        """:meth:`_weight_of` of every state (a change at n = 10,000 recomputes them all: the
        addresses and records are fetched by C-level maps, the weights by one comprehension),
        and how many are 0 because their report expired (counted only if a weight is 0)."""
        records = list(map(self._weights.get, map(_address, states)))
        expiration = self._expiration
        if self._blackout > 0:
            blackout = self._blackout
            weights = [
                record.weight
                if record is not None
                and now - record.last_updated < expiration
                and record.non_empty_since is not None
                and now - record.non_empty_since >= blackout
                else 0.0
                for record in records
            ]
        else:
            weights = [
                record.weight
                if record is not None and now - record.last_updated < expiration
                else 0.0
                for record in records
            ]
        stale = 0
        if 0.0 in weights:
            stale = sum(
                1
                for record in records
                if record is not None and now - record.last_updated >= expiration
            )
        return weights, stale

    def _expired(self, address: str, now: float) -> bool:
        """Whether ``address`` has reported, but not within ``weight_expiration_period``."""
        record = self._weights.get(address)
        return record is not None and now - record.last_updated >= self._expiration

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        if self._clock() >= self._next_update:
            with self._lock:
                if self._clock() >= self._next_update:
                    self._reweigh()
        states, weights = self._scheduler  # one read: a concurrent update cannot tear it
        n = len(states)
        if not n:
            raise self._nothing_available()
        counter = self._counter
        if weights is None:  # round robin
            position = next(counter)
            state = states[position % n]
            if not (avoid and state.endpoint.address in avoid):
                return state
            return self._not_avoided(states, avoid)
        top, offset = STRIDE_MAX_WEIGHT, STRIDE_MAX_WEIGHT // 2
        index = candidates = 0
        for _ in range(AVOID_CANDIDATES * n):  # a candidate within every n steps (weight 65535)
            sequence = next(counter)
            index = sequence % n
            weight = weights[index]
            if (weight * (sequence // n) + index * offset) % top >= top - weight:
                state = states[index]
                if not (avoid and state.endpoint.address in avoid):
                    return state
                candidates += 1
                if candidates == AVOID_CANDIDATES:
                    break
        return self._not_avoided(states, avoid)  # every candidate was avoided

    def _not_avoided(
        self, states: tuple[EndpointState, ...], avoid: Collection[str]
    ) -> EndpointState:
        """Round robin over the endpoints not avoided, from a counter of its own: within a
        cycle of it each is returned once and each avoided one passed over once, so such picks
        share exactly among the rest. (Walking on from the avoided pick, a heavy endpoint
        always avoided sent 95 % of the picks to the endpoint after it.) Each value passed
        over is a distinct avoided address (without concurrent picks): O(min(len(avoid), n)).
        """
        state = rotate_past(states, self._fallback, avoid)
        if state is None:
            raise self._nothing_available(avoid)
        return state

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            states, weights = self._scheduler
            assert [id(s) for s in states] == [id(s) for s in self._eligible()]
            if weights is not None:
                assert len(weights) == len(states) >= 2
                assert max(weights) == STRIDE_MAX_WEIGHT and min(weights) >= 1
            assert set(self._weights) <= set(self._members)
            for record in self._weights.values():
                assert record.weight > 0
                assert (
                    record.non_empty_since is None or record.non_empty_since <= record.last_updated
                )
