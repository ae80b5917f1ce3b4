"""A retry policy's counters: attempts by type, budget denials and time spent backing off.

Shaped after gRFC A96 ("gRPC OTel Metrics for Retries", grpc/proposal
``A96-retry-otel-stats.md``): attempts are told apart as the call's original attempt, a retry
(after a failure, with a backoff and a budget token) or a transparent retry (a connection that
failed before anything was sent, retried at once: gRFC A6), and the backoff delay is summed
(A96's ``grpc.client.call.retry_delay``). ``balancekit.metrics`` reads them at scrape time.

Cost: one ``next()`` on an :func:`itertools.count` per attempt (a single C call, atomic in
CPython, no lock); the delay sum takes a lock, on retries only.
"""

from __future__ import annotations

import itertools
import threading
from typing import NamedTuple

from ._state import count_value

__all__ = ["RetryCounts", "RetryStats"]


class RetryCounts(NamedTuple):
    """One reading of a policy's counters (see :class:`RetryStats`)."""

    original: int  #: calls' first attempts
    retries: int  #: attempts after a failure (backoff, budget)
    transparent: int  #: attempts after a failed connection (no backoff, no budget)
    budget_denied: int  #: retries the budget refused (the call then ended)
    delay: float  #: seconds of backoff handed to drivers to wait, in total


class RetryStats:
    """Counters of one :class:`~balancekit.Retry` policy, shared by all its calls (thread-safe)."""

    __slots__ = ("_delay", "_lock", "denied", "original", "retries", "transparent")

    def __init__(self) -> None:
        self.original = itertools.count()
        self.retries = itertools.count()
        self.transparent = itertools.count()
        self.denied = itertools.count()
        self._delay = 0.0
        self._lock = threading.Lock()

    def waited(self, seconds: float) -> None:
        """Add a backoff of ``seconds`` (finite, >= 0: the policy's own ``delay``)."""
        with self._lock:
            self._delay += seconds

    def read(self) -> RetryCounts:
        """The counters now. O(1)."""
        with self._lock:
            delay = self._delay
        return RetryCounts(
            original=count_value(self.original),
            retries=count_value(self.retries),
            transparent=count_value(self.transparent),
            budget_denied=count_value(self.denied),
            delay=delay,
        )
