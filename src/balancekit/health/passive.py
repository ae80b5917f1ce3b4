"""Passive health (outlier detection): eject endpoints whose requests fail, fail open in panic.

Attach a tracker to any balancer with :func:`with_health`; every strategy gets the same
behaviour, because the tracker works on the base class's eligibility, not on a strategy's index::

    >>> import balancekit as bk
    >>> lb = bk.with_health(
    ...     bk.RoundRobin(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], clock=lambda: 0.0),
    ...     bk.PassiveHealth(consecutive_failures=2),
    ... )
    >>> for _ in range(2):
    ...     lb.release(lb.select(avoid={"10.0.0.2:80", "10.0.0.3:80"}), ok=False)
    >>> lb.stats()["10.0.0.1:80"].ejected
    True
    >>> sorted({lb.select().address for _ in range(6)})
    ['10.0.0.2:80', '10.0.0.3:80']

How it decides (Envoy outlier detection; gRPC gRFC A50; Finagle failure accrual):

- **Consecutive failures**: ``consecutive_failures`` failed releases in a row eject the endpoint
  (Envoy ``consecutive_5xx``, default 5; Finagle ``FailureAccrualFactory``, 5).
- **Failure rate** (on by default): over the last ``window`` outcomes (100), once
  ``minimum_requests`` (50) are seen, a failed share of at least ``failure_rate`` (0.25) ejects it
  (Envoy ``failure_percentage_threshold`` with ``failure_percentage_request_volume`` 50; gRFC A50
  ``failure_percentage_ejection``). Envoy's threshold is 85 % and not enforced by default; five
  failures in a row alone take ~600 requests to notice a server failing 30 % (0.3^5), so here a
  quarter of recent requests failing is enough: a healthy server's background errors stay far
  below it (13 of the first 50 failing: P < 1e-6 at 5 %, 1e-3 at 10 %), while a 30 % server
  crosses it within ~50-100 requests (P = 0.78 at the 50th).
- **Ejection time** grows with repeated ejections: ``base_ejection * n`` for the n-th, capped at
  ``max_ejection`` (Envoy ``base_ejection_time`` 30 s, ``max_ejection_time`` 300 s); ``n`` drops by
  one for every ``interval`` seconds spent back in rotation (Envoy/gRPC decrement per ``interval``,
  10 s), so good behaviour is forgiven.
- **Max ejection share**: an ejection is refused while ``floor(max_ejection_share * members)``
  endpoints are already ejected, except that **one endpoint can always be ejected** (Envoy
  ``max_ejection_percent`` with ``always_eject_one_host``; grpc-java allows one ejection past the
  share). The default is half (0.5), the panic threshold. Envoy's and gRFC A50's default is
  10 %: Envoy then ejects no host of a pool under ten unless ``always_eject_one_host`` is set,
  and one with it, so in a pool of four a killed server blocks ejecting a flaky one. Ejecting
  more than half would engage panic anyway, so half is the most that still helps; the price is
  that a fault on the client's side, failing every endpoint, can eject up to half of them for
  one ejection time.
- **Active checks end ejections**: when an :class:`~balancekit.health.ActiveChecker` on the same
  balancer sees an ejected endpoint recover (its verdict goes from down, ``fall`` failures, back
  to up, ``rise`` passes), the ejection ends at once (Envoy
  ``successful_active_health_check_uneject_host``, default true; ``check_ends_ejection=False``
  keeps it out until its time). Unlike Envoy, a check that never failed does not end an ejection:
  a server failing requests while its health endpoint answers 200 stays out.
- **Panic**: when fewer than ``panic_threshold`` of the endpoints marked up are healthy (not
  ejected, not failing active checks), selection fails open over all of them rather than
  overload the few left or raise (Envoy ``healthy_panic_threshold``, 50 %; 0 disables it).

Costs: ``release`` adds O(1) under the balancer's lock (a success with no failure streak skips
the lock: with a rate window it appends to it, atomically in CPython; a failure counts the
window's failures, O(window)); ``select`` adds one clock read compared with one float (``due``:
the next ejection end or slow-start step); an ejection, a return or a ramp step rebuilds the
strategy's index once, under the lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._errors import InvalidOption
from .._options import describe, integer, number

__all__ = ["PassiveHealth"]


def _number(name: str, value: object, low: float, high: float, *, low_open: bool) -> float:
    return number(name, value, low=low, high=high, low_open=low_open, high_open=False)


@dataclass(frozen=True, slots=True)
class PassiveHealth:
    """Outlier-detection settings (keyword-only, validated at once); see the module docs.

    ``consecutive_failures=None`` and ``failure_rate=None`` turn detection off and keep only the
    panic threshold (for active checks alone). ``minimum_requests`` defaults to 50, or the whole
    ``window`` when that is smaller.
    """

    consecutive_failures: int | None = 5
    failure_rate: float | None = 0.25
    window: int = 100
    minimum_requests: int = 50
    base_ejection: float = 30.0
    max_ejection: float = 300.0
    interval: float = 10.0
    max_ejection_share: float = 0.5
    panic_threshold: float = 0.5
    check_ends_ejection: bool = True

    def __init__(
        self,
        *,
        consecutive_failures: int | None = 5,
        failure_rate: float | None = 0.25,
        window: int = 100,
        minimum_requests: int | None = None,
        base_ejection: float = 30.0,
        max_ejection: float = 300.0,
        interval: float = 10.0,
        max_ejection_share: float = 0.5,
        panic_threshold: float = 0.5,
        check_ends_ejection: bool = True,
    ) -> None:
        if not isinstance(check_ends_ejection, bool):
            raise InvalidOption(
                f"check_ends_ejection must be True or False, not {describe(check_ends_ejection)}"
            )
        window = integer("window", window, 1, 1_000_000)
        values: dict[str, object] = {
            "consecutive_failures": None
            if consecutive_failures is None
            else integer("consecutive_failures", consecutive_failures, 1, 1_000_000),
            "failure_rate": None
            if failure_rate is None
            else _number("failure_rate", failure_rate, 0.0, 1.0, low_open=True),
            "window": window,
            "minimum_requests": min(50, window)
            if minimum_requests is None
            else integer("minimum_requests", minimum_requests, 1, 1_000_000),
            "base_ejection": _number("base_ejection", base_ejection, 0, 1e9, low_open=True),
            "max_ejection": _number("max_ejection", max_ejection, 0, 1e9, low_open=True),
            "interval": _number("interval", interval, 0, 1e9, low_open=True),
            "max_ejection_share": _number(
                "max_ejection_share", max_ejection_share, 0.0, 1.0, low_open=False
            ),
            "panic_threshold": _number(
                "panic_threshold", panic_threshold, 0.0, 1.0, low_open=False
            ),
        }
        if values["minimum_requests"] > values["window"]:  # type: ignore[operator]
            raise InvalidOption(
                f"minimum_requests ({minimum_requests}) cannot exceed the window ({window})"
            )
        values["check_ends_ejection"] = check_ends_ejection
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def ejection_limit(self, members: int) -> int:
        """How many of ``members`` endpoints may be ejected at once: the share, but always at
        least one (Envoy's ``always_eject_one_host``), unless the share is 0."""
        if self.max_ejection_share <= 0 or members == 0:
            return 0
        return max(1, math.floor(self.max_ejection_share * members + 1e-9))

    def in_panic(self, healthy: int, total: int) -> bool:
        """Whether ``healthy`` of ``total`` endpoints (marked up) is below the panic threshold."""
        # healthy / total is rounded once, like the threshold's literal: 7 of 10 is not below 0.7
        # (0.7 * 10 would round up to 7.000000000000001 and call it panic).
        return total > 0 and healthy / total < self.panic_threshold
