"""Strategies with passive health (and slow start) attached: the suite must hold for them too.

The ``fail`` schedule of the suite (every third release fails) never makes five failures in a row
on one endpoint, so these check that health tracking changes nothing while all is well; the
properties of ejection itself (never an ejected endpoint outside panic) are checked for every
strategy in tests/stateful/test_health_machine.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import balancekit as bk

from .registry import Case


def _healthy(
    make: Callable[[Sequence[bk.Endpoint], Callable[[], float]], bk.BalancerBase],
    *,
    slow_start: bool = False,
) -> Callable[[Sequence[bk.Endpoint], Callable[[], float]], bk.Balancer]:
    def build(endpoints: Sequence[bk.Endpoint], clock: Callable[[], float]) -> bk.Balancer:
        return bk.with_health(
            make(endpoints, clock),
            bk.PassiveHealth(consecutive_failures=5, failure_rate=0.9, window=20),
            slow_start=bk.SlowStart(window=5.0) if slow_start else None,
        )

    return build


CASES = [
    Case(
        "WeightedRoundRobin+health",
        _healthy(lambda eps, clock: bk.WeightedRoundRobin(eps, clock=clock), slow_start=True),
    ),
    Case(
        "LeastConnections+health",
        _healthy(lambda eps, clock: bk.LeastConnections(eps, clock=clock), slow_start=True),
    ),
    Case(
        "IPHash+health",
        _healthy(lambda eps, clock: bk.IPHash(eps, clock=clock)),
        keyed=True,
        weights="statistical",
        tolerance=0.08,
        consistent=True,
    ),
]
