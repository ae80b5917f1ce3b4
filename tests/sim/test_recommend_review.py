"""Regression test from the adversarial review of sim.recommend: a strategy that served
nothing has no p99, not the best one."""

from __future__ import annotations

import balancekit as bk
from balancekit import sim


def test_a_strategy_that_completed_nothing_is_not_recommended() -> None:
    """A balancer that places no request (here: an empty pool) has no latencies, and its p99
    read 0.0 ms: the lowest, so it was recommended with 100 % errors."""
    scenario = sim.SCENARIOS["degrade"](500)
    served = sim.run(scenario, sim.factory("LeastConnections"), seed=1)
    nowhere = sim.run(scenario, lambda *args, **kwargs: bk.RoundRobin(), seed=1, name="Nowhere")
    assert (nowhere.completed, nowhere.errors) == (0, 500)
    for results in ([served, nowhere], [nowhere, served]):
        assert sim.recommend(results).strategy == "LeastConnections"
    assert sim.recommend([nowhere]).strategy == "Nowhere"  # the only one: still an answer
