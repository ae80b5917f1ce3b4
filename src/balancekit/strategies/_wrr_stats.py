"""gRFC A78's weighted-round-robin counters, kept per scheduler update (off the pick path).

gRFC A78 ("gRPC OTel Metrics for WRR, Pick First, and XdsClient", grpc/proposal
``A78-grpc-metrics-wrr-pf-xds.md``) defines, per scheduler update of the
``weighted_round_robin`` policy: ``rr_fallback`` (updates with too few valid weights, so plain
round robin), ``endpoint_weight_not_yet_usable`` (endpoints with no report yet or in their
blackout period), ``endpoint_weight_stale`` (endpoints whose last report expired) and
``endpoint_weights`` (a histogram of every endpoint's weight, 0 when unusable).
:class:`~balancekit.strategies.load_report.LoadReportWeightedRoundRobin` updates one
:class:`WrrStats` in each rebuild, under its lock; ``balancekit.metrics`` reads it.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

__all__ = ["WEIGHT_BUCKETS", "WrrCounts", "WrrStats"]

#: Upper bounds of the ``endpoint_weights`` histogram buckets (plus +Inf): OpenTelemetry's
#: default explicit bucket boundaries, which gRPC's OTel plugin uses for this histogram.
WEIGHT_BUCKETS = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                  2500.0, 5000.0, 7500.0, 10000.0)  # fmt: skip


class WrrCounts(NamedTuple):
    """One reading of :class:`WrrStats`; ``buckets[i]`` counts weights in
    ``(WEIGHT_BUCKETS[i-1], WEIGHT_BUCKETS[i]]``, the last one those above every bound."""

    updates: int
    rr_fallback: int
    not_yet_usable: int
    stale: int
    buckets: tuple[int, ...]
    weight_sum: float


class WrrStats:
    """A78's counters for one balancer (updated under its lock; O(b) per update for b buckets,
    from bucket counts the balancer keeps as weights change: ``_wrr_book.WeightBook``)."""

    __slots__ = ("_buckets", "not_yet_usable", "rr_fallback", "stale", "updates", "weight_sum")

    def __init__(self) -> None:
        self.updates = 0
        self.rr_fallback = 0
        self.not_yet_usable = 0
        self.stale = 0
        self._buckets = [0] * (len(WEIGHT_BUCKETS) + 1)
        self.weight_sum = 0.0

    def add(
        self,
        buckets: list[int],
        weight_sum: float,
        *,
        fallback: bool,
        not_yet_usable: int,
        stale: int,
    ) -> None:
        """Count one scheduler update: ``buckets[i]`` endpoints' weights (0 if unusable) fall in
        bucket ``i``, summing to ``weight_sum``; O(buckets), the balancer keeps the counts."""
        self.updates += 1
        self.rr_fallback += fallback
        self.not_yet_usable += not_yet_usable
        self.stale += stale
        for index, count in enumerate(buckets):
            self._buckets[index] += count
        self.weight_sum += weight_sum

    def update_unreported(self, endpoints: int) -> None:
        """Count one scheduler update where no endpoint has reported: every weight is 0 (not
        yet usable) and the scheduler falls back to round robin; O(1), not a pass over the
        pool (what :meth:`update` would count for ``endpoints`` zero weights)."""
        self.updates += 1
        self.rr_fallback += 1
        self.not_yet_usable += endpoints
        self._buckets[bisect_left(WEIGHT_BUCKETS, 0.0)] += endpoints

    def read(self) -> WrrCounts:
        """The counters now (call under the balancer's lock for one instant's values)."""
        return WrrCounts(
            self.updates,
            self.rr_fallback,
            self.not_yet_usable,
            self.stale,
            tuple(self._buckets),
            self.weight_sum,
        )
