"""Health transitions as counters (read by ``balancekit.metrics``) and as one log line each.

The tracker calls :func:`note` for every event it emits, under the balancer's lock. Events are
state changes (an ejection, a return, panic engaging or ending, an active-check verdict
flipping), never single requests, so a failure storm writes one line per endpoint ejected
and per panic transition, not one per failed request. Levels: WARNING when capacity is lost
(an ejection, panic engaging, a check failing), INFO when it comes back.

Logger: ``balancekit.health``. Each record carries the event as ``record.balancekit_event``
for structured handlers.
"""

from __future__ import annotations

import contextlib
import logging

from .events import (
    CheckFailed,
    CheckPassed,
    Ejected,
    HealthEvent,
    PanicDisengaged,
    PanicEngaged,
    Returned,
)

__all__ = ["event_key", "note"]

_log = logging.getLogger("balancekit.health")

#: The longest check ``detail`` a log line quotes (a server's error text is untrusted).
DETAIL_CHARS = 200


def event_key(event: HealthEvent) -> str:
    """The counter an event adds to: its kind, and an ejection's reason (``ejected:<reason>``)."""
    if isinstance(event, Ejected):
        return f"ejected:{event.reason}"
    return {
        Returned: "returned",
        PanicEngaged: "panic_engaged",
        PanicDisengaged: "panic_disengaged",
        CheckFailed: "check_failed",
        CheckPassed: "check_passed",
    }[type(event)]


def note(counts: dict[str, int], event: HealthEvent) -> None:
    """Count ``event`` in ``counts`` and write its one log line. O(1).

    A logging filter that raises is ignored here (handlers' own errors are handled by
    :mod:`logging`): events are noted in the middle of the tracker's state changes.
    """
    key = event_key(event)
    counts[key] = counts.get(key, 0) + 1
    with contextlib.suppress(Exception):  # nothing safe to do with it under the lock
        _write(event)


def _write(event: HealthEvent) -> None:
    extra = {"balancekit_event": event}
    if isinstance(event, Ejected):
        _log.warning(
            "balancekit health: ejected %s (%s), ejection #%d, for %.3g s",
            event.address,
            event.reason,
            event.ejections,
            event.until - event.at,
            extra=extra,
        )
    elif isinstance(event, Returned):
        _log.info("balancekit health: %s returned to rotation", event.address, extra=extra)
    elif isinstance(event, PanicEngaged):
        _log.warning(
            "balancekit health: panic engaged, %d of %d endpoints healthy: failing open over all",
            event.healthy,
            event.total,
            extra=extra,
        )
    elif isinstance(event, PanicDisengaged):
        _log.info(
            "balancekit health: panic over, %d of %d endpoints healthy",
            event.healthy,
            event.total,
            extra=extra,
        )
    elif isinstance(event, CheckFailed):
        _log.warning(
            "balancekit health: active check failed for %s, out of rotation: %r",
            event.address,
            event.detail[:DETAIL_CHARS],
            extra=extra,
        )
    else:
        _log.info(
            "balancekit health: active check passed for %s, back in rotation",
            event.address,
            extra=extra,
        )
