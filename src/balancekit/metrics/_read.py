"""What one balancer (and optionally its retry policy) looks like at one scrape: a list of points.

Nothing here runs on the selection path: a :class:`Source` reads, when a scrape or an
OpenTelemetry collection asks, what the library keeps anyway: the endpoints' counters
(``stats()``), the base's tally (membership, rebuilds, removed endpoints), the health
tracker's event counts, a :class:`~balancekit.Retry`'s counters and gRFC A78's WRR counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._core import BalancerBase
from .._errors import InvalidOption
from .._lease import EndpointStats
from .._options import describe
from .._state import EndpointState
from ..health.tracker import health_of
from ..retry import Retry
from ..strategies._wrr_stats import WEIGHT_BUCKETS
from ..strategies.load_report import LoadReportWeightedRoundRobin
from ._catalog import CATALOG, Metric

__all__ = ["DETECTION_METHODS", "MAX_TARGET", "Point", "Source"]

#: The longest ``target`` label accepted (a label is no place for a document).
MAX_TARGET = 200
#: Passive health's detection methods (``Ejected.reason``), each exported even at 0.
DETECTION_METHODS = ("consecutive_failures", "failure_rate", "connect_failure")
#: gRFC A91's ``unenforced_reason`` for an ejection the max ejection share refused.
MAX_EJECTION_OVERFLOW = "max_ejection_overflow"

_BY_NAME = {metric.name: metric for metric in CATALOG}


@dataclass(frozen=True, slots=True)
class Point:
    """One series' value: its metric, its labels (``target`` first), and the value.

    A histogram's ``value`` is its sum and ``buckets`` its cumulative ``(upper bound, count)``
    pairs, ending with ``inf`` (the total count).
    """

    metric: Metric
    labels: tuple[tuple[str, str], ...]
    value: float
    buckets: tuple[tuple[float, int], ...] = field(default=())


def _check_target(target: object) -> str:
    if not isinstance(target, str) or not target:
        raise InvalidOption(
            f"target must be a non-empty str naming the service, not {describe(target)}"
        )
    if len(target) > MAX_TARGET:
        raise InvalidOption(f"target must be at most {MAX_TARGET} characters, not {len(target)}")
    if not target.isprintable():  # control characters; lone surrogates ("\ud800") too
        raise InvalidOption(f"target must be printable text, not {describe(target)}")
    return target


def _counters(states: list[EndpointState]) -> tuple[int, int, int, int]:
    """Picks, releases, failures and cancellations summed over ``states``, lock-free.

    Each state's four counters are one instant's (:meth:`EndpointState.counts`, as
    ``stats()`` reads them), so each
    state's successes (releases - failures - cancellations) never go down from one scrape to
    the next: a sum of reads taken at different moments of a release could. O(n).
    """
    selected = released = failed = cancelled = 0
    for state in states:
        p, r, f, c = state.counts()
        selected += p
        released += r
        failed += f
        cancelled += c
    return selected, released, failed, cancelled


class Source:
    """A balancer to export, with the ``target`` label that names its service.

    Options (keyword-only, validated at once): ``target`` (required; printable, at most
    :data:`MAX_TARGET` characters), ``retry`` (a :class:`~balancekit.Retry` whose counters to
    export under the same target), ``per_endpoint`` (default False: one series per endpoint
    multiplies the series by the pool size, so it is opt-in).

    :meth:`read` costs O(n) for n endpoints, under the balancer's lock (as ``stats()``).
    """

    __slots__ = ("balancer", "per_endpoint", "retry", "target")

    def __init__(
        self,
        balancer: BalancerBase,
        *,
        target: str,
        retry: Retry | None = None,
        per_endpoint: bool = False,
    ) -> None:
        if not isinstance(balancer, BalancerBase):
            raise InvalidOption(f"expected a balancekit balancer, not {describe(balancer)}")
        if retry is not None and not isinstance(retry, Retry):
            raise InvalidOption(f"retry must be a balancekit Retry or None, not {describe(retry)}")
        if not isinstance(per_endpoint, bool):
            raise InvalidOption(f"per_endpoint must be True or False, not {describe(per_endpoint)}")
        self.balancer = balancer
        self.target = _check_target(target)
        self.retry = retry
        self.per_endpoint = per_endpoint

    def __repr__(self) -> str:
        return f"Source({type(self.balancer).__name__}, target={self.target!r})"

    def read(self) -> list[Point]:
        """Every point of this source now (the catalog's order).

        The balancer's lock is held only to copy the member lists and the tally (O(n) list
        copies); the endpoints' counters are read after it is released (they are counted
        without the lock anyway), so a scrape of a large pool never stalls picks that lock.
        """
        points: list[Point] = []
        lb = self.balancer
        with lb._lock:
            members = list(lb._members.values())
            retired = list(lb._retired.values())
            tally = lb._tally
            gone = (
                tally.gone_selected,
                tally.gone_released,
                tally.gone_failed,
                tally.gone_cancelled,
            )
            membership = (tally.membership_updates, tally.added, tally.removed)
            rebuilds = (tally.rebuilds, tally.rebuild_seconds)
            tracker = health_of(lb)
            health: tuple[bool, dict[str, int], dict[str, int]] | None = None
            if tracker is not None:
                health = (
                    tracker.panic,
                    dict(tracker.event_counts),
                    dict(tracker.refused_by_reason),
                )
            wrr = lb.wrr_stats.read() if isinstance(lb, LoadReportWeightedRoundRobin) else None
        target = ("target", self.target)

        def add(name: str, value: float, *labels: tuple[str, str]) -> None:
            points.append(Point(_BY_NAME[name], (target, *labels), float(value)))

        selected, released, failed, cancelled = _counters(members + retired)
        selected += gone[0]
        released += gone[1]
        failed += gone[2]
        cancelled += gone[3]
        add("balancekit.lb.picks", selected)
        add("balancekit.lb.requests", released - failed - cancelled, ("outcome", "succeeded"))
        add("balancekit.lb.requests", failed, ("outcome", "failed"))
        add("balancekit.lb.requests", cancelled, ("outcome", "cancelled"))
        add("balancekit.lb.in_flight", selected - released)
        down = ejected = checked_down = healthy = 0
        for state in members:
            check_down = state.health is not None and state.health.check_down
            down += not state.up
            ejected += state.ejected
            checked_down += check_down
            healthy += state.up and not state.ejected and not check_down
        add("balancekit.lb.endpoints", len(members))
        add("balancekit.lb.endpoints.healthy", healthy)
        add("balancekit.lb.endpoints.ejected", ejected)
        add("balancekit.lb.endpoints.checked_down", checked_down)
        add("balancekit.lb.endpoints.down", down)
        add("balancekit.lb.membership.updates", membership[0])
        add("balancekit.lb.membership.endpoint_changes", membership[1], ("change", "added"))
        add("balancekit.lb.membership.endpoint_changes", membership[2], ("change", "removed"))
        add("balancekit.lb.rebuilds", rebuilds[0])
        add("balancekit.lb.rebuild.duration", rebuilds[1])
        if health is not None:
            self._health(add, *health)
        if wrr is not None:
            add("balancekit.lb.wrr.rr_fallback", wrr.rr_fallback)
            add("balancekit.lb.wrr.endpoint_weight_not_yet_usable", wrr.not_yet_usable)
            add("balancekit.lb.wrr.endpoint_weight_stale", wrr.stale)
            cumulative, running = [], 0
            for bound, count in zip((*WEIGHT_BUCKETS, float("inf")), wrr.buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            metric = _BY_NAME["balancekit.lb.wrr.endpoint_weights"]
            points.append(Point(metric, (target,), wrr.weight_sum, tuple(cumulative)))
        if self.retry is not None:
            self._retry(add, self.retry)
        if self.per_endpoint:
            for state in members:
                self._endpoint(add, lb._stats_of(state))
        return points

    @staticmethod
    def _health(add: Any, panic: bool, counts: dict[str, int], refused: dict[str, int]) -> None:
        add("balancekit.lb.panic", panic)
        add("balancekit.lb.panic.engaged", counts.get("panic_engaged", 0))
        for method in DETECTION_METHODS:
            add(
                "balancekit.lb.outlier_detection.ejections_enforced",
                counts.get(f"ejected:{method}", 0),
                ("detection_method", method),
            )
        for method in DETECTION_METHODS:
            add(
                "balancekit.lb.outlier_detection.ejections_unenforced",
                refused.get(method, 0),
                ("detection_method", method),
                ("unenforced_reason", MAX_EJECTION_OVERFLOW),
            )
        add("balancekit.lb.outlier_detection.returns", counts.get("returned", 0))
        add(
            "balancekit.lb.health_check.transitions",
            counts.get("check_failed", 0),
            ("state", "down"),
        )
        add(
            "balancekit.lb.health_check.transitions", counts.get("check_passed", 0), ("state", "up")
        )

    @staticmethod
    def _retry(add: Any, retry: Retry) -> None:
        counts = retry.stats.read()
        add("balancekit.client.attempts", counts.original, ("attempt_type", "original"))
        add("balancekit.client.attempts", counts.retries, ("attempt_type", "retry"))
        add("balancekit.client.attempts", counts.transparent, ("attempt_type", "transparent_retry"))
        add("balancekit.client.retry.budget_denied", counts.budget_denied)
        add("balancekit.client.retry.delay", counts.delay)
        if retry.budget is not None:
            add("balancekit.client.retry.budget_tokens", retry.budget.tokens)

    @staticmethod
    def _endpoint(add: Any, stats: EndpointStats) -> None:
        endpoint = ("endpoint", stats.address)
        add("balancekit.lb.endpoint.picks", stats.selected, endpoint)
        add("balancekit.lb.endpoint.requests", stats.succeeded, endpoint, ("outcome", "succeeded"))
        add("balancekit.lb.endpoint.requests", stats.failed, endpoint, ("outcome", "failed"))
        add("balancekit.lb.endpoint.requests", stats.cancelled, endpoint, ("outcome", "cancelled"))
        add("balancekit.lb.endpoint.in_flight", stats.in_flight, endpoint)
        if stats.latency is not None:
            add("balancekit.lb.endpoint.latency", stats.latency, endpoint)
        add("balancekit.lb.endpoint.weight", stats.weight, endpoint)
        add("balancekit.lb.endpoint.available", stats.available, endpoint)
