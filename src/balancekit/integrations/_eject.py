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

import threading

from .._core import Balancer, BalancerBase
from .._errors import InvalidOption
from .._options import describe, number
from ..health.passive import PassiveHealth
from ..health.tracker import HealthTracker, health_of, with_health

__all__ = [
    "DEFAULT_EJECT",
    "DEFAULT_MAX_EJECT",
    "ONLY_WHEN_NONE_LEFT",
    "check_eject",
    "connect_health",
    "connect_only",
]

#: Seconds the first ejection of an endpoint refusing connections lasts, and the most any does.
DEFAULT_EJECT = 1.0
DEFAULT_MAX_EJECT = 30.0
#: The attached tracker's panic threshold: ``healthy / total < 1e-9`` only when none is healthy,
#: so it fails open only once every endpoint refuses connections (dead servers get no traffic
#: while one answers; a connect timeout to a black-holed host is never paid for nothing).
ONLY_WHEN_NONE_LEFT = 1e-9

_attaching = threading.Lock()  # two transports built at once on one balancer attach one tracker


def check_eject(eject: object, max_eject: object) -> tuple[float | None, float]:
    """Validate the ejection times ``eject`` (None: no ejection) and ``max_eject``; as floats.

    Each is a positive number of seconds up to 1e9 (PassiveHealth's bound), ``max_eject`` at
    least ``eject``.
    """
    what = "a positive number of seconds up to 1e9"
    first = None if eject is None else number("eject", eject, high=1e9, high_open=False, what=what)
    most = number("max_eject", max_eject, high=1e9, high_open=False, what=what)
    if first is not None and most < first:
        raise InvalidOption(f"max_eject ({most}) must be at least eject ({first})")
    return first, most


def connect_only(eject: float, max_eject: float) -> PassiveHealth:
    """The passive health an integration attaches: no failure streaks or rates, only refused
    connections eject (for ``eject`` seconds growing by ``eject`` per repeat up to
    ``max_eject``), any number of endpoints at once, failing open (panic) only when every one
    is ejected."""
    return PassiveHealth(
        consecutive_failures=None,
        failure_rate=None,
        base_ejection=eject,
        max_ejection=max_eject,
        max_ejection_share=1.0,
        panic_threshold=ONLY_WHEN_NONE_LEFT,
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
                f"eject={describe(eject)}, max_eject={describe(max_eject)} set the ejections of the"
                f" health an"
                " integration attaches, but this balancer has its own (bk.with_health): set"
                " base_ejection/max_ejection in its PassiveHealth and leave eject out"
                " (eject=None: connection failures only count as failed requests)"
            )
    return tracker
