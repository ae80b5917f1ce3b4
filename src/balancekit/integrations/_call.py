"""One request's attempts, for every HTTP client integration: the decisions once, two drivers.

- :class:`Call`: the state of one request, driven through :meth:`balancekit.retry.Retry.flow`
  (select, avoid what was tried, release, spend the retry budget). It decides what a transport
  failure leads to: a retry at once, a retry after a backoff, or giving up.
- :func:`send_with_retries` and :func:`send_with_retries_async`: the loops that do the I/O (send,
  wait the backoff) and ask the call what next; they differ only in ``await`` (and the async one
  releases a request cancelled during its backoff).
- :class:`BodyRelease`: the last release, when the response body is closed.

No HTTP library is imported here: each integration passes its send function, the exception type
of its transport failures and a function classifying them as :data:`CONNECT`, :data:`SENT` or
:data:`FINAL`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._core import Balancer
from .._errors import NoEndpointAvailable
from .._lease import Lease
from ..retry import Outcome, Retry, RetryFlow
from ._eject import Ejector

__all__ = [
    "CONNECT",
    "FINAL",
    "SENT",
    "BodyRelease",
    "Call",
    "send_with_retries",
    "send_with_retries_async",
]

#: Kinds of transport failure, as each integration classifies its library's exceptions.
CONNECT = "connect"  # no connection was made: nothing was sent, any method may be retried
SENT = "sent"  # the connection broke after the request may have been sent: idempotent only
FINAL = "final"  # not retried (a timeout waiting for the answer, a TLS or protocol error)

R = TypeVar("R")


class Call:
    """The attempts of one request: leases from a :meth:`Retry.flow`, outcomes sent back.

    The driver calls :meth:`start` for the first lease, :meth:`failed` after a transport error
    (which answers the next step: a delay, a lease, or ``None`` to give up), :meth:`next` after
    waiting a delay, and :meth:`finish` when the response body is closed, :meth:`abandon` after
    any other error, or :meth:`cancel` if the caller gave up. Only the first of :meth:`finish`,
    :meth:`error` and :meth:`cancel` releases; later calls do nothing. Thread-safe.

    A failed *connection* (nothing was sent) is retried at once on an endpoint this call has not
    tried, without a backoff and without spending the retry budget, up to ``attempts - 1``
    times: gRPC's "transparent retry" (gRFC A6), since no server saw the request. It ends the
    current flow (releasing ``ok=False``) and starts a new one that avoids every endpoint tried.
    Failures after sending go through the flow (backoff, budget, attempts), and only when the
    request is ``replayable`` (an idempotent method with a body that can be sent again).
    """

    __slots__ = (
        "_balancer",
        "_context",
        "_ejector",
        "_flow",
        "_lock",
        "_open",
        "_replayable",
        "_retry",
        "_transparent",
        "_tried",
        "lease",
    )

    def __init__(
        self,
        balancer: Balancer,
        retry: Retry,
        context: Any,
        ejector: Ejector | None,
        *,
        replayable: bool,
    ) -> None:
        self._balancer = balancer
        self._retry = retry
        self._context = context
        self._flow: RetryFlow = retry.flow(balancer, context)
        self._ejector = ejector
        self._replayable = replayable
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

    def failed(self, kind: str) -> float | Lease | None:
        """Report a transport error of ``kind`` on the current lease; the next step or None."""
        lease = self.lease
        assert lease is not None
        retryable = kind == CONNECT or (kind == SENT and self._replayable)
        transparent = kind == CONNECT and self._transparent > 0
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

    def abandon(self, error: BaseException) -> None:
        """An error that is no transport failure ended the request: :meth:`error` or :meth:`cancel`.

        An :class:`Exception` counts as a failure; anything else (cancellation, an interrupt)
        means the caller gave up.
        """
        if isinstance(error, Exception):
            self.error()
        else:
            self.cancel()

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


def send_with_retries(
    call: Call,
    send: Callable[[Lease], R],
    failure: type[Exception],
    classify: Callable[[Any], str],
) -> R:
    """``send(lease)`` on the call's started lease, then on the next after each ``failure``.

    Waits the backoff with :func:`time.sleep`. Re-raises the last failure when the call gives
    up, and releases the call on any other error (:meth:`Call.abandon`).
    """
    lease = call.lease
    assert lease is not None, "start the call first"
    while True:
        try:
            return send(lease)
        except failure as error:
            step = call.failed(classify(error))
            if isinstance(step, float):
                if step > 0:
                    time.sleep(step)
                step = call.next()
            if step is None:
                raise
            lease = step
        except BaseException as error:
            call.abandon(error)
            raise


async def send_with_retries_async(
    call: Call,
    send: Callable[[Lease], Awaitable[R]],
    failure: type[Exception],
    classify: Callable[[Any], str],
) -> R:
    """The asyncio twin of :func:`send_with_retries`: ``await send(lease)``.

    Waits the backoff with :func:`asyncio.sleep`; a request cancelled while it waits releases
    its lease uncounted.
    """
    lease = call.lease
    assert lease is not None, "start the call first"
    while True:
        try:
            return await send(lease)
        except failure as error:
            step = call.failed(classify(error))
            if isinstance(step, float):
                try:
                    await asyncio.sleep(step)
                except BaseException:
                    call.cancel()
                    raise
                step = call.next()
            if step is None:
                raise
            lease = step
        except BaseException as error:
            call.abandon(error)
            raise


class BodyRelease:
    """Releases a call once its response body is over, with the response's outcome.

    ``ok`` starts as the status verdict (``ok_status``); the body wrapper sets it to False when
    reading the body fails, and calls :meth:`closed` when the body ends. If the wrapper
    ``body`` is garbage-collected before that, the call is released uncounted
    (:meth:`Call.cancel`).
    """

    __slots__ = ("_call", "_finalizer", "ok")

    def __init__(self, body: object, call: Call, ok: bool) -> None:
        self._call = call
        self.ok = ok
        self._finalizer = weakref.finalize(body, call.cancel)

    def closed(self) -> None:
        """The body is over: release with ``ok`` (only the first call releases)."""
        self._finalizer.detach()
        self._call.finish(self.ok)
