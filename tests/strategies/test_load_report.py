"""LoadReportWeightedRoundRobin against gRFC A58: weights, blackout, expiry, mean fallback."""

from __future__ import annotations

import math
from collections import Counter

import pytest

import balancekit as bk
from balancekit.strategies.load_report import STRIDE_MAX_WEIGHT, stride_weights


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_weight_formula_of_a58() -> None:
    # weight = qps / (utilization + eps / qps * error_utilization_penalty)
    report = bk.LoadReport(cpu_utilization=0.5, qps=100, eps=10)
    assert math.isclose(report.weight(), 100 / (0.5 + 0.1))
    assert math.isclose(report.weight(2.0), 100 / (0.5 + 0.2))
    assert report.weight(0.0) == 200
    assert bk.LoadReport(cpu_utilization=0.9, application_utilization=0.25, qps=10).weight() == 40
    assert bk.LoadReport(cpu_utilization=0.5, qps=0).weight() == 0  # ignored
    assert bk.LoadReport(cpu_utilization=0, qps=50).weight() == 0  # ignored
    with pytest.raises(bk.InvalidOption, match="qps"):
        bk.LoadReport(qps=-1)
    with pytest.raises(bk.InvalidOption, match="cpu_utilization"):
        bk.LoadReport(cpu_utilization=math.nan)


def test_blackout_then_weight_then_expiry_then_blackout_again() -> None:
    clock = Clock()
    lb = bk.LoadReportWeightedRoundRobin(["a:80", "b:80"], clock=clock)  # 10 s, 3 min
    good = bk.LoadReport(cpu_utilization=0.5, qps=50)  # weight 100
    for t in range(0, 11):
        clock.now = float(t)
        lb.report("a:80", good)
        assert lb.weight_at("a:80") == (100 if t >= 10 else 0)
    assert lb.weight_at("a:80", now=10 + 179.9) == 100
    assert lb.weight_at("a:80", now=10 + 180) == 0  # expired
    clock.now = 10 + 200.0
    lb.report("a:80", good)  # fresh reports after expiry: the blackout applies again
    assert lb.weight_at("a:80") == 0
    assert lb.weight_at("a:80", now=clock.now + 9.9) == 0
    assert lb.weight_at("a:80", now=clock.now + 10) == 100


def test_coming_back_up_restarts_the_blackout() -> None:
    clock = Clock()
    lb = bk.LoadReportWeightedRoundRobin(["a:80", "b:80"], blackout_period=5, clock=clock)
    lb.report("a:80", bk.LoadReport(cpu_utilization=1, qps=7))
    clock.now = 6.0
    assert lb.weight_at("a:80") == 7
    lb.mark_down("a:80")
    lb.mark_up("a:80")
    assert lb.weight_at("a:80") == 0
    lb.report("a:80", bk.LoadReport(cpu_utilization=1, qps=7))
    assert lb.weight_at("a:80", now=11.0) == 7


def scaled(weights: list[float]) -> list[int]:
    result = stride_weights(weights)
    assert result is not None
    return result.tolist()


def test_stride_weights_fallback_to_mean_and_clamps() -> None:
    assert stride_weights([5.0, 0.0, 0.0]) is None  # fewer than two weights: round robin
    assert scaled([100.0, 300.0, 0.0]) == [21845, 65535, 43690]  # 0 -> mean
    clamped = scaled([1.0] * 10 + [1000.0])  # 1000 > 10 x mean 91.8
    mean = (10 + 1000) / 11
    assert clamped[-1] == STRIDE_MAX_WEIGHT
    assert clamped[0] == round(STRIDE_MAX_WEIGHT / (10 * mean))
    tiny = scaled([1e-6, 1.0, 1.0])
    assert tiny[0] == round(round(STRIDE_MAX_WEIGHT * (2 + 1e-6) / 3) * 0.01)  # min ratio


def test_picks_follow_reported_weights_with_mean_for_the_silent() -> None:
    clock = Clock()
    lb = bk.LoadReportWeightedRoundRobin(["a:80", "b:80", "c:80"], blackout_period=0, clock=clock)
    lb.report("a:80", bk.LoadReport(cpu_utilization=1, qps=100))
    lb.report("b:80", bk.LoadReport(cpu_utilization=1, qps=300))
    picks = Counter(lb.select().address for _ in range(300))
    assert picks == {"a:80": 100, "b:80": 100, "c:80": 100}  # not yet: weights update each 1 s
    clock.now = 1.0
    total = 60_000
    picks = Counter(lb.select().address for _ in range(total))
    for address, share in (("a:80", 1 / 6), ("b:80", 3 / 6), ("c:80", 2 / 6)):
        assert abs(picks[address] / total - share) < 0.002
    lb._check_invariants()


def test_reports_for_removed_leases_are_ignored_and_unknown_addresses_raise() -> None:
    lb = bk.LoadReportWeightedRoundRobin(["a:80", "b:80"])
    lease = lb.select()
    lb.remove(lease.address)
    lb.report(lease, bk.LoadReport(cpu_utilization=1, qps=1))
    lb.release(lease)
    with pytest.raises(bk.UnknownEndpoint):
        lb.report("z:80", bk.LoadReport(cpu_utilization=1, qps=1))
    with pytest.raises(bk.InvalidOption, match="LoadReport"):
        lb.report("b:80", {"qps": 1})  # type: ignore[arg-type]
    lb._check_invariants()


def test_options_are_validated() -> None:
    with pytest.raises(bk.InvalidOption, match="blackout_period"):
        bk.LoadReportWeightedRoundRobin(blackout_period=-1)
    with pytest.raises(bk.InvalidOption, match="weight_expiration_period"):
        bk.LoadReportWeightedRoundRobin(weight_expiration_period=0)
    with pytest.raises(bk.InvalidOption, match="error_utilization_penalty"):
        bk.LoadReportWeightedRoundRobin(error_utilization_penalty=math.inf)


def test_orca_header_text_and_json() -> None:
    # Field names from xds/data/orca/v3/orca_load_report.proto; A58's qps is rps_fractional.
    text = bk.LoadReport.from_header(
        "TEXT cpu_utilization=0.25, mem_utilization=0.9, rps_fractional=50, eps=5,"
        " named_metrics.foo=3"
    )
    assert text == bk.LoadReport(cpu_utilization=0.25, qps=50, eps=5)
    parsed = bk.LoadReport.from_header(
        'JSON {"application_utilization": 0.5, "rps_fractional": 20, "named_metrics": {"a": 1}}'
    )
    assert parsed.weight() == 40
    for bad in ("BIN CgQ=", "TEXT cpu_utilization", "JSON [1]", "TEXT eps=lots", "JSON {"):
        with pytest.raises(bk.InvalidOption):
            bk.LoadReport.from_header(bad)
    with pytest.raises(bk.InvalidOption, match=">= 0"):
        bk.LoadReport.from_header("TEXT rps_fractional=-3")
