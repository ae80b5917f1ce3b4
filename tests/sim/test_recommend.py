"""The closing recommendation: p99, errors and key affinity weighed, not p99 alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancekit import sim
from balancekit.sim.engine import Result
from balancekit.sim.recommend import (
    ERROR_FLOOR,
    ERROR_SLACK,
    LATENCY_SLACK,
    recommend,
)
from balancekit.sim.strategies import keeps_affinity

MIXED = [
    "LeastResponseTime",
    "LeastConnections",
    "PeakEWMA",
    "WeightedRoundRobin",
    "Random",
    "BoundedLoadHash",
    "IPHash",
]


def _runs(scenario: str, requests: int) -> tuple[sim.Scenario, list[Result]]:
    built = sim.SCENARIOS[scenario](requests)
    return built, [sim.run(built, sim.factory(name, 1), seed=1, name=name) for name in MIXED]


def test_degrade_picks_the_fastest_load_aware_strategy() -> None:
    scenario, results = _runs("degrade", 20_000)
    advice = recommend(results, affinity=scenario.affinity)
    leader = min(results, key=lambda r: r.p99)
    assert advice.strategy == leader.strategy
    assert not keeps_affinity(advice.strategy)
    assert "does not need key affinity" in " ".join(advice.reasons)


def test_flaky_trades_a_little_p99_for_far_fewer_errors() -> None:
    # A server failing fast attracts load-aware picks: the p99 leader has the most errors.
    scenario, results = _runs("flaky", 20_000)
    advice = recommend(results, affinity=scenario.affinity)
    leader = min(results, key=lambda r: r.p99)
    pick = next(r for r in results if r.strategy == advice.strategy)
    assert pick.strategy != leader.strategy
    assert pick.errors < 0.75 * leader.errors
    assert pick.p99 <= LATENCY_SLACK * leader.p99
    # the strategy with the fewest errors of all is not picked: its p99 is seconds
    fewest = min(results, key=lambda r: r.errors)
    assert fewest.p99 > LATENCY_SLACK * leader.p99 and advice.strategy != fewest.strategy
    text = advice.text()
    assert leader.strategy in text and "errors" in text and "--health" in text


def test_sticky_needs_affinity_so_a_hash_is_picked() -> None:
    scenario, results = _runs("sticky", 20_000)
    assert scenario.affinity
    advice = recommend(results, affinity=scenario.affinity)
    assert keeps_affinity(advice.strategy)
    assert advice.strategy == "BoundedLoadHash"  # the only hash that spills off a slow server
    assert any("needs key affinity" in reason for reason in advice.reasons)


def test_affinity_without_any_hash_says_so() -> None:
    _, results = _runs("degrade", 2_000)
    plain = [r for r in results if not keeps_affinity(r.strategy)]
    advice = recommend(plain, affinity=True)
    assert any("none of the strategies run keeps it" in reason for reason in advice.reasons)


def test_no_results_is_an_error() -> None:
    with pytest.raises(ValueError, match="no results"):
        recommend([])


@pytest.fixture(scope="module")
def template() -> Result:
    scenario = sim.SCENARIOS["degrade"](500)
    return sim.run(scenario, sim.factory("RoundRobin"), seed=1, name="RoundRobin")


_ROW = st.tuples(
    st.sampled_from(sim.available()),
    st.floats(0.001, 100.0),
    st.integers(0, 2_000),
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(_ROW, min_size=1, max_size=12, unique_by=lambda row: row[0]),
    affinity=st.booleans(),
)
def test_the_rule_holds_for_any_results(
    template: Result, rows: list[tuple[str, float, int]], affinity: bool
) -> None:
    results = [
        replace(template, strategy=name, p99=p99, p999=p99 * 1.5, failed=errors, requests=10_000)
        for name, p99, errors in rows
    ]
    advice = recommend(results, affinity=affinity)
    pool = results
    if affinity and any(keeps_affinity(r.strategy) for r in results):
        pool = [r for r in results if keeps_affinity(r.strategy)]
    picked = [r for r in pool if r.strategy == advice.strategy]
    assert len(picked) == 1, "the pick is one of the qualifying strategies"
    best = min(r.p99 for r in pool)
    fast = [r for r in pool if r.p99 <= LATENCY_SLACK * best]
    fewest = min(r.errors for r in fast)
    pick = picked[0]
    assert pick.p99 <= LATENCY_SLACK * best
    assert pick.errors <= fewest * (1 + ERROR_SLACK) + ERROR_FLOOR * 10_000
    assert advice.reasons and all(reason for reason in advice.reasons)
