"""Retries without storms: a different endpoint each attempt, bounded by attempts and a budget.

Use it for idempotent calls: a failed attempt is retried on an endpoint not yet tried in this
call (``select(avoid=...)``), after an exponential backoff with full jitter, while attempts
remain and the shared :class:`RetryBudget` has a token. Under an outage the budget stops the
retries, so they never multiply the load on a struggling service.

>>> import balancekit as bk
>>> lb = bk.RoundRobin(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])
>>> retry = bk.Retry(attempts=3, sleep=lambda seconds: None)
>>> def send(endpoint):
...     if endpoint.address == "10.0.0.1:80":
...         raise ConnectionError("refused")
...     return f"200 from {endpoint.address}"
>>> retry.call(lb, send)
'200 from 10.0.0.2:80'
>>> lb.stats()["10.0.0.1:80"].failed
1

Async callers use the same policy: ``await retry.acall(lb, async_send, context)``. A result that
should count as a failed attempt (an HTTP 503) is named by ``retry_result=``; when attempts run
out the last such result is returned, and results thrown away are handed to ``discard=`` (to
close an HTTP response). The HTTP client integrations honour ``retry_result`` too, for
idempotent requests (see docs/integrations.md).

What each attempt's lease is released with: a success ``ok=True``; an exception, or a result
``retry_result`` rejects, ``ok=False``; a cancellation or interrupt (``asyncio.CancelledError``,
``KeyboardInterrupt``: a :class:`BaseException` that is no :class:`Exception`) is given back with
``cancel``, uncounted: no success, no failure, no latency sample. A user hook that raises
(``retry_result``, ``discard``) ends the call with its exception, the lease released exactly once:
as a failure when ``retry_result`` raised on the attempt's result (as any exception from the
attempt counts), uncounted when ``discard`` raised (the lease then held was never used).

One generator, many drivers (the pattern of httpx's auth flow): :meth:`Retry.flow` yields a
delay (``float`` seconds to wait) or a :class:`~balancekit.Lease` to try, and receives an
:class:`Outcome` for each lease; it selects, avoids, releases and spends the budget, while the
driver does the I/O and the sleeping. :meth:`Retry.call` and :meth:`Retry.acall` are two such
drivers; an integration can write its own::

    flow = retry.flow(lb, context)
    step = next(flow)                      # the first lease (NoEndpointAvailable if none)
    while True:
        if isinstance(step, float):
            time.sleep(step)
            step = next(flow)
            continue
        outcome = ...                      # use step.endpoint, then send the Outcome
        step = flow.send(outcome)          # StopIteration: the call is over

Sources: gRPC retry design (gRFC A6: ``maxAttempts``, backoff with ``initialBackoff``,
``maxBackoff``, ``backoffMultiplier`` and full jitter, retry throttling by a token bucket);
Finagle ``RetryBudget`` (retries as a share of requests: Finagle deposits on every request,
here on every success, as gRPC's retry throttling credits ``token_ratio``);
"Exponential Backoff And Jitter" (M. Brooker, AWS Architecture Blog, 2015).
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from ._attempts import Attempts, Outcome, RetryFlow
from ._clock import check_clock
from ._core import Balancer, check_avoid
from ._endpoint import Endpoint
from ._errors import InvalidOption, NoEndpointAvailable
from ._lease import Lease
from ._options import describe, integer, number, seconds
from ._retry_stats import RetryCounts, RetryStats

__all__ = ["Outcome", "Retry", "RetryBudget", "RetryCounts", "RetryFlow", "RetryStats"]

T = TypeVar("T")


class _Default(enum.Enum):
    BUDGET = "a new RetryBudget() for this policy"


class RetryBudget:
    """A token bucket that caps retries at a share of successful requests (thread-safe).

    Starts full with ``burst`` tokens; each successful request deposits ``ratio`` tokens (never
    beyond ``burst``); each retry withdraws one, and a retry with less than one token left is
    refused. So over any period, ``retries <= burst + ratio * successes``: under a total outage
    (no successes) retries stop after ``burst`` of them, and in a partial one they add at most
    ``ratio`` extra load. Share one budget between all calls to a service (a client's
    :class:`Retry` does). O(1) per call.

    Sources: Finagle ``RetryBudget`` (``percentCanRetry``; deposits per request, here per
    success, as gRPC's retry throttling credits ``token_ratio`` per success); gRFC A6.
    """

    __slots__ = ("_burst", "_lock", "_ratio", "_tokens", "denied", "retries", "successes")

    def __init__(self, *, ratio: float = 0.1, burst: float = 10.0) -> None:
        self._ratio = number("ratio", ratio, high=1000, low_open=False, high_open=False)
        self._burst = number("burst", burst, low=1, low_open=False, what="a number of retries >= 1")
        self._tokens = self._burst
        self._lock = threading.Lock()
        self.retries = 0  #: retries allowed so far
        self.denied = 0  #: retries refused for want of a token
        self.successes = 0  #: successful requests deposited

    @property
    def ratio(self) -> float:
        """Tokens deposited per successful request: the retry share the budget allows."""
        return self._ratio

    @property
    def burst(self) -> float:
        """The bucket's capacity, and its content at the start."""
        return self._burst

    @property
    def tokens(self) -> float:
        """Tokens in the bucket now."""
        return self._tokens

    def deposit(self) -> None:
        """Record a successful request: add ``ratio`` tokens, up to ``burst``."""
        with self._lock:
            self.successes += 1
            self._tokens = min(self._burst, self._tokens + self._ratio)

    def try_withdraw(self) -> bool:
        """Take a token for one retry; False (and nothing taken) if less than one is left."""
        with self._lock:
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self.retries += 1
                return True
            self.denied += 1
            return False

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self._ratio}, burst={self._burst}, tokens={self._tokens:.2f})"


