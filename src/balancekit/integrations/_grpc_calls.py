"""The methods of a :class:`~balancekit.integrations.grpc.BalancedChannel`: each call's
attempts (unary responses through :func:`~balancekit.integrations._call.send_with_retries`,
streamed responses as a :class:`~balancekit.integrations._grpc_stream.ResponseStream`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import grpc

from .._lease import Lease
from ._call import CONNECT, send_with_retries
from ._grpc_base import (
    PAST,
    check_method,
    eject_if_refused,
    never_retried,
    nothing_to_close,
    time_left,
)
from ._grpc_common import Ended, check_metadata, check_timeout, classify, is_unavailable
from ._grpc_pool import Entry
from ._grpc_stream import ResponseStream

if TYPE_CHECKING:
    from .grpc import BalancedChannel

__all__ = ["Callable_", "StreamUnary", "Streaming", "UnaryUnary"]


class Callable_:
    """A method of a :class:`BalancedChannel`: its name, codecs, and how to start an attempt."""

    def __init__(
        self,
        channel: BalancedChannel,
        kind: str,
        method: str,
        serializer: Any,
        deserializer: Any,
        registered: Any,
    ) -> None:
        self._channel = channel
        self._kind = kind
        self._method = check_method(method)
        self._codecs = (serializer, deserializer, registered)

    def _inner(self, entry: Entry[grpc.Channel]) -> Any:
        return self._channel._inner(entry, self._kind, self._method, *self._codecs)


class UnaryUnary(Callable_, grpc.UnaryUnaryMultiCallable):  # type: ignore[misc]
    def __init__(self, channel: BalancedChannel, method: str, *codecs: Any) -> None:
        super().__init__(channel, "unary_unary", method, *codecs)

    def _invoke(self, request: Any, timeout: float | None, metadata: Any, **kwargs: Any) -> Ended:
        timeout, metadata = check_timeout(timeout), check_metadata(metadata)
        channel = self._channel
        channel._maybe_sync()
        options = channel._options
        call = channel._started(self._method, metadata, replayable=options.idempotent(self._method))
        deadline = call.deadline = None if timeout is None else time.monotonic() + timeout
        expired = [False]  # the last attempt started past the deadline

        def send(lease: Lease) -> Ended:
            entry = channel._acquire(lease)
            try:
                left = time_left(deadline)
                expired[0] = left == PAST
                try:
                    value, rpc = self._inner(entry).with_call(
                        request, timeout=left, metadata=metadata, **kwargs
                    )
                except grpc.RpcError as error:
                    if is_unavailable(error):
                        raise  # a transport failure: send_with_retries asks the call what next
                    return Ended(error, error=error)
                except Exception:
                    call.cancel()  # grpcio refused the call itself: nothing was sent
                    raise
                return Ended(rpc, value)
            finally:
                channel._release(entry)

        ended = send_with_retries(call, send, grpc.RpcError, classify, nothing_to_close)
        options.judge(call, ended.rpc, expired=expired[0])
        return ended

    def __call__(
        self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> Any:
        ended = self._invoke(request, timeout, metadata, **kwargs)
        if ended.error is not None:
            raise ended.error
        return ended.value

    def with_call(
        self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> tuple[Any, Any]:
        ended = self._invoke(request, timeout, metadata, **kwargs)
        if ended.error is not None:
            raise ended.error
        return ended.value, ended.rpc

    def future(
        self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> Any:
        """One attempt, released when its future completes (no retries)."""
        timeout, metadata = check_timeout(timeout), check_metadata(metadata)
        expired = timeout is not None and timeout <= 0
        channel = self._channel
        channel._maybe_sync()
        call = channel._started(self._method, metadata, replayable=False)
        lease = call.lease
        assert lease is not None
        entry = channel._acquire(lease)
        try:
            future = self._inner(entry).future(
                request, timeout=timeout, metadata=metadata, **kwargs
            )
        except BaseException:
            channel._release(entry)
            call.cancel()  # grpcio refused the call itself: nothing was sent
            raise
        options = channel._options

        def done(rpc: Any) -> None:
            try:
                health = options.base.health
                if health is not None and is_unavailable(rpc) and classify(rpc) == CONNECT:
                    health.connect_failed(lease.address)
                options.judge(call, rpc, expired=expired)
            finally:
                channel._release(entry)

        future.add_done_callback(done)
        return future


class StreamUnary(Callable_, grpc.StreamUnaryMultiCallable):  # type: ignore[misc]
    """A request stream, one answer: one attempt (the request iterator cannot be replayed)."""

    def _invoke(self, requests: Any, timeout: float | None, metadata: Any, **kwargs: Any) -> Ended:
        timeout, metadata = check_timeout(timeout), check_metadata(metadata)
        channel = self._channel
        channel._maybe_sync()
        options = channel._options
        call = channel._started(self._method, metadata, replayable=False)

        def send(lease: Lease) -> Ended:
            entry = channel._acquire(lease)
            try:
                try:
                    value, rpc = self._inner(entry).with_call(
                        requests, timeout=timeout, metadata=metadata, **kwargs
                    )
                except grpc.RpcError as error:
                    if is_unavailable(error):
                        eject_if_refused(options.base.health, lease, error)
                        raise
                    return Ended(error, error=error)
                except Exception:
                    call.cancel()  # grpcio refused the call itself: nothing was sent
                    raise
                return Ended(rpc, value)
            finally:
                channel._release(entry)

        ended = send_with_retries(call, send, grpc.RpcError, never_retried, nothing_to_close)
        options.judge(call, ended.rpc, expired=timeout is not None and timeout <= 0)
        return ended

    def __call__(
        self, requests: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> Any:
        ended = self._invoke(requests, timeout, metadata, **kwargs)
        if ended.error is not None:
            raise ended.error
        return ended.value

    def with_call(
        self, requests: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> tuple[Any, Any]:
        ended = self._invoke(requests, timeout, metadata, **kwargs)
        if ended.error is not None:
            raise ended.error
        return ended.value, ended.rpc

    def future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("future() of a stream-unary method: call it in a thread")


class Streaming(Callable_):
    """unary_stream and stream_stream: the call returns a :class:`ResponseStream`."""

    def __call__(
        self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> ResponseStream:
        timeout, metadata = check_timeout(timeout), check_metadata(metadata)
        channel = self._channel
        channel._maybe_sync()
        unary = self._kind == "unary_stream"
        idempotent = unary and channel._options.idempotent(self._method)
        call = channel._started(self._method, metadata, replayable=idempotent)
        deadline = call.deadline = None if timeout is None else time.monotonic() + timeout

        def start(entry: Entry[grpc.Channel]) -> Any:
            return self._inner(entry)(
                request, timeout=time_left(deadline), metadata=metadata, **kwargs
            )

        expired = timeout is not None and timeout <= 0
        return ResponseStream(channel, call, start, retryable=unary, expired=expired)
