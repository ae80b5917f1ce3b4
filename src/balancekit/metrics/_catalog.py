"""Every metric balancekit exports: one table, read by the OpenTelemetry and Prometheus adapters.

Names follow gRPC's where gRPC defines the concept, under ``balancekit.`` instead of
``grpc.``: gRFC A78 (``grpc.lb.wrr.*``), gRFC A91 (``grpc.lb.outlier_detection.*``), gRFC A96
and A66 (retry attempts by type, retry delay); the rest are Envoy's cluster statistics and
Finagle's load-balancer stats (picks, in-flight, endpoints total/healthy/ejected, panic,
membership changes, rebuilds). OpenTelemetry names are dotted with UCUM units; Prometheus
names are the same with underscores, the unit in the name and ``_total`` on counters (the
client library appends it). See docs/observability.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CATALOG", "Metric"]

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One exported metric: both names, its kind and unit, its labels and what it counts."""

    name: str  #: OpenTelemetry instrument name
    prometheus: str  #: Prometheus family name (a counter's samples get ``_total``)
    kind: Kind
    unit: str  #: UCUM, as OpenTelemetry wants it ("s", "{pick}")
    labels: tuple[str, ...]  #: label names besides ``target``
    description: str
    per_endpoint: bool = False  #: only with ``per_endpoint=True`` (one series per endpoint)
    #: A gauge whose values add up across series (in-flight requests, endpoint counts):
    #: OpenTelemetry's ``UpDownCounter`` rather than its ``Gauge`` (a bool, a latency).
    additive: bool = False


def _m(name: str, kind: Kind, unit: str, description: str, *labels: str) -> Metric:
    prometheus = name.replace(".", "_")
    if unit == "s":
        prometheus = prometheus.removesuffix("_duration") + "_seconds"
    additive = kind == "gauge" and unit in ("{request}", "{endpoint}", "{token}")
    return Metric(name, prometheus, kind, unit, labels, description, "endpoint" in labels, additive)


CATALOG: tuple[Metric, ...] = (
    # -- every balancer: stats(), the base's tally --------------------------------------------
    _m("balancekit.lb.picks", "counter", "{pick}", "Leases select issued (Finagle/Envoy requests)"),
    _m("balancekit.lb.requests", "counter", "{request}",
       "Leases given back, by outcome: succeeded, failed, cancelled", "outcome"),
    _m("balancekit.lb.in_flight", "gauge", "{request}", "Leases issued and not yet given back"),
    _m("balancekit.lb.endpoints", "gauge", "{endpoint}", "Member endpoints"),
    _m("balancekit.lb.endpoints.healthy", "gauge", "{endpoint}",
       "Members up and not held out by health (what a pick returns outside panic)"),
    _m("balancekit.lb.endpoints.ejected", "gauge", "{endpoint}",
       "Members ejected by passive health (outlier detection)"),
    _m("balancekit.lb.endpoints.checked_down", "gauge", "{endpoint}",
       "Members active health checks hold down"),
    _m("balancekit.lb.endpoints.down", "gauge", "{endpoint}", "Members marked down (mark_down)"),
    _m("balancekit.lb.membership.updates", "counter", "{update}",
       "add/remove/update calls that changed the member set"),
    _m("balancekit.lb.membership.endpoint_changes", "counter", "{endpoint}",
       "Endpoints that joined or left, by change: added, removed", "change"),
    _m("balancekit.lb.rebuilds", "counter", "{rebuild}", "Strategy index rebuilds"),
    _m("balancekit.lb.rebuild.duration", "counter", "s", "Time spent rebuilding indexes"),
    # -- health tracker (with_health) ----------------------------------------------------------
    _m("balancekit.lb.panic", "gauge", "{bool}", "1 while panic fails open over every endpoint"),
    _m("balancekit.lb.panic.engaged", "counter", "{event}", "Times panic engaged"),
    _m("balancekit.lb.outlier_detection.ejections_enforced", "counter", "{ejection}",
       "Ejections made, by detection method (gRFC A91)", "detection_method"),
    _m("balancekit.lb.outlier_detection.ejections_unenforced", "counter", "{ejection}",
       "Ejections detected but refused, by detection method and reason (gRFC A91)",
       "detection_method", "unenforced_reason"),
    _m("balancekit.lb.outlier_detection.returns", "counter", "{ejection}",
       "Ejected endpoints returned to rotation"),
    _m("balancekit.lb.health_check.transitions", "counter", "{transition}",
       "Active-check verdicts that changed, by the state entered: down, up", "state"),
    # -- LoadReportWeightedRoundRobin (gRFC A78) -----------------------------------------------
    _m("balancekit.lb.wrr.rr_fallback", "counter", "{update}",
       "Scheduler updates with fewer than two usable weights: plain round robin (gRFC A78)"),
    _m("balancekit.lb.wrr.endpoint_weight_not_yet_usable", "counter", "{endpoint}",
       "Endpoints per scheduler update with no report yet or in blackout (gRFC A78)"),
    _m("balancekit.lb.wrr.endpoint_weight_stale", "counter", "{endpoint}",
       "Endpoints per scheduler update whose last report expired (gRFC A78)"),
    _m("balancekit.lb.wrr.endpoint_weights", "histogram", "{weight}",
       "Every endpoint's weight at each scheduler update, 0 if unusable (gRFC A78)"),
    # -- a Retry policy (gRFC A96) --------------------------------------------------------------
    _m("balancekit.client.attempts", "counter", "{attempt}",
       "Attempts started, by attempt_type: original, retry, transparent_retry (gRFC A96)",
       "attempt_type"),
    _m("balancekit.client.retry.budget_denied", "counter", "{retry}",
       "Retries the retry budget refused"),
    _m("balancekit.client.retry.delay", "counter", "s",
       "Backoff handed to callers to wait between attempts (gRFC A96 retry_delay)"),
    _m("balancekit.client.retry.budget_tokens", "gauge", "{token}", "Tokens in the retry budget"),
    # -- per endpoint (opt-in: per_endpoint=True) -----------------------------------------------
    _m("balancekit.lb.endpoint.picks", "counter", "{pick}", "Leases issued, per endpoint",
       "endpoint"),
    _m("balancekit.lb.endpoint.requests", "counter", "{request}",
       "Leases given back, per endpoint and outcome", "endpoint", "outcome"),
    _m("balancekit.lb.endpoint.in_flight", "gauge", "{request}", "In-flight leases, per endpoint",
       "endpoint"),
    _m("balancekit.lb.endpoint.latency", "gauge", "s",
       "The strategy's response-time estimate, per endpoint (where it keeps one)", "endpoint"),
    _m("balancekit.lb.endpoint.weight", "gauge", "{weight}", "Configured weight, per endpoint",
       "endpoint"),
    _m("balancekit.lb.endpoint.available", "gauge", "{bool}",
       "1 if the endpoint is up and not ejected or checked down", "endpoint"),
)  # fmt: skip
