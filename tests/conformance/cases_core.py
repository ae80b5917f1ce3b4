"""The five classic strategies of the core issue."""

from __future__ import annotations

import balancekit as bk

from .registry import Case

CASES = [
    Case("RoundRobin", lambda eps, clock: bk.RoundRobin(eps, clock=clock), weights="ignored"),
    Case("WeightedRoundRobin", lambda eps, clock: bk.WeightedRoundRobin(eps, clock=clock)),
    Case(
        "IPHash",
        lambda eps, clock: bk.IPHash(eps, clock=clock),
        keyed=True,
        weights="statistical",
        tolerance=0.08,
        consistent=True,
    ),
    Case("LeastConnections", lambda eps, clock: bk.LeastConnections(eps, clock=clock)),
    Case(
        "LeastResponseTime",
        lambda eps, clock: bk.LeastResponseTime(eps, clock=clock),
        weights="concurrent",
        tolerance=0.05,
    ),
]
