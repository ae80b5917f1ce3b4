"""The issue's proof: one of ten servers fails half its requests; passive health cuts failures 10x.

The full figure (every strategy, 120,000 requests) is in docs/resilience.md, from
``python -m balancekit.sim.scenario_health``; this runs a shorter version for two strategies.
"""

from __future__ import annotations

import pytest

from balancekit.sim import SCENARIOS
from balancekit.sim.scenario_health import FAILING, compare, failing_scenario


@pytest.mark.parametrize("strategy", ["WeightedRoundRobin", "LeastConnections"])
def test_passive_health_cuts_client_failures_at_least_tenfold(strategy: str) -> None:
    (comparison,) = compare([strategy], requests=60_000, seed=1)
    assert comparison.share_without > 0.04  # the failing server really hurts without health
    assert comparison.reduction >= 10, comparison


def test_the_scenario_is_registered_and_shaped_as_the_issue_says() -> None:
    scenario = failing_scenario(1000)
    assert SCENARIOS["failing"](1000) == scenario
    assert len(scenario.servers) == 10
    (change,) = scenario.changes
    assert (change.address, change.failure) == (FAILING, 0.5)
