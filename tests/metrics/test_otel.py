"""The OpenTelemetry adapter, read through the real SDK's InMemoryMetricReader."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import balancekit as bk
from balancekit.metrics import CATALOG, Source
from balancekit.metrics.otel import OtelMetrics

from ._traffic import EXPECTED, A, B, expected_delay, known_traffic, only

Series = dict[str, dict[tuple[tuple[str, str], ...], float]]


def read(reader: InMemoryMetricReader) -> tuple[Series, dict[str, Any]]:
    """Every data point by metric name and sorted attributes, and each metric by name."""
    series: Series = {}
    metrics: dict[str, Any] = {}
    data = reader.get_metrics_data()
    if data is None:  # no instrument observed anything
        return series, metrics
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "balancekit"
            for metric in scope.metrics:
                metrics[metric.name] = metric
                points = series.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    points[tuple(sorted(point.attributes.items()))] = point.value
    return series, metrics


def setup(**options: Any) -> tuple[InMemoryMetricReader, bk.BalancerBase, bk.Retry]:
    lb, retry, _ = known_traffic()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    OtelMetrics(Source(lb, target="payments", retry=retry, **options), meter_provider=provider)
    return reader, lb, retry


def test_otel_reads_the_counts_of_known_traffic() -> None:
    reader, _, _ = setup()
    series, metrics = read(reader)
    for (name, labels), value in EXPECTED.items():
        key = tuple(sorted((("target", "payments"), *labels)))
        assert series[name][key] == value, (name, labels)
    delay = series["balancekit.client.retry.delay"][(("target", "payments"),)]
    assert delay == pytest.approx(expected_delay()) and delay > 0
    assert series["balancekit.lb.rebuild.duration"][(("target", "payments"),)] > 0
    assert metrics["balancekit.lb.picks"].unit == "{pick}"
    assert metrics["balancekit.lb.rebuild.duration"].unit == "s"
    assert metrics["balancekit.lb.picks"].data.is_monotonic  # a Sum, i.e. a counter
    # in-flight requests add up across targets: an UpDownCounter (a non-monotonic Sum)
    assert type(metrics["balancekit.lb.in_flight"].data).__name__ == "Sum"
    assert not metrics["balancekit.lb.in_flight"].data.is_monotonic
    assert type(metrics["balancekit.lb.panic"].data).__name__ == "Gauge"


def test_otel_metric_names_are_the_catalog_without_opt_in_or_absent_parts() -> None:
    reader, _, _ = setup()
    series, _ = read(reader)
    wanted = {
        m.name for m in CATALOG if not m.per_endpoint and not m.name.startswith("balancekit.lb.wrr")
    }
    assert set(series) == wanted


def test_otel_counters_follow_new_traffic_and_stay_monotonic_across_removal() -> None:
    reader, lb, _ = setup()
    first, _ = read(reader)
    lb.release(only(lb, A))
    lb.remove(A)  # its 4 picks so far stay counted, its lease out goes with it
    second, _ = read(reader)
    key = (("target", "payments"),)
    assert second["balancekit.lb.picks"][key] == first["balancekit.lb.picks"][key] + 1
    assert second["balancekit.lb.in_flight"][key] == 1  # the lease kept out on A
    assert second["balancekit.lb.membership.updates"][key] == 2
    assert second["balancekit.lb.endpoints"][key] == 2


def test_otel_per_endpoint_series_are_opt_in() -> None:
    reader, _, _ = setup(per_endpoint=True)
    series, _ = read(reader)
    picks = series["balancekit.lb.endpoint.picks"]
    by_endpoint = {dict(labels)["endpoint"]: value for labels, value in picks.items()}
    assert set(by_endpoint) == {"10.0.0.1:80", B, "10.0.0.3:80"}  # D was removed
    # the removed endpoint's picks are in the total only
    key = (("target", "payments"),)
    assert sum(by_endpoint.values()) < series["balancekit.lb.picks"][key]
    available = {
        dict(labels)["endpoint"]: value
        for labels, value in series["balancekit.lb.endpoint.available"].items()
    }
    assert available == {"10.0.0.1:80": 1, B: 0, "10.0.0.3:80": 1}


def test_otel_exports_a78_wrr_counters() -> None:
    clock = [0.0]
    lb = bk.LoadReportWeightedRoundRobin(
        ["a:1", "b:1", "c:1"], blackout_period=10, weight_expiration_period=100,
        clock=lambda: clock[0],
    )  # fmt: skip
    reader = InMemoryMetricReader()
    OtelMetrics(Source(lb, target="wrr"), meter_provider=MeterProvider(metric_readers=[reader]))
    # update 1 (construction): 3 endpoints with no report: not yet usable; round robin
    lb.report("a:1", bk.LoadReport(cpu_utilization=0.5, qps=300))  # weight 600
    lb.report("b:1", bk.LoadReport(cpu_utilization=0.5, qps=100))  # weight 200
    clock[0] = 11.0
    lb.select()  # update 2: a and b usable (blackout over), c not yet: weighted
    clock[0] = 200.0
    lb.select()  # update 3: a and b expired (stale), c not yet usable: round robin
    series, _ = read(reader)
    key = (("target", "wrr"),)
    assert series["balancekit.lb.wrr.rr_fallback"][key] == 2
    assert series["balancekit.lb.wrr.endpoint_weight_not_yet_usable"][key] == 3 + 1 + 1
    assert series["balancekit.lb.wrr.endpoint_weight_stale"][key] == 2
    buckets = {
        dict(labels)["le"]: value
        for labels, value in series["balancekit.lb.wrr.endpoint_weights"].items()
    }
    # 9 weights: seven 0s (<= 0.0), 200 (<= 250), 600 (<= 750); cumulative
    assert buckets["0.0"] == 7
    assert buckets["100.0"] == 7
    assert buckets["250.0"] == 8
    assert buckets["500.0"] == 8
    assert buckets["750.0"] == 9
    assert buckets["+Inf"] == 9


def test_otel_refuses_two_sources_for_one_target_and_bad_providers() -> None:
    lb = bk.RoundRobin(["a:1"])
    metrics = OtelMetrics(meter_provider=MeterProvider())
    metrics.add(Source(lb, target="t"))
    with pytest.raises(bk.InvalidOption, match="target 't'"):
        metrics.add(Source(lb, target="t"))
    with pytest.raises(bk.InvalidOption, match="Source"):
        metrics.add(lb)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption, match="MeterProvider"):
        OtelMetrics(meter_provider="provider")  # type: ignore[arg-type]


def test_otel_removed_source_is_no_longer_reported() -> None:
    lb = bk.RoundRobin(["a:1"])
    reader = InMemoryMetricReader()
    metrics = OtelMetrics(meter_provider=MeterProvider(metric_readers=[reader]))
    source = Source(lb, target="gone")
    metrics.add(source)
    assert read(reader)[0]["balancekit.lb.endpoints"] == {(("target", "gone"),): 1}
    metrics.remove(source)
    assert read(reader)[0] == {}


def test_otel_refuses_a_second_adapter_on_one_provider() -> None:
    """The SDK would keep the first adapter's instruments and drop the second's callbacks."""
    provider = MeterProvider()
    first = OtelMetrics(Source(bk.RoundRobin(["a:1"]), target="one"), meter_provider=provider)
    with pytest.raises(bk.InvalidOption, match="add sources to its OtelMetrics"):
        OtelMetrics(Source(bk.RoundRobin(["a:1"]), target="two"), meter_provider=provider)
    first.add(Source(bk.RoundRobin(["a:1"]), target="two"))  # the way to export both
