"""docs/algorithms.md states what each load- or latency-aware strategy does one request at a
time, and the statements hold (measured with balancekit.sim.sequential)."""

from __future__ import annotations

from pathlib import Path

import pytest

import balancekit as bk
from balancekit._core import Balancer, Clock
from balancekit.sim import factory, sequential

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "algorithms.md"

# Every strategy whose pick depends on load or latency measured at run time: at concurrency 1
# every in-flight count is 0, so what decides there is worth a sentence.
LOAD_AWARE = (
    "LeastConnections",
    "LeastResponseTime",
    "PeakEWMA",
    "PowerOfTwoChoices",
    "LoadReportWeightedRoundRobin",
)


def _section(name: str) -> str:
    text = GUIDE.read_text()
    start = text.index(f"\n## {name}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


@pytest.mark.parametrize("name", LOAD_AWARE)
def test_the_guide_states_the_low_concurrency_behaviour(name: str) -> None:
    section = _section(name)
    assert "at low concurrency" in section.lower(), f"{name}: say what it does one at a time"
    assert "balancekit.sim.sequential" in section or name in (
        "LeastConnections",
        "PowerOfTwoChoices",
    )


@pytest.mark.parametrize("name", ["LeastResponseTime", "PeakEWMA"])
def test_latency_aware_strategies_split_sequential_traffic_as_documented(name: str) -> None:
    # the guide: "split 30,000 back-to-back requests 50/50" (sigma 0.3), newcomer within tens of ms
    for seed in (1, 2, 3):
        assert sequential.split(factory(name, seed), seed=seed).share < 0.52
        joined = sequential.join(factory(name, seed), seed=seed)
        assert joined.first_after is not None and joined.first_after < 0.1


class _Reporting(bk.LoadReportWeightedRoundRobin):
    """Every server reports the same load after each response (identical servers)."""

    def release(self, lease: bk.Lease, **outcome: object) -> None:  # type: ignore[override]
        super().release(lease, **outcome)  # type: ignore[arg-type]
        self.report(lease, bk.LoadReport(cpu_utilization=0.5, qps=100))


def _plain(endpoints: list[bk.Endpoint], clock: Clock) -> Balancer:
    return bk.LoadReportWeightedRoundRobin(endpoints, clock=clock)


def _reporting(endpoints: list[bk.Endpoint], clock: Clock) -> Balancer:
    return _Reporting(endpoints, clock=clock)


@pytest.mark.parametrize("build", [_plain, _reporting])
def test_load_report_wrr_at_low_concurrency_is_as_documented(
    build: sequential.BalancerFactory,
) -> None:
    # the guide: round robin without reports, the reported weights with them; a newcomer
    # takes its turn from the next round (10 ms after joining at 100 requests/s)
    for seed in (1, 2):
        assert sequential.split(build, seed=seed).counts == (15_000, 15_000)
        joined = sequential.join(build, seed=seed)
        assert joined.first_after is not None and joined.first_after <= 0.0101
        assert joined.newcomer_share == pytest.approx(1 / 3, abs=0.002)
