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
from typing import Any

from mypy_extensions import mypyc_attr

from .._core import FLOAT_MAX, BalancerBase, Clock, Delta, clock_reading
from .._endpoint import Endpoint, EndpointLike
from .._errors import InvalidOption
from .._lease import Lease
from .._options import describe
from .._state import EndpointState
from ._orca import MAX_WEIGHT, MIN_WEIGHT, LoadReport
from ._stride import (
    _NO_SCALE,
    STRIDE_MAX_RATIO,
    STRIDE_MAX_WEIGHT,
    STRIDE_MIN_RATIO,
    _scaled_all,
    _scaled_at,
    stride_scale,
    stride_weights,
)
from ._wrr_book import WeightBook
from ._wrr_stats import WrrStats
from .round_robin import rotate_past

__all__ = [
    "MAX_WEIGHT",
    "MIN_WEIGHT",
    "STRIDE_MAX_RATIO",
    "STRIDE_MAX_WEIGHT",
    "STRIDE_MIN_RATIO",
    "LoadReport",
    "LoadReportWeightedRoundRobin",
    "stride_scale",
    "stride_weights",
]

#: Scheduler candidates a pick tries against ``avoid`` before it takes the next endpoint not
#: avoided in order (so a pick costs O(len(avoid)) at worst, whatever the weights).
AVOID_CANDIDATES = 8

