"""Endpoints that refuse connections sit out, through the balancer's one health tracker.

The integrations keep no ejection list of their own (docs/architecture.md: one health
mechanism). A failed connection is reported to the balancer's health tracker
(:meth:`~balancekit.health.HealthTracker.connect_failed`), which ejects the endpoint at once; the
ejection ends on the tracker's clock, and only ever clears the tracker's ``ejected`` flag, so an
operator's ``mark_down`` (a drain) stays in force until ``mark_up``.

:func:`connect_health` finds that tracker: the balancer's own if ``bk.with_health`` attached one
(its :class:`~balancekit.PassiveHealth` then decides how long ejections last), otherwise one the
integration attaches whose only job is this (:func:`connect_only`: ``eject`` seconds for the
first ejection, ``eject * n`` for the n-th in a row, at most ``max_eject``).
"""

from __future__ import annotations

import math
import threading

from .._core import Balancer, BalancerBase
from .._errors import InvalidOption
from ..health.passive import PassiveHealth
from ..health.tracker import HealthTracker, health_of, with_health

__all__ = ["DEFAULT_EJECT", "DEFAULT_MAX_EJECT", "check_eject", "connect_health", "connect_only"]

#: Seconds the first ejection of an endpoint refusing connections lasts, and the most any does.
DEFAULT_EJECT = 1.0
DEFAULT_MAX_EJECT = 30.0

_attaching = threading.Lock()  # two transports built at once on one balancer attach one tracker


def check_eject(eject: object, max_eject: object) -> None:
    """Validate the ejection times ``eject`` (None: no ejection) and ``max_eject``."""
    if eject is not None and (
        isinstance(eject, bool) or not isinstance(eject, int | float) or not 0 < eject < math.inf
    ):
        raise InvalidOption(f"eject must be a positive number of seconds or None, not {eject!r}")
    if isinstance(max_eject, bool) or not isinstance(max_eject, int | float):
        raise InvalidOption(f"max_eject must be a number of seconds, not {max_eject!r}")
    if not 0 < max_eject < math.inf or (isinstance(eject, int | float) and max_eject < eject):
        raise InvalidOption(f"max_eject must be finite and at least eject, not {max_eject!r}")


def connect_only(eject: float, max_eject: float) -> PassiveHealth:
    """The passive health an integration attaches: no failure streaks or rates, only refused
    connections eject (for ``eject`` seconds growing by ``eject`` per repeat up to
    ``max_eject``), any number of endpoints at once, failing open (panic) below half."""
    return PassiveHealth(
        consecutive_failures=None,
        failure_rate=None,
        base_ejection=eject,
        max_ejection=max_eject,
        max_ejection_share=1.0,
    )


def connect_health(
    balancer: Balancer, eject: float | None, max_eject: float, *, explicit: bool
) -> HealthTracker | None:
    """The tracker that connection failures eject through (None: ``eject=None``, or a balancer
    that is no :class:`~balancekit.BalancerBase`, which then only learns the failed outcomes).

    A balancer without a tracker gets one (:func:`connect_only`). One that has its own keeps it,
    with its own ejection times: ``eject``/``max_eject`` given ``explicit``-ly then must agree
    with it (a tracker an integration attached with the same times), else :class:`InvalidOption`
    rather than times silently unused.
    """
    if eject is None or not isinstance(balancer, BalancerBase):
        return None
    wanted = connect_only(eject, max_eject)
    with _attaching:
        tracker = health_of(balancer)
        if tracker is None:
            with_health(balancer, wanted)  # InvalidOption if another kind of hook is attached
            tracker = health_of(balancer)
            assert tracker is not None
        elif explicit and tracker.passive != wanted:
            raise InvalidOption(
                f"eject={eject!r}, max_eject={max_eject!r} set the ejections of the health an"
                " integration attaches, but this balancer has its own (bk.with_health): set"
                " base_ejection/max_ejection in its PassiveHealth and leave eject out"
                " (eject=None: connection failures only count as failed requests)"
            )
    return tracker
