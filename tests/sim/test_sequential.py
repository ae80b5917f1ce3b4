"""balancekit.sim.sequential: deterministic, and showing what it is for."""

from __future__ import annotations

import pytest

import balancekit as bk
from balancekit import sim
from balancekit.sim import sequential


@pytest.mark.parametrize("name", ["LeastResponseTime", "PeakEWMA"])
def test_latency_aware_strategies_split_and_take_in_a_newcomer(name: str) -> None:
    shared = sequential.split(sim.factory(name, 1), requests=10_000, seed=1)
    assert sum(shared.counts) == 10_000 and shared.share <= 0.55, shared
    joined = sequential.join(sim.factory(name, 1), seed=1)
    assert joined.first_after is not None and joined.first_after < 1.0, joined
    assert 0.25 <= joined.newcomer_share <= 0.42, joined  # about its third


def test_the_runs_are_deterministic_for_a_seed() -> None:
    runs = [sequential.split(sim.factory("PeakEWMA", 3), requests=3_000, seed=3) for _ in "ab"]
    assert runs[0] == runs[1]
    other = sequential.split(sim.factory("PeakEWMA", 4), requests=3_000, seed=4)
    assert other != runs[0]
    joins = [sequential.join(sim.factory("PeakEWMA", 3), seed=3, duration=12) for _ in "ab"]
    assert joins[0] == joins[1]


def test_a_strategy_that_never_tries_the_newcomer_shows_never() -> None:
    class Ignores(bk.RoundRobin):
        def add(self, endpoint: bk.EndpointLike) -> None:  # joins nothing
            return None

    result = sequential.join(lambda endpoints, clock: Ignores(endpoints), duration=11.0)
    assert result.first_after is None and result.newcomer_share == 0.0


def test_the_table_names_each_strategy() -> None:
    text = sequential.table(["RoundRobin", "PeakEWMA"], requests=1_000)
    assert "| RoundRobin | 50.0% |" in text and "| PeakEWMA |" in text


@pytest.mark.parametrize(
    "options",
    [
        {"mean": 0.0},
        {"mean": float("nan")},
        {"jitter": -1.0},
        {"requests": 0},
        {"requests": True},
    ],
)
def test_bad_split_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        sequential.split(sim.factory("RoundRobin"), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [{"rate": 0.0}, {"join_at": 30.0}, {"duration": float("inf")}, {"rate": 1e9}],
)
def test_bad_join_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        sequential.join(sim.factory("RoundRobin"), **options)  # type: ignore[arg-type]
