"""A response stream of a :class:`~balancekit.integrations.grpc.BalancedChannel` (sync).

The lease of a streaming call is released when the call ends, from grpcio's done callback: the
stream read to its end, a failure, a cancellation (uncounted). A stream the caller drops
unfinished is cancelled when it is garbage-collected, and its lease goes back uncounted
(grpcio cancels a collected call without running its callbacks, so a finalizer does it).

An ``UNAVAILABLE`` before the first message (a unary-request stream only) is retried by the
reader: the next ``next()`` sees the failure, asks the call where to go (another endpoint at
once when nothing was sent; after a backoff for an idempotent method) and goes on reading there.
Whichever of the done callback and the reader sees such a failure first leaves it to the reader;
every other end is the callback's. :class:`~balancekit.integrations._call.Call` releases once,
whoever asks twice.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from ._call import Call
from ._grpc_common import classify, is_unavailable
from ._grpc_pool import Entry

if TYPE_CHECKING:
    from .grpc import BalancedChannel

__all__ = ["ResponseStream"]


class _State:
    """What the reader and the done callbacks share (never the stream itself, so a dropped
    stream can be collected)."""

    __slots__ = (
        "call",
        "channel",
        "expired",
        "lock",
        "pending",
        "reader_done",
        "received",
        "retryable",
        "rpc",
    )

    def __init__(
        self, channel: BalancedChannel, call: Call, retryable: bool, expired: bool
    ) -> None:
        self.channel = channel
        self.expired = expired  # started past its deadline: DEADLINE_EXCEEDED isn't the endpoint's
        self.call = call
        self.retryable = retryable
        self.lock = threading.Lock()
        self.rpc: Any = None
        self.received = False  # a message reached the reader: no retry any more
        self.reader_done = False  # the reader saw the end: the callback judges it
        self.pending = False  # the callback left a failure to the reader

    def attach(self, start: Callable[[Entry[grpc.Channel]], Any]) -> None:
        """Start an attempt on the call's current lease."""
        lease = self.call.lease
        assert lease is not None
        channel = self.channel
        entry = channel._acquire(lease)
        try:
            rpc = start(entry)
        except BaseException:
            channel._release(entry)
            self.call.cancel()  # grpcio refused the call itself: nothing was sent
            raise
        with self.lock:
            self.rpc, self.pending = rpc, False
        rpc.add_done_callback(lambda done: self.done(done, entry))

    def done(self, rpc: Any, entry: Entry[grpc.Channel]) -> None:
        """grpcio's done callback: judge the attempt, unless the reader will retry it."""
        try:
            with self.lock:
                current = rpc is self.rpc
                defer = current and self._retryable(rpc)
                self.pending = self.pending or defer
            if current and not defer:
                self.channel._options.judge(self.call, rpc, expired=self.expired)
        finally:
            self.channel._release(entry)

    def _retryable(self, error: Any) -> bool:
        """Whether the reader may still retry ``error`` (called under the lock)."""
        return (
            self.retryable and not self.received and not self.reader_done and is_unavailable(error)
        )

    def abandon(self) -> None:
        """The stream was collected. Unfinished: cancel it, give the lease back uncounted.
        Finished: its done callback judges it (or has), unless it left a failure to the reader,
        which is judged here."""
        rpc = self.rpc
        if rpc is not None and rpc.done():
            with self.lock:
                pending = self.pending
            if pending:
                self.channel._options.judge(self.call, rpc, expired=self.expired)
            return
        if rpc is not None:
            rpc.cancel()
        self.call.cancel()


class ResponseStream:
    """An iterator of responses that is also the call (``grpc.Call`` and ``grpc.Future``).

    ``code()``, ``details()``, ``trailing_metadata()`` and the rest are those of the current
    attempt; ``cancel()`` cancels it (the lease goes back uncounted).
    """

    def __init__(
        self,
        channel: BalancedChannel,
        call: Call,
        start: Callable[[Entry[grpc.Channel]], Any],
        *,
        retryable: bool,
        expired: bool = False,
    ) -> None:
        self._state = _State(channel, call, retryable, expired)
        self._start = start
        self._state.attach(start)
        # grpcio cancels a collected call without running its callbacks: give the lease back
        self._finalizer = weakref.finalize(self, self._state.abandon)

    def __iter__(self) -> ResponseStream:
        return self

    def __next__(self) -> Any:
        state = self._state
        for _ in range(state.channel._options.retry.attempts + 1):
            try:
                value = next(state.rpc)
            except grpc.RpcError as error:
                with state.lock:
                    retry = error is state.rpc and state._retryable(error)
                    if not retry:
                        state.reader_done = True
                    pending = state.pending
                if not retry:
                    if pending:
                        state.channel._options.judge(state.call, error, expired=state.expired)
                    raise
                self._retry(error)
                continue
            except StopIteration:
                with state.lock:
                    state.reader_done = True
                raise
            if not state.received:
                with state.lock:
                    state.received = True
            return value
        raise AssertionError("more attempts than the retry policy allows")  # pragma: no cover

    def _retry(self, error: grpc.RpcError) -> None:
        """Report ``error`` to the call and start the next attempt, or re-raise it."""
        state = self._state
        step = state.call.failed(classify(error))
        if isinstance(step, float):
            if step > 0:
                try:
                    time.sleep(step)
                except BaseException:
                    state.call.cancel()
                    raise
            step = state.call.next()
        if step is None:
            with state.lock:
                state.reader_done = True
            raise error
        state.attach(self._start)

    # grpc.Call, grpc.RpcContext and grpc.Future, from the current attempt
    def cancel(self) -> bool:
        return bool(self._state.rpc.cancel())

    def is_active(self) -> bool:
        return bool(self._state.rpc.is_active())

    def time_remaining(self) -> float | None:
        return self._state.rpc.time_remaining()  # type: ignore[no-any-return]

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return bool(self._state.rpc.add_callback(callback))

    def initial_metadata(self) -> Any:
        return self._state.rpc.initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._state.rpc.trailing_metadata()

    def code(self) -> grpc.StatusCode:
        return self._state.rpc.code()

    def details(self) -> str | None:
        return self._state.rpc.details()  # type: ignore[no-any-return]

    def done(self) -> bool:
        return bool(self._state.rpc.done())

    def cancelled(self) -> bool:
        return bool(self._state.rpc.cancelled())

    def running(self) -> bool:
        return bool(self._state.rpc.running())

    def result(self, timeout: float | None = None) -> Any:
        return self._state.rpc.result(timeout)

    def exception(self, timeout: float | None = None) -> Any:
        return self._state.rpc.exception(timeout)

    def traceback(self, timeout: float | None = None) -> Any:
        return self._state.rpc.traceback(timeout)

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self._state.rpc.add_done_callback(lambda _: fn(self))
