"""One call's attempts as :meth:`Retry.call` and :meth:`Retry.acall` drive them.

:class:`Outcome` is what a driver tells the retry flow about each lease; :class:`Attempts` is
what the two drivers share: it judges each attempt (an exception, ``retry_result`` on a value),
tells the flow, hands replaced results to ``discard``, and makes sure that whatever happens
(a hook that raises, a cancelled wait) every lease is released exactly once. See
:mod:`balancekit.retry` for the policy and the table of what each attempt is released as.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar, cast

from ._lease import Lease

__all__ = ["Attempts", "Outcome", "RetryFlow"]

T = TypeVar("T")

_log = logging.getLogger("balancekit.retry")


class Outcome(enum.Enum):
    """What the driver tells :meth:`Retry.flow` about the lease it was given."""

    #: It worked: release ``ok=True``, deposit into the budget, stop.
    SUCCEEDED = "succeeded"
    #: It failed in a way worth retrying elsewhere: release ``ok=False``, maybe retry.
    FAILED = "failed"
    #: It failed and must not be retried (not idempotent, a client error): release ``ok=False``.
    FAILED_FINAL = "failed_final"
    #: The caller gave up (cancellation): give the lease back uncounted (``cancel``), stop.
    CANCELLED = "cancelled"


#: The retry generator: yields a delay in seconds or a lease to try, receives an Outcome per lease.
RetryFlow = Generator["float | Lease", "Outcome | None", None]


class Attempts(Generic[T]):
    """What :meth:`Retry.call` and :meth:`Retry.acall` share: the flow, judging, the last try.

    ``step`` is what the driver does next: wait a delay (``float``), call ``fn`` on a lease, or,
    once it is None, return :meth:`answer`. The driver only waits and calls; it reports back
    with :meth:`waited`, :meth:`returned` or :meth:`raised`, which judge the attempt, tell the
    flow and advance ``step``.
    """

    __slots__ = (
        "_discard",
        "_flow",
        "_retry_on",
        "_retry_result",
        "error",
        "has_result",
        "result",
        "step",
    )

    def __init__(
        self,
        flow: RetryFlow,
        retry_on: tuple[type[BaseException], ...],
        retry_result: Callable[[Any], bool] | None,
        discard: Callable[[T], object] | None,
    ) -> None:
        self._flow = flow
        self._retry_on = retry_on
        self._retry_result = retry_result
        self._discard = discard
        self.has_result = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.step: float | Lease | None = next(flow)  # the first lease (or NoEndpointAvailable)

    def waited(self) -> None:
        """The delay is over: take the next lease, or end the call.

        A retry replaces the last result: it is handed to ``discard`` (to close a response). If
        ``discard`` raises, the lease just taken goes back uncounted (nothing was sent on it),
        the call ends and the exception propagates.
        """
        try:
            self.step = next(self._flow)
        except StopIteration:
            self.step = None
            return
        result, had_result = self.result, self.has_result
        self.has_result, self.result = False, None
        if had_result and self._discard is not None:
            try:
                self._discard(cast(T, result))
            except BaseException:
                self.abort()
                raise

    def returned(self, result: T) -> None:
        """``fn`` returned ``result``: a success, or a failure if ``retry_result`` says so.

        If ``retry_result`` raises, the attempt is over with that exception: its lease is
        released as a failure (uncounted for a cancellation), ``result`` goes to ``discard``
        (nobody else will get it), and the exception propagates.
        """
        self.has_result, self.result, self.error = True, result, None
        try:
            rejected = self._retry_result is not None and bool(self._retry_result(result))
        except BaseException as error:
            self._end(Outcome.FAILED_FINAL if isinstance(error, Exception) else Outcome.CANCELLED)
            self._drop()
            raise
        self._send(Outcome.FAILED if rejected else Outcome.SUCCEEDED)

    def raised(self, error: BaseException) -> None:
        """Remember ``error``; one not in ``retry_on`` releases the lease and propagates at once.

        A :class:`BaseException` that is no :class:`Exception` (cancellation) is given back
        uncounted (``cancel``) and propagates.
        """
        self.has_result, self.result, self.error = False, None, error
        if not isinstance(error, Exception):
            outcome = Outcome.CANCELLED
        else:
            outcome = Outcome.FAILED if isinstance(error, self._retry_on) else Outcome.FAILED_FINAL
        if outcome is not Outcome.FAILED:
            self._end(outcome)  # which releases the lease
            raise error
        self._send(outcome)

    def abort(self) -> None:
        """The driver is interrupted (its wait cancelled, a hook raised): end the flow, giving
        any lease it holds back uncounted, and hand a result held for the answer to
        ``discard``."""
        self.step = None
        self._flow.close()
        self._drop()

    def _drop(self) -> None:
        """Hand the held result to ``discard``: on the way out with an exception, so a
        ``discard`` that raises too is logged rather than allowed to replace it."""
        result, had_result = self.result, self.has_result
        self.has_result, self.result = False, None
        if had_result and self._discard is not None:
            try:
                self._discard(cast(T, result))
            except Exception:
                _log.exception("balancekit Retry discard failed on %r", result)

    def _end(self, outcome: Outcome) -> None:
        """Send a final outcome (the flow releases the lease and always stops)."""
        self.step = None
        with contextlib.suppress(StopIteration):
            self._flow.send(outcome)

    def _send(self, outcome: Outcome) -> None:
        try:
            self.step = self._flow.send(outcome)
        except StopIteration:
            self.step = None

    def answer(self) -> T:
        """What the call gives back once the flow stopped: the last result, or raise its error."""
        if self.has_result:
            return cast(T, self.result)
        assert self.error is not None
        raise self.error
