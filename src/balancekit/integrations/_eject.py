"""Passive health for the HTTP client integrations: endpoints that refuse connections sit out.

:class:`Ejector` takes an endpoint that refused a connection out of rotation for a while, then
lets one request try it again (until the balancer has its own health, ``bk.with_health``).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from .._core import Balancer, Clock, check_clock
from .._errors import InvalidOption, UnknownEndpoint

__all__ = ["Ejector", "check_eject"]


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


class Ejector:
    """Takes endpoints that refuse connections out of rotation, and tries them again later.

    After a failed connection to an endpoint it calls ``balancer.mark_down(address)`` for
    ``eject`` seconds; the first request after that time calls ``mark_up`` and so lets traffic
    try the endpoint again. If a connection fails again before any request to it succeeded, the
    next ejection lasts twice as long (up to ``max_eject``); a success resets it. It never ejects
    the last endpoint that is up (as Envoy's ``max_ejection_percent`` keeps a pool from emptying).
    Only endpoints it marked down itself are ever marked up again.

    Thread-safe. ``check()`` is O(1) while nothing is ejected (a dict test), O(ejected)
    otherwise; an ejection costs one ``stats()`` (O(n)), and happens once per failing endpoint
    per ejection period. Source: Envoy outlier detection (``consecutive_gateway_failure``,
    ``base_ejection_time`` growing with the number of ejections).
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        eject: float = 1.0,
        max_eject: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        check_eject(eject, max_eject)
        self._balancer = balancer
        self._eject = float(eject)
        self._max_eject = float(max_eject)
        self._clock = check_clock(clock)
        self._lock = threading.Lock()
        # address -> [until, ejections in a row, on trial (marked up again)]
        self._ejected: dict[str, list[Any]] = {}

    @property
    def ejected(self) -> dict[str, float]:
        """Addresses currently kept out of rotation, with the clock time they return."""
        with self._lock:
            return {a: e[0] for a, e in self._ejected.items() if not e[2]}

    def check(self) -> None:
        """Mark up the endpoints whose ejection is over (call before each selection)."""
        if not self._ejected:
            return
        now = self._clock()
        with self._lock:
            for address, entry in list(self._ejected.items()):
                if not entry[2] and entry[0] <= now:
                    entry[2] = True
                    try:
                        self._balancer.mark_up(address)
                    except UnknownEndpoint:  # removed by discovery meanwhile
                        del self._ejected[address]

    def connect_failed(self, address: str) -> None:
        """Eject ``address`` after a failed connection (no-op if it is already ejected)."""
        now = self._clock()
        with self._lock:
            entry = self._ejected.get(address)
            if entry is not None and not entry[2]:
                return
            stats = self._balancer.stats()
            if address not in stats or sum(1 for s in stats.values() if s.up) <= 1:
                return
            count = 1 if entry is None else entry[1] + 1
            duration = min(self._eject * 2.0 ** min(count - 1, 60), self._max_eject)
            self._balancer.mark_down(address)
            self._ejected[address] = [now + duration, count, False]

    def succeeded(self, address: str) -> None:
        """A request to ``address`` got an answer: forget its ejection history."""
        if address in self._ejected:
            with self._lock:
                entry = self._ejected.get(address)
                if entry is not None and entry[2]:
                    del self._ejected[address]
