"""Slow start: an endpoint that joins, or returns from ejection, ramps up to its full weight.

A cold server (empty caches, an unwarmed JIT, a fresh connection pool) given its full share at
once can fail again straight away. With slow start its weight grows over ``window`` seconds from
``min_share`` of its weight to all of it, in ``steps`` steps::

    share(t) = max(min_share, (k / steps) ** (1 / aggression)),  k = floor(steps * t / window)

as Envoy's ``slow_start_config`` (``time_bias ** (1 / aggression)``, ``min_weight_percent``) and
NGINX Plus' ``slow_start``. The share changes only at step boundaries, so the balancer's index is
rebuilt at most ``steps`` times per ramp, never per pick.

Integer weights: smooth WRR and the alias table need whole weights, so while any endpoint ramps
the tracker multiplies *every* effective weight by ``steps``: a steady endpoint of weight w
balances as ``w * steps``, a ramping one as ``max(1, round(w * steps * share))``. Shares between
steady endpoints are unchanged, and the ramp has a resolution of ``1 / steps``. When no endpoint
ramps, effective weights are the configured ones again.

Which strategies honour it: every strategy that reads ``EndpointState.weight`` — smooth weighted
round robin, least connections, least response time, weighted random, power of two choices,
peak EWMA. Round robin and random ignore weights, and the A58 load-report WRR balances by
weights from load reports, so slow start changes nothing there. Consistent hashing
strategies refuse it (:class:`~balancekit.InvalidOption` when attached): their weights decide
which keys an endpoint owns, so ramping them would move keys away and back, the disruption
consistent hashing exists to avoid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._options import integer, number, seconds

__all__ = ["SlowStart"]


@dataclass(frozen=True, slots=True)
class SlowStart:
    """Slow-start settings (keyword-only, validated at once).

    ``window``: seconds to reach full weight (Envoy ``slow_start_window``; no default there,
    30 s here as NGINX examples use). ``min_share``: the share of its weight an endpoint starts
    with (Envoy ``min_weight_percent``, default 10 %). ``aggression``: 1.0 is linear; above 1
    ramps faster early (Envoy ``aggression``, default 1.0). ``steps``: how many times the weight
    changes during the ramp, and the factor effective weights are scaled by while one ramps.
    """

    window: float = 30.0
    min_share: float = 0.1
    aggression: float = 1.0
    steps: int = 10

    def __init__(
        self,
        *,
        window: float = 30.0,
        min_share: float = 0.1,
        aggression: float = 1.0,
        steps: int = 10,
    ) -> None:
        fraction = "a fraction in (0, 1]"
        object.__setattr__(self, "window", seconds("window", window))
        object.__setattr__(
            self,
            "min_share",
            number("min_share", min_share, high=1, high_open=False, what=fraction),
        )
        object.__setattr__(
            self, "aggression", number("aggression", aggression, what="a positive number")
        )
        object.__setattr__(self, "steps", integer("steps", steps, 1, 1000))

    def step(self, elapsed: float) -> int:
        """The ramp step reached ``elapsed`` seconds after the ramp began (``steps``: done)."""
        if elapsed >= self.window:
            return self.steps
        return max(0, min(self.steps, math.floor(self.steps * elapsed / self.window)))

    def share(self, step: int) -> float:
        """The share of its weight an endpoint has at ``step``: monotone, 1.0 at ``steps``."""
        if step >= self.steps:
            return 1.0
        return max(self.min_share, float((step / self.steps) ** (1.0 / self.aggression)))

    def step_time(self, step: int) -> float:
        """Seconds after the ramp began at which ``step`` is reached."""
        return self.window * step / self.steps

    def effective_weight(self, weight: int, step: int) -> int:
        """The integer weight a ramping endpoint balances by at ``step`` (scaled by ``steps``)."""
        return max(1, round(weight * self.steps * self.share(step)))
