"""One request's attempts, for every HTTP client integration: the decisions once, two drivers.

- :class:`Call`: the state of one request, driven through :meth:`balancekit.retry.Retry.flow`
  (select, avoid what was tried, release, spend the retry budget). It decides what a transport
  failure leads to (a retry at once, a retry after a backoff, or giving up) and what a response
  does: counted by ``ok_status``, retried when ``retry_result`` rejects it and the request may be
  sent again.
- :func:`send_with_retries` and :func:`send_with_retries_async`: the loops that do the I/O (send,
  wait the backoff, close a rejected response) and ask the call what next; they differ only in
  ``await``.
- :class:`BodyRelease`: the last release, when the response body is closed.

No HTTP library is imported here: each integration passes its send function, the exception type
of its transport failures, a function classifying them as :data:`CONNECT`, :data:`SENT` or
:data:`FINAL`, and how to close a response it will not return.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from .._core import Balancer
from .._errors import NoEndpointAvailable
from .._lease import Lease
from ..health.tracker import HealthTracker
from ..retry import Outcome, Retry, RetryFlow

__all__ = [
    "CONNECT",
    "FINAL",
    "SENT",
    "BodyRelease",
    "Call",
    "Exhausted",
    "send_with_retries",
    "send_with_retries_async",
]

#: Kinds of transport failure, as each integration classifies its library's exceptions.
CONNECT = "connect"  # no connection was made: nothing was sent, any method may be retried
SENT = "sent"  # the connection broke after the request may have been sent: idempotent only
FINAL = "final"  # not retried (a timeout waiting for the answer, a TLS or protocol error)


class Response(Protocol):
    """What the drivers read of a response (``httpx.Response``, ``requests.Response``), unless
    the call reads its status otherwise (``status=``: an ``aiohttp.ClientResponse``)."""

    @property
    def status_code(self) -> int: ...


R = TypeVar("R")  # a Response, or what the call's status= reads


class Call:
    """The attempts of one request: leases from a :meth:`Retry.flow`, outcomes sent back.

    The driver calls :meth:`start` for the first lease; :meth:`failed` after a transport error
    and :meth:`answered` with a response (each answers the next step: a delay to wait, a lease,
    or ``None``); :meth:`next` after waiting a delay; and :meth:`finish` when the response body
    is closed, :meth:`abandon` after any other error, or :meth:`cancel` if the caller gave up.
    Only the first of :meth:`finish`, :meth:`error` and :meth:`cancel` releases; later calls do
    nothing. Thread-safe.

    A failed *connection* (nothing was sent) is retried at once on an endpoint this call has not
    tried, without a backoff and without spending the retry budget, up to ``attempts - 1``
    times: gRPC's "transparent retry" (gRFC A6), since no server saw the request. It ends the
    current flow (releasing ``ok=False``) and starts a new one that avoids every endpoint tried,
    and it ejects the endpoint through the balancer's health tracker (``health``), if any.
    Failures after sending, and responses ``retry_result`` rejects, go through the flow
    (backoff, budget, attempts), and only when the request is ``replayable`` (an idempotent
    method with a body that can be sent again).
    """

    __slots__ = (
        "_at_lease",
        "_balancer",
        "_context",
        "_flow",
        "_health",
        "_lock",
        "_ok_status",
        "_open",
        "_refused",
        "_replayable",
        "_retry",
        "_status",
        "_transparent",
        "_tried",
        "deadline",
        "lease",
        "ok",
    )

    def __init__(
        self,
        balancer: Balancer,
        retry: Retry,
        context: Any,
        health: HealthTracker | None,
        ok_status: Callable[[int], bool],
        *,
        replayable: bool,
        status: Callable[[Any], int] | None = None,
    ) -> None:
        self._balancer = balancer
        self._status = status  # how to read a response's status (aiohttp: .status)
        self._retry = retry
        self._context = context
        self._flow: RetryFlow = retry.flow(balancer, context)
        self._health = health
        self._ok_status = ok_status
        self._replayable = replayable
        self._lock = threading.Lock()
        self._open = True
        self._at_lease = False  # the flow waits for the outcome of `lease` (not for a delay)
        self._transparent = retry.attempts - 1  # connection retries left
        self._tried: set[str] = set()
        self._refused = 0  # attempts that failed to connect
        self.lease: Lease | None = None
        self.ok = True  #: the verdict on the response :meth:`answered` kept
        #: The request's own deadline (``time.monotonic()``), or None: a retry whose backoff
        #: would end past it is not made (gRPC retries stop at the call's deadline, gRFC A6).
        self.deadline: float | None = None

    def _took(self, step: float | Lease) -> Lease:
        assert isinstance(step, Lease)
        self.lease = step
        self._at_lease = True
        self._tried.add(step.address)
        return step

    def _step(self, step: float | Lease | None) -> float | Lease | None:
        """Record where the flow now stands (a delay, a lease, or the end) and pass it on."""
        if step is None:
            self._open = self._at_lease = False
            return None
        if isinstance(step, float):
            self._at_lease = False
            if self.deadline is not None and time.monotonic() + step > self.deadline:
                self._flow.close()  # waiting for the delay: no lease is out
                self._open = False
                return None
            return step
        return self._took(step)

    @property
    def tried(self) -> int:
        """How many distinct endpoints this call has tried so far."""
        return len(self._tried)

    @property
    def all_refused(self) -> bool:
        """Whether every attempt so far failed to connect (the endpoints tried look down)."""
        return self._refused > 0 and self._refused == self.tried

    def start(self) -> Lease:
        """The first lease (raises NoEndpointAvailable if the pool has none)."""
        return self._took(next(self._flow))

    def failed(self, kind: str) -> float | Lease | None:
        """Report a transport error of ``kind`` on the current lease; the next step or None."""
        lease = self.lease
        assert lease is not None
        if kind == CONNECT:
            self._refused += 1
        retryable = kind == CONNECT or (kind == SENT and self._replayable)
        transparent = kind == CONNECT and self._transparent > 0
        outcome = Outcome.FAILED if retryable and not transparent else Outcome.FAILED_FINAL
        step: float | Lease | None
        try:
            step = self._flow.send(outcome)
        except StopIteration:
            step = None
        if kind == CONNECT and self._health is not None:
            self._health.connect_failed(lease.address)
        if transparent:
            self._transparent -= 1
            self._flow = self._retry._flow(
                self._balancer, self._context, self._tried, transparent=True
            )
            try:
                step = next(self._flow)
            except (StopIteration, NoEndpointAvailable):
                step = None
        return self._step(step)

    def answered(self, response: Response | Any) -> float | None:
        """A response came: judge it with ``ok_status`` and the policy's ``retry_result``.

        Returns None to keep it (its lease is released when its body closes, ``ok`` the
        verdict), or the delay before a retry: the response was rejected, the request may be
        sent again, and the flow (attempts, budget, endpoints not tried) allows it; the rejected
        attempt is released as a failure now. A rejected response that is not retried is kept
        and counts as a failure. If a hook raises, the lease is released as a failure (exactly
        once; uncounted for a cancellation) and the exception propagates.
        """
        retry_result = self._retry.retry_result
        try:
            code = response.status_code if self._status is None else self._status(response)
            ok = bool(self._ok_status(code))
            rejected = retry_result is not None and bool(retry_result(response))
        except BaseException as error:
            self.abandon(error)
            raise
        self.ok = ok and not rejected
        if not rejected or not self._replayable:
            return None
        try:
            step = self._flow.send(Outcome.FAILED)
        except StopIteration:
            step = None
        result = self._step(step)
        assert not isinstance(result, Lease)  # after a failure the flow waits first
        return result

    def next(self) -> Lease | None:
        """After waiting the delay :meth:`failed` or :meth:`answered` returned: the next lease,
        or None."""
        try:
            step = next(self._flow)
        except StopIteration:
            step = None
        result = self._step(step)
        assert not isinstance(result, float)
        return result

    def finish(self, ok: bool) -> None:
        """The response is over (its body closed): release with the outcome."""
        self._end(Outcome.SUCCEEDED if ok else Outcome.FAILED_FINAL)

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
        """The caller gave up (cancellation, an interrupt): give the lease back uncounted."""
        self._end(Outcome.CANCELLED)

    def _end(self, outcome: Outcome) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
            if self._at_lease:
                self._at_lease = False
                try:
                    self._flow.send(outcome)  # a final outcome: the flow releases and stops
                except StopIteration:
                    return
            self._flow.close()  # it was waiting to retry: no lease is out; just stop it


#: Builds the error raised when every endpoint a call tried failed to connect: from the last
#: transport error and the number of endpoints tried.
Exhausted = Callable[[Exception, int], Exception]


def send_with_retries(
    call: Call,
    send: Callable[[Lease], R],
    failure: type[Exception],
    classify: Callable[[Any], str],
    close: Callable[[R], object],
    exhausted: Exhausted | None = None,
) -> R:
    """``send(lease)`` on the call's started lease, then on the next after each ``failure`` or
    rejected response.

    Waits the backoff with :func:`time.sleep`. Re-raises the last failure when the call gives
    up (or ``exhausted(error, tried)`` from it, when every attempt failed to connect), releases
    the call on any other error (:meth:`Call.abandon`), and returns the last response when
    retries run out. A rejected response is closed (``close``) once the retry
    has its endpoint, before it is sent; until then it is the answer in hand.
    """
    lease = call.lease
    assert lease is not None, "start the call first"
    while True:
        try:
            response = send(lease)
        except failure as error:
            step = call.failed(classify(error))
            if isinstance(step, float):
                _wait(call, step, None, close)
                step = call.next()
            if step is None:
                if exhausted is not None and call.all_refused:
                    raise exhausted(error, call.tried) from error
                raise
            lease = step
            continue
        except BaseException as error:
            call.abandon(error)
            raise
        try:
            delay = call.answered(response)
        except BaseException:
            close(response)
            raise
        if delay is None:
            return response
        _wait(call, delay, response, close)
        following = call.next()
        if following is None:
            return response  # no retry after all: the rejected response is the answer
        try:
            close(response)
        except BaseException:
            call.cancel()  # the lease just taken was never used
            raise
        lease = following


def _wait(call: Call, delay: float, response: R | None, close: Callable[[R], object]) -> None:
    """Sleep the backoff; if interrupted, stop the call (no lease is out) and close ``response``."""
    if delay <= 0:
        return
    try:
        time.sleep(delay)
    except BaseException:
        call.cancel()
        if response is not None:
            close(response)
        raise


async def send_with_retries_async(
    call: Call,
    send: Callable[[Lease], Awaitable[R]],
    failure: type[Exception],
    classify: Callable[[Any], str],
    close: Callable[[R], Awaitable[object]],
    exhausted: Exhausted | None = None,
) -> R:
    """The asyncio twin of :func:`send_with_retries`: ``await send(lease)``, ``await close``.

    Waits the backoff with :func:`asyncio.sleep`; a request cancelled while it waits stops its
    call (no lease is out then) and closes the rejected response it held.
    """
    lease = call.lease
    assert lease is not None, "start the call first"
    while True:
        try:
            response = await send(lease)
        except failure as error:
            step = call.failed(classify(error))
            if isinstance(step, float):
                await _wait_async(call, step, None, close)
                step = call.next()
            if step is None:
                if exhausted is not None and call.all_refused:
                    raise exhausted(error, call.tried) from error
                raise
            lease = step
            continue
        except BaseException as error:
            call.abandon(error)
            raise
        try:
            delay = call.answered(response)
        except BaseException:
            await close(response)
            raise
        if delay is None:
            return response
        await _wait_async(call, delay, response, close)
        following = call.next()
        if following is None:
            return response
        try:
            await close(response)
        except BaseException:
            call.cancel()
            raise
        lease = following


async def _wait_async(
    call: Call, delay: float, response: R | None, close: Callable[[R], Awaitable[object]]
) -> None:
    if delay <= 0:
        return
    try:
        await asyncio.sleep(delay)
    except BaseException:
        call.cancel()
        if response is not None:
            await close(response)
        raise


class BodyRelease:
    """Releases a call once its response body is over, with the response's outcome.

    ``ok`` starts as the call's verdict on the response (``ok_status``, ``retry_result``); the
    body wrapper sets it to False when reading the body fails, sets ``reading`` while its
    iterator is part-way through the body, calls :meth:`closed` when the body ends or is
    closed, and :meth:`interrupted` when the reading was cancelled or abandoned. A close while
    ``reading`` is an abandoned read too (an async iterator is finalised after the close). If
    the wrapper ``body`` is garbage-collected before any of these, the call is released
    uncounted (:meth:`Call.cancel`).
    """

    __slots__ = ("_call", "_finalizer", "ok", "reading")

    def __init__(self, body: object, call: Call) -> None:
        self._call = call
        self.ok = call.ok
        self.reading = False
        self._finalizer = weakref.finalize(body, call.cancel)

    def closed(self) -> None:
        """The body is over, or closed: release with ``ok`` (only the first call releases),
        or as :meth:`interrupted` if an iterator was still part-way through it."""
        if self.reading:
            self.interrupted()
            return
        self._finalizer.detach()
        self._call.finish(self.ok)

    def interrupted(self) -> None:
        """The caller stopped reading (cancellation, an interrupt, an iteration abandoned): a
        failure already known (the status, a broken body) is counted; otherwise the outcome is
        unknown and the lease goes back uncounted."""
        self._finalizer.detach()
        if self.ok:
            self._call.cancel()
        else:
            self._call.finish(False)