#: Shortest ``weight_update_period`` (A58: "values less than 100ms are capped at 100ms").
MIN_UPDATE_PERIOD = 0.1


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
      injected clock) and on every membership change, always to exactly what a computation
      from scratch gives at that instant.

    A change (add, remove, set_weight, mark_down/up, an ejection) costs O(log n) per endpoint
    changed plus O(k log n) for the k reports that came due (an expiry, a blackout's end) or
    started a blackout since the last update, and O(n) only in C (copies, a sum, a max): the
    usable weights and their counts are kept as they change (``_wrr_book.WeightBook``), and
    after a change each scaled weight is computed when a pick first reads it. ~0.4 ms at
    n = 10,000 with every endpoint reporting, against ~5 ms recomputing every weight
    (docs/benchmarks.md). The periodic update scales all n at once (one comprehension).

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
        blackout_period: float | Any = 10.0,
        weight_expiration_period: float | Any = 180.0,
        weight_update_period: float | Any = 1.0,
        error_utilization_penalty: float | Any = 1.0,
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
            if not low_ok or not value <= FLOAT_MAX:  # inf, and an int past every float
                allowed = ">= 0" if zero_ok else "> 0"
                raise InvalidOption(f"{name} must be finite and {allowed}, not {describe(value)}")
        super().__init__(endpoints, clock=clock)
        self._blackout = float(blackout_period)
        self._expiration = float(weight_expiration_period)
        self._period = max(float(weight_update_period), MIN_UPDATE_PERIOD)
        self._penalty = float(error_utilization_penalty)
        self._book = WeightBook(self._blackout, self._expiration)
        self._counter = itertools.count()
        self._fallback = itertools.count()  # avoided picks' own rotation (_not_avoided)
        # (states, scaled weights or None for round robin, what scales them: _scaled_at)
        self._scheduler: tuple[
            tuple[EndpointState, ...], array[int] | None, tuple[tuple[float, ...], float, int, int]
        ] = ((), None, _NO_SCALE)
        self._next_update = -math.inf
        #: gRFC A78's counters, one update per rebuild: read by ``balancekit.metrics``.
        self.wrr_stats = WrrStats()
        self._start()

    # -- reports ---------------------------------------------------------------------------------

    def report(self, target: Lease | EndpointLike | Any, load: LoadReport | Any) -> None:
        """Record a server's load report; ``target`` is the lease it answered, or its address.

        A report on a lease whose endpoint has been removed since is ignored; an address that is
        not a member raises :class:`UnknownEndpoint`. The new weight takes effect at the next
        weight update (every ``weight_update_period``), as in gRPC. O(1) (O(log n) for an
        endpoint's first report).
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
            book = self._book
            record = book.records.get(address)
            if record is None:
                record = book.add(address, self._eligible_by_address.get(address))
            if record.non_empty_since is None or now - record.last_updated >= self._expiration:
                record.non_empty_since = now  # A58: a blackout starts (first report, or expired)
                book.dirty[record] = None  # read again at the next update
            elif not record.current or now < record.last_updated:  # in blackout at the last
                # update, or the clock stepped back since its last report (its queued expiry is
                # later than this report's): read again
                book.dirty[record] = None
            elif record.low < weight <= record.high:  # usable, stays so: counts now (O(1))
                record.current = weight
            else:
                book.recount(record, weight)  # and in another A78 bucket
            record.last_updated = now
            record.weight = weight

    def weight_at(self, address: EndpointLike, now: float | Any | None = None) -> float:
        """The weight A58 would use for ``address`` at ``now`` (default: the clock), 0 when it
        has none yet (no report, blackout, or expired); before the fallback to the mean."""
        when = clock_reading(now)
        with self._lock:
            state = self._member(address)
            return self._weight_of(state.endpoint.address, self._clock() if when is None else when)

    def _weight_of(self, address: str, now: float) -> float:
        record = self._book.records.get(address)
        return 0.0 if record is None else self._book.usable(record, now)

    # -- the strategy ----------------------------------------------------------------------------

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        book = self._book
        book.rebuild(eligible, self._clock())
        for address in [a for a in book.records if a not in self._members]:
            book.drop(address)
        self._reweigh()

    def _apply(self, delta: Delta) -> None:
        """A change: the book's eligible list and counts updated and records of members gone
        dropped, O(log n) per changed endpoint; endpoints back up enter their blackout again.
        Then the scheduler is rebuilt as A58 does on every change (:meth:`_reweigh`), from the
        kept weights: O(n) only in C (copies, a sum and a max), no weight scaled."""
        if delta.full:
            self._rebuild(self._eligible_list)
            return
        book = self._book
        for state in delta.removed:
            book.leave(state)
        for state in delta.left:
            book.drop(state.endpoint.address)
        for state in delta.added:  # back up (A58: a subchannel becoming READY): blackout again
            record = book.records.get(state.endpoint.address)
            if record is not None:
                record.non_empty_since = None
                book.dirty[record] = None
            book.enter(state)
        if delta.size:
            self._reweigh()

    def _reweigh(self, scaled: bool = False) -> None:
        """Bring the book to now and swap a new scheduler in: each weight scaled when a pick
        first reads it, or all now if ``scaled`` (the periodic update, which a pick runs: one
        comprehension costs about half what the picks' one-by-one scaling adds up to)."""
        now = self._clock()
        book = self._book
        states = tuple(book.states)
        if book.records:  # some endpoint has reported: A58's weights, mean for the rest
            book.sync(now)
            raw = book.weights()
            positive = book.positive
            if positive >= 2:
                scale, lowest, scaled_mean = stride_scale(raw, positive)
                if scaled:
                    weights = _scaled_all(raw, scale, lowest, scaled_mean)
                else:
                    weights = array("H", bytes(2 * len(raw)))  # all 0: scaled when first read
                self._scheduler = (states, weights, (raw, scale, lowest, scaled_mean))
            else:
                self._scheduler = (states, None, _NO_SCALE)
            self.wrr_stats.add(
                book.buckets,
                sum(raw),
                fallback=positive < 2,
                not_yet_usable=len(raw) - positive - book.stale,
                stale=book.stale,
            )
        else:  # no reports at all: round robin, without a pass over the pool
            book.synced_at = now
            self._scheduler = (states, None, _NO_SCALE)
            self.wrr_stats.update_unreported(len(states))
        # The next update is a period after this one *ended* (C-core arms its timer after the
        # update ran): counted from ``now``, an update slower than the period (O(n) at 100,000
        # endpoints on a loaded machine) left the next pick already due, and picks ran
        # updates back to back.
        self._next_update = self._clock() + self._period

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        if self._clock() >= self._next_update:
            with self._lock:
                if self._clock() >= self._next_update:
                    self._reweigh(scaled=True)
        states, weights, scale = self._scheduler  # one read: a concurrent update cannot tear it
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
            if not weight:  # not scaled yet
                weight = _scaled_at(scale, weights, index)
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
            states, weights, scale = self._scheduler
            assert [id(s) for s in states] == [id(s) for s in self._eligible()]
            book = self._book
            book.check(self._eligible_list)
            if weights is not None:
                assert len(weights) == len(states) >= 2
                scaled = array("H", bytes(2 * len(weights)))
                for index, weight in enumerate(weights):  # scaled when read, or not yet (0)
                    assert weight in (0, _scaled_at(scale, scaled, index))
                for index in range(len(weights)):
                    _scaled_at(scale, scaled, index)
                assert scaled == stride_weights(list(scale[0]))  # StaticStrideScheduler::Make's
            assert set(book.records) <= set(self._members)
            for record in book.records.values():
                assert record.weight > 0
                assert (
                    record.non_empty_since is None or record.non_empty_since <= record.last_updated
                )
