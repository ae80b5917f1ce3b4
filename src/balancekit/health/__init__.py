"""Resilience for every strategy: passive health (ejection, panic), slow start, active checks.

See docs/resilience.md. :func:`with_health` attaches a :class:`HealthTracker` to any balancer;
:class:`ActiveChecker` probes endpoints off the selection path and feeds the same tracker.
"""

from .active import ActiveChecker, Check, HttpCheck, TcpCheck
from .events import (
    CheckFailed,
    CheckPassed,
    Ejected,
    HealthEvent,
    PanicDisengaged,
    PanicEngaged,
    Returned,
)
from .passive import PassiveHealth
from .slow_start import SlowStart
from .tracker import HealthTracker, health_of, with_health

__all__ = [
    "ActiveChecker",
    "Check",
    "CheckFailed",
    "CheckPassed",
    "Ejected",
    "HealthEvent",
    "HealthTracker",
    "HttpCheck",
    "PanicDisengaged",
    "PanicEngaged",
    "PassiveHealth",
    "Returned",
    "SlowStart",
    "TcpCheck",
    "health_of",
    "with_health",
]