def _check_functions(fn: object, discard: object) -> None:
    """Refuse a ``fn`` or ``discard`` that is not callable before any select: calling it in
    the attempt raised TypeError, which counted as the endpoint's failure and was retried."""
    if not callable(fn):
        raise InvalidOption(f"fn must be a function of the endpoint, not {describe(fn)}")
    if discard is not None and not callable(discard):
        raise InvalidOption(
            f"discard must be a function of a result, or None, not {describe(discard)}"
        )


def _can_select(balancer: Balancer, avoid: Collection[str]) -> bool:
    """Whether ``balancer.select(avoid=avoid)`` would find an endpoint: a balancekit balancer
    knows (``can_select``, panic included); for another, an ``available`` endpoint not tried."""
    can_select = getattr(balancer, "can_select", None)
    if can_select is not None:
        return bool(can_select(avoid))
    return any(stats.available and a not in avoid for a, stats in balancer.stats().items())


class Retry:
    """A retry policy: up to ``attempts`` tries on distinct endpoints, within a shared budget.

    Options (keyword-only, validated at once):

    - ``attempts``: tries per call including the first (gRPC ``maxAttempts``), 1-100; default 3.
    - ``budget``: the :class:`RetryBudget` shared by every call made with this policy
      (default ``RetryBudget()``: 10 % of successes plus a burst of 10); ``None`` for no budget.
    - ``backoff``, ``max_backoff``, ``multiplier``: the wait before retry *n* is drawn uniformly
      from ``[0, min(max_backoff, backoff * multiplier ** (n - 1))]`` (full jitter); defaults
      25 ms, 1 s, 2 (close to gRPC's examples; Brooker 2015 for full jitter).
    - ``retry_on``: exception types that count as a retryable failure (default ``(Exception,)``);
      other exceptions release ``ok=False`` and propagate at once.
    - ``retry_result``: a predicate on a returned value that makes it a retryable failure
      (e.g. ``lambda r: r.status_code in (502, 503, 504)``).
    - ``timeout``: seconds from the first attempt after which no retry starts: a retry whose
      backoff would end past it is not made (gRPC stops retrying at the call's deadline);
      default ``None`` (no limit). The attempt in progress is never cut short: that is the
      transport's timeout.
    - ``rng``: a :class:`random.Random` for the jitter (seed it for reproducible delays).
    - ``sleep`` / ``async_sleep``: how :meth:`call` / :meth:`acall` wait (inject for tests);
      ``clock``: the seconds ``timeout`` is measured in (default ``time.monotonic``).

    Complexity: each attempt costs one ``select(avoid=...)`` and one ``release``; ``avoid`` holds
    at most ``attempts`` addresses. A policy object is thread-safe and may be shared.
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        budget: RetryBudget | _Default | None = _Default.BUDGET,
        backoff: float = 0.025,
        max_backoff: float = 1.0,
        multiplier: float = 2.0,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        retry_result: Callable[[Any], bool] | None = None,
        timeout: float | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        attempts = integer("attempts", attempts, 1, 100)
        if budget is _Default.BUDGET:
            budget = RetryBudget()
        elif budget is not None and not isinstance(budget, RetryBudget):
            raise InvalidOption(f"budget must be a RetryBudget or None, not {describe(budget)}")
        self._backoff = seconds("backoff", backoff, zero=True)
        self._max_backoff = seconds("max_backoff", max_backoff, zero=True)
        multiplier = number("multiplier", multiplier, low=1, low_open=False, what="a number >= 1")
        if not isinstance(retry_on, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on
        ):
            raise InvalidOption(
                f"retry_on must be a tuple of exception types, not {describe(retry_on)}"
            )
        self._timeout = None if timeout is None else seconds("timeout", timeout)
        for name, function in (
            ("retry_result", retry_result),
            ("sleep", sleep),
            ("async_sleep", async_sleep),
            ("clock", clock),
        ):
            if not callable(function) and not (name == "retry_result" and function is None):
                raise InvalidOption(f"{name} must be a function, not {describe(function)}")
        if rng is not None and not isinstance(rng, random.Random):
            raise InvalidOption(f"rng must be a random.Random, not {describe(rng)}")
        self.attempts = attempts
        self.budget = budget
        self._multiplier = float(multiplier)
        self._retry_on = retry_on
        self._retry_result = retry_result
        self._rng = random.Random() if rng is None else rng
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._clock = check_clock(clock)  # readings checked: balancekit._clock
        #: Attempts by type, budget denials, backoff time: read by ``balancekit.metrics``.
        self.stats = RetryStats()

    @property
    def retry_result(self) -> Callable[[Any], bool] | None:
        """The predicate that makes a returned value a retryable failure, or None."""
        return self._retry_result

    def delay(self, retry: int) -> float:
        """The jittered wait before retry number ``retry`` (1 for the first retry)."""
        if self._backoff == 0:
            return 0.0
        try:
            growth = self._multiplier ** (retry - 1)
        except OverflowError:  # a float power past the largest float raises, unlike a product
            growth = math.inf
        cap = min(self._max_backoff, self._backoff * growth)
        return self._rng.uniform(0.0, cap) if cap > 0 else 0.0

    # -- the one generator ----------------------------------------------------------------------

    def flow(
        self, balancer: Balancer, context: Any = None, *, avoid: Collection[str] = ()
    ) -> RetryFlow:
        """The retry loop as a generator: yields delays (float) and leases, receives Outcomes.

        The first step is always a lease (``select`` may raise :class:`NoEndpointAvailable`).
        After :attr:`Outcome.FAILED` it yields the backoff delay, then a lease on an endpoint not
        tried yet, as long as attempts, the budget and untried endpoints remain; otherwise it
        stops (``StopIteration``), and the driver reports the last failure. Every lease is
        released by the generator exactly once: ``ok=True`` for :attr:`Outcome.SUCCEEDED`,
        ``ok=False`` for the failures, and with ``cancel`` (uncounted) for
        :attr:`Outcome.CANCELLED`, for no outcome (``next()`` instead of ``send``), and when the
        driver closes the generator or throws into it. Anything else sent is refused with
        :class:`InvalidOption` (after the lease went back uncounted).
        """
        return self._flow(balancer, context, avoid, transparent=False)

    def _flow(
        self, balancer: Balancer, context: Any, avoid: Collection[str], *, transparent: bool
    ) -> RetryFlow:
        """:meth:`flow`; ``transparent``: its first attempt is a transparent retry (the HTTP
        integrations' retry of a failed connection, counted apart in :attr:`stats`)."""
        stats = self.stats
        first = stats.transparent if transparent else stats.original
        check_avoid(avoid)  # one string, or no collection at all (an int): refused
        if not all(isinstance(address, str) for address in avoid):
            raise InvalidOption(
                f"avoid must be a collection of addresses (str), not {describe(avoid)}"
            )
        tried = set(avoid)
        attempt = 0
        started = self._clock() if self._timeout is not None else 0.0
        while True:
            attempt += 1
            if attempt > 1:
                try:
                    lease = balancer.select(context, avoid=tried)
                except NoEndpointAvailable:
                    return  # no endpoint left that this call has not tried
            else:
                lease = balancer.select(context, avoid=tried)
            next(stats.retries if attempt > 1 else first)  # an attempt started (gRFC A96)
            tried.add(lease.address)
            outcome: object = Outcome.CANCELLED
            try:
                outcome = yield lease
            finally:  # GeneratorExit or a thrown exception: give the lease back, uncounted
                if outcome is Outcome.SUCCEEDED:
                    balancer.release(lease, ok=True)
                elif outcome is Outcome.FAILED or outcome is Outcome.FAILED_FINAL:
                    balancer.release(lease, ok=False)
                else:  # cancelled, no outcome, or not an Outcome at all
                    balancer.cancel(lease)
            if outcome is not None and not isinstance(outcome, Outcome):
                raise InvalidOption(f"the retry flow takes an Outcome, not {describe(outcome)}")
            if outcome is Outcome.SUCCEEDED:
                if self.budget is not None:
                    self.budget.deposit()
                return
            if outcome is not Outcome.FAILED or attempt >= self.attempts:
                return
            if not _can_select(balancer, tried):
                return  # nobody eligible left to try: spend no token, wait no backoff
            wait = self.delay(attempt)
            if self._timeout is not None and self._clock() + wait - started > self._timeout:
                return  # the retry would start past the timeout: spend no token on it
            if self.budget is not None and not self.budget.try_withdraw():
                next(stats.denied)
                return
            stats.waited(wait)
            yield wait

    # -- drivers --------------------------------------------------------------------------------

    def call(
        self,
        balancer: Balancer,
        fn: Callable[[Endpoint], T],
        context: Any = None,
        *,
        discard: Callable[[T], object] | None = None,
    ) -> T:
        """Run ``fn(endpoint)`` with retries; return its result or raise its last exception.

        ``discard`` receives each result that ``retry_result`` rejected and a retry replaced, and
        a result the call cannot return (its ``retry_result`` raised, or the call was
        interrupted while it waited to retry).
        """
        _check_functions(fn, discard)
        attempts: Attempts[T] = Attempts(
            self.flow(balancer, context), self._retry_on, self._retry_result, discard
        )
        while (step := attempts.step) is not None:
            if not isinstance(step, Lease):  # a delay, then the next lease (or the end)
                if step > 0:
                    try:
                        self._sleep(step)
                    except BaseException:
                        attempts.abort()
                        raise
                attempts.waited()
                continue
            try:
                result = fn(step.endpoint)
            except BaseException as error:
                attempts.raised(error)
            else:
                attempts.returned(result)
        return attempts.answer()

    async def acall(
        self,
        balancer: Balancer,
        fn: Callable[[Endpoint], Awaitable[T]],
        context: Any = None,
        *,
        discard: Callable[[T], object] | None = None,
    ) -> T:
        """The async twin of :meth:`call`: ``await fn(endpoint)``, waiting with ``async_sleep``."""
        _check_functions(fn, discard)
        attempts: Attempts[T] = Attempts(
            self.flow(balancer, context), self._retry_on, self._retry_result, discard
        )
        while (step := attempts.step) is not None:
            if not isinstance(step, Lease):
                if step > 0:
                    try:
                        await self._async_sleep(step)
                    except BaseException:  # cancelled while waiting: no lease is out
                        attempts.abort()
                        raise
                attempts.waited()
                continue
            try:
                result = await fn(step.endpoint)
            except BaseException as error:
                attempts.raised(error)
            else:
                attempts.returned(result)
        return attempts.answer()
