"""The simulator: real balancers, simulated servers and clients, simulated time.

>>> from balancekit import sim
>>> scenario = sim.SCENARIOS["degrade"](2000)
>>> result = sim.run(scenario, sim.factory("LeastConnections"), seed=1)
>>> result.completed, result.errors
(2000, 0)

See docs/simulator.md.
"""

from .engine import BalancerFactory, Result, ServerResult, SimClock, SimulationError, arrivals, run
from .recommend import Recommendation, recommend
from .report import json_report, text_report
from .scenario import (
    DEFAULT_REQUESTS,
    SCENARIOS,
    Burst,
    Scenario,
    ServerChange,
    ServerSpec,
    default_scenario,
    register,
)
from .strategies import CUSTOM, STRATEGY_NAMES, available, factory

__all__ = [
    "CUSTOM",
    "DEFAULT_REQUESTS",
    "SCENARIOS",
    "STRATEGY_NAMES",
    "BalancerFactory",
    "Burst",
    "Recommendation",
    "Result",
    "Scenario",
    "ServerChange",
    "ServerResult",
    "ServerSpec",
    "SimClock",
    "SimulationError",
    "arrivals",
    "available",
    "default_scenario",
    "factory",
    "json_report",
    "recommend",
    "register",
    "run",
    "text_report",
]
