"""The Prometheus collector, read by a real HTTP scrape of prometheus_client's loopback server."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import balancekit as bk
from balancekit.metrics import Point, Source
from balancekit.metrics.prometheus import PrometheusCollector

from ._traffic import EXPECTED, A, expected_delay, known_traffic, only

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def scrape(registry: CollectorRegistry) -> Iterator[tuple[str, CollectorRegistry]]:
    """The URL of a /metrics server for ``registry`` on a free loopback port; stopped after."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive()


def get(url: str) -> tuple[str, Samples]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text: str = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples


def prometheus_name(name: str, kind_total: bool) -> str:
    base = name.replace(".", "_")
    return base + "_total" if kind_total else base


COUNTERS = {
    "balancekit.lb.picks",
    "balancekit.lb.requests",
    "balancekit.lb.membership.updates",
    "balancekit.lb.membership.endpoint_changes",
    "balancekit.lb.rebuilds",
    "balancekit.lb.panic.engaged",
    "balancekit.lb.outlier_detection.ejections_enforced",
    "balancekit.lb.outlier_detection.ejections_unenforced",
    "balancekit.lb.outlier_detection.returns",
    "balancekit.client.attempts",
    "balancekit.client.retry.budget_denied",
}


def test_prometheus_scrape_shows_the_counts_of_known_traffic(
    scrape: tuple[str, CollectorRegistry],
) -> None:
    url, registry = scrape
    lb, retry, _ = known_traffic()
    registry.register(PrometheusCollector(Source(lb, target="payments", retry=retry)))
    text, samples = get(url)
    for (name, labels), value in EXPECTED.items():
        key = (
            prometheus_name(name, name in COUNTERS),
            tuple(sorted((("target", "payments"), *labels))),
        )
        assert samples[key] == value, key
    target = (("target", "payments"),)
    assert samples[("balancekit_client_retry_delay_seconds_total", target)] == pytest.approx(
        expected_delay()
    )
    assert samples[("balancekit_lb_rebuild_seconds_total", target)] > 0
    assert "# TYPE balancekit_lb_picks_total counter" in text
    assert "# TYPE balancekit_lb_in_flight gauge" in text
    assert (
        "balancekit_lb_outlier_detection_ejections_enforced_total"
        '{detection_method="consecutive_failures",target="payments"} 1.0'
    ) in text


def test_prometheus_scrapes_are_live_and_counters_survive_removal(
    scrape: tuple[str, CollectorRegistry],
) -> None:
    url, registry = scrape
    lb, _, _ = known_traffic()
    registry.register(PrometheusCollector(Source(lb, target="payments")))
    _, before = get(url)
    for _ in range(3):
        lb.release(only(lb, A), ok=False)
    lb.remove(A)
    _, after = get(url)
    target = (("target", "payments"),)
    picks = ("balancekit_lb_picks_total", target)
    failed = ("balancekit_lb_requests_total", (("outcome", "failed"), *target))
    assert after[picks] == before[picks] + 3
    assert after[failed] == before[failed] + 3
    assert (
        "balancekit_client_attempts_total",
        (("attempt_type", "original"), *target),
    ) not in after


def test_prometheus_per_endpoint_and_histogram(scrape: tuple[str, CollectorRegistry]) -> None:
    url, registry = scrape
    clock = [0.0]
    lb = bk.LoadReportWeightedRoundRobin(["a:1", "b:1"], blackout_period=0, clock=lambda: clock[0])
    registry.register(PrometheusCollector(Source(lb, target="wrr", per_endpoint=True)))
    lb.report("a:1", bk.LoadReport(cpu_utilization=0.5, qps=300))  # 600
    lb.report("b:1", bk.LoadReport(cpu_utilization=0.5, qps=100))  # 200
    clock[0] = 1.0
    lb.release(lb.select(), elapsed=0.5)
    _, samples = get(url)
    target = ("target", "wrr")
    # update 1 at construction: two weights of 0; update 2: 600 and 200
    assert samples[("balancekit_lb_wrr_endpoint_weights_count", (target,))] == 4
    assert samples[("balancekit_lb_wrr_endpoint_weights_sum", (target,))] == 800
    assert samples[("balancekit_lb_wrr_endpoint_weights_bucket", (("le", "250.0"), target))] == 3
    assert samples[("balancekit_lb_wrr_rr_fallback_total", (target,))] == 1
    picks = {
        dict(labels)["endpoint"]: value
        for (name, labels), value in samples.items()
        if name == "balancekit_lb_endpoint_picks_total"
    }
    assert picks == {"a:1": 1, "b:1": 0}


def test_prometheus_collector_reads_nothing_at_registration() -> None:
    reads: list[int] = []

    class Counting(Source):
        def read(self) -> list[Point]:
            reads.append(1)
            return super().read()

    registry = CollectorRegistry()
    registry.register(PrometheusCollector(Counting(bk.RoundRobin(["a:1"]), target="t")))
    assert reads == []
    assert registry.get_sample_value("balancekit_lb_endpoints", {"target": "t"}) == 1
    assert reads == [1]


@pytest.mark.parametrize("target", ["", "x" * 201, "bad\nline", "\ud800", 5, None, b"bytes"])
def test_source_refuses_hostile_targets(target: object) -> None:
    with pytest.raises(bk.InvalidOption, match="target"):
        Source(bk.RoundRobin(["a:1"]), target=target)  # type: ignore[arg-type]


def test_source_refuses_what_it_cannot_read() -> None:
    with pytest.raises(bk.InvalidOption, match="balancer"):
        Source("lb", target="t")  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption, match="retry"):
        Source(bk.RoundRobin(), target="t", retry=3)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption, match="per_endpoint"):
        Source(bk.RoundRobin(), target="t", per_endpoint=1)  # type: ignore[arg-type]
    collector = PrometheusCollector(Source(bk.RoundRobin(), target="t"))
    with pytest.raises(bk.InvalidOption, match="target 't'"):
        collector.add(Source(bk.RoundRobin(), target="t"))
