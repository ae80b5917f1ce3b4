"""What the HTTP client integrations share, free of any HTTP library: policy and bookkeeping.

- :data:`IDEMPOTENT_METHODS` and :func:`default_ok_status`: what is retried and what counts as
  a success.
- :class:`Ejector`: takes an endpoint that refused a connection out of rotation for a while,
  then lets one request try it again (passive health for the clients, until the balancer has its
  own).
- :class:`Call`: one request's attempts, driven through :meth:`balancekit.retry.Retry.flow`
  (select, avoid what was tried, release, spend the retry budget). Sync and async transports
  drive the same object; the last release happens when the response body is closed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from .._core import Balancer, Clock, check_clock
from .._errors import InvalidOption, NoEndpointAvailable, UnknownEndpoint
from .._lease import Lease
from ..retry import Outcome, Retry, RetryFlow

__all__ = [
    "IDEMPOTENT_METHODS",
    "Call",
    "Ejector",
    "HostHeader",
    "OkStatus",
    "check_options",
    "default_ok_status",
]

#: Methods RFC 9110 §9.2.2 defines as idempotent: repeating them has the effect of sending once,
#: so a request that may have reached a server can be sent again to another one.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

#: Decides from a status code whether the request counts as a success for the balancer.
OkStatus = Callable[[int], bool]

#: ``"logical"`` keeps the Host header of the logical URL; ``"endpoint"`` sends ``host:port``.
HostHeader = Literal["logical", "endpoint"]

#: Kinds of transport failure, as each integration classifies its library's exceptions.
CONNECT = "connect"  # no connection was made: nothing was sent, any method may be retried
SENT = "sent"  # the connection broke after the request may have been sent: idempotent only
FINAL = "final"  # not retried (a timeout waiting for the answer, a TLS or protocol error)


def default_ok_status(status: int) -> bool:
    """A response is a success unless it is a server error (status 500 or above)."""
    return status < 500


def check_options(
    *,
    retry: Retry | None,
    ok_status: object,
    host_header: object,
    context: object,
    eject: object,
    max_eject: object,
) -> None:
    """Validate the options the transports and the adapter share (raises InvalidOption)."""
    if retry is not None and not isinstance(retry, Retry):
        raise InvalidOption(f"retry must be a balancekit Retry or None, not {retry!r}")
    if not callable(ok_status):
        raise InvalidOption(f"ok_status must be a function of the status code, not {ok_status!r}")
    if host_header not in ("logical", "endpoint"):
        raise InvalidOption(f"host_header must be 'logical' or 'endpoint', not {host_header!r}")
    if context is not None and not callable(context):
        raise InvalidOption(f"context must be a function of the request or None, not {context!r}")
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
        check_options(
            retry=None,
            ok_status=default_ok_status,
            host_header="logical",
            context=None,
            eject=eject,
            max_eject=max_eject,
        )
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


class Call:
    """The attempts of one request: leases from a :meth:`Retry.flow`, outcomes sent back.

    The driver (a transport) calls :meth:`start` for the first lease, :meth:`failed` after a
    transport error (which answers the next step: a delay, a lease, or ``None`` to give up) and
    :meth:`finish` when the response body is closed, :meth:`error` after an unexpected error, or
    :meth:`cancel` if the caller gave up. Only the first of :meth:`finish`, :meth:`error` and
    :meth:`cancel` releases; later calls do nothing. Thread-safe.

    A failed *connection* (nothing was sent) is retried at once on an endpoint this call has not
    tried, without a backoff and without spending the retry budget, up to ``attempts - 1``
    times: gRPC's "transparent retry" (gRFC A6), since no server saw the request. It ends the
    current flow (releasing ``ok=False``) and starts a new one that avoids every endpoint tried.
    Failures after sending go through the flow: backoff, budget, attempts.
    """

    __slots__ = (
        "_balancer",
        "_context",
        "_ejector",
        "_flow",
        "_lock",
        "_open",
        "_retry",
        "_transparent",
        "_tried",
        "lease",
    )

    def __init__(
        self, balancer: Balancer, retry: Retry, context: Any, ejector: Ejector | None
    ) -> None:
        self._balancer = balancer
        self._retry = retry
        self._context = context
        self._flow: RetryFlow = retry.flow(balancer, context)
        self._ejector = ejector
        self._lock = threading.Lock()
        self._open = True
        self._transparent = retry.attempts - 1  # connection retries left
        self._tried: set[str] = set()
        self.lease: Lease | None = None

    def _took(self, step: float | Lease) -> Lease:
        assert isinstance(step, tuple)
        self.lease = step
        self._tried.add(step[0].address)
        return step

    def start(self) -> Lease:
        """The first lease (raises NoEndpointAvailable if the pool has none)."""
        if self._ejector is not None:
            self._ejector.check()
        return self._took(next(self._flow))

    def failed(self, kind: str, retryable: bool) -> float | Lease | None:
        """Report a transport error of ``kind`` on the current lease; the next step or None."""
        lease = self.lease
        assert lease is not None
        transparent = kind == CONNECT and retryable and self._transparent > 0
        outcome = Outcome.FAILED if retryable and not transparent else Outcome.FAILED_FINAL
        step: float | Lease | None
        try:
            step = self._flow.send(outcome)
        except StopIteration:
            step = None
        if kind == CONNECT and self._ejector is not None:
            self._ejector.connect_failed(lease[0].address)
        if transparent:
            self._transparent -= 1
            self._flow = self._retry.flow(self._balancer, self._context, avoid=self._tried)
            try:
                step = next(self._flow)
            except (StopIteration, NoEndpointAvailable):
                step = None
        if step is None:
            self._open = False
            return None
        return step if isinstance(step, float) else self._took(step)

    def next(self) -> Lease | None:
        """After waiting the delay :meth:`failed` returned: the next lease, or None."""
        try:
            step = next(self._flow)
        except StopIteration:
            self._open = False
            return None
        return self._took(step)

    def finish(self, ok: bool) -> None:
        """The response is over (its body closed): release with the outcome."""
        self._end(Outcome.SUCCEEDED if ok else Outcome.FAILED_FINAL)
        lease = self.lease
        if self._ejector is not None and lease is not None:  # it answered: reachable
            self._ejector.succeeded(lease[0].address)

    def error(self) -> None:
        """An unexpected error (not a transport failure) ended the request: release ok=False."""
        self._end(Outcome.FAILED_FINAL)

    def cancel(self) -> None:
        """The caller gave up (cancellation, an unexpected error): release uncounted."""
        self._end(Outcome.CANCELLED)

    def _end(self, outcome: Outcome) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
            try:
                self._flow.send(outcome)
            except StopIteration:
                pass
            else:  # it was waiting to retry: stop it (the lease it just took is released)
                self._flow.close()
