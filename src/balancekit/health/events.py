"""The events a health tracker reports to its ``on_event`` callback: every transition, typed.

Each event is a frozen dataclass carrying the clock reading ``at`` which it happened. They are
delivered synchronously, under the balancer's lock, in the order they happen: keep the callback
quick (append to a list, bump a metric, log) and do not block in it. An exception it raises is
logged (logger ``balancekit.health``) and goes no further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CheckFailed",
    "CheckPassed",
    "Ejected",
    "HealthEvent",
    "PanicDisengaged",
    "PanicEngaged",
    "Returned",
]


@dataclass(frozen=True, slots=True)
class Ejected:
    """Passive health took ``address`` out of rotation until ``until`` (its ``ejections``-th time).

    ``reason`` is ``"consecutive_failures"``, ``"failure_rate"`` or ``"connect_failure"`` (a
    refused connection an integration reported: ``HealthTracker.connect_failed``).
    """

    address: str
    at: float
    until: float
    ejections: int
    reason: Literal["consecutive_failures", "failure_rate", "connect_failure"]


@dataclass(frozen=True, slots=True)
class Returned:
    """An ejected endpoint is back in rotation (slow start, if set): its ejection time ended, or
    active checks saw it go down and come back up (``PassiveHealth.check_ends_ejection``)."""

    address: str
    at: float


@dataclass(frozen=True, slots=True)
class PanicEngaged:
    """Fewer than ``panic_threshold`` of the endpoints that are up are healthy: fail open.

    ``healthy`` of ``total`` endpoints (marked up) are neither ejected nor failing active checks;
    selection now spreads over all ``total`` rather than overload the few healthy ones.
    """

    at: float
    healthy: int
    total: int


@dataclass(frozen=True, slots=True)
class PanicDisengaged:
    """Enough endpoints are healthy again: unhealthy ones are excluded once more."""

    at: float
    healthy: int
    total: int


@dataclass(frozen=True, slots=True)
class CheckFailed:
    """Active checks failed ``fall`` times in a row: ``address`` is out of rotation."""

    address: str
    at: float
    detail: str


@dataclass(frozen=True, slots=True)
class CheckPassed:
    """Active checks passed ``rise`` times in a row: ``address`` is back in rotation."""

    address: str
    at: float


#: Any event a health tracker reports.
HealthEvent = Ejected | Returned | PanicEngaged | PanicDisengaged | CheckFailed | CheckPassed
