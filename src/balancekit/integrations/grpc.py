"""gRPC channels that send each call to the endpoint a balancer selects (grpcio, sync and asyncio).

Use::

    import grpc, balancekit as bk
    lb = bk.LeastConnections(["10.0.0.1:50051", "10.0.0.2:50051"])
    channel = bk.grpc.BalancedChannel(lb)             # a grpc.Channel: hand it to any stub
    stub = helloworld_pb2_grpc.GreeterStub(channel)
    stub.SayHello(request, timeout=1.0)               # sent to 10.0.0.1 or .2, picked per call

gRPC balances *inside* a channel, with the few policies C-core ships (grpc/grpc#11685: no
least-request, no custom policy from Python). :class:`BalancedChannel` keeps one grpcio channel
per endpoint (:mod:`balancekit.integrations._grpc_pool`: opened and closed as the balancer's
membership changes) and picks per call, so every balancekit strategy applies, per call.

What each call reports (:mod:`balancekit.integrations._grpc_common`): a call is released when it
ends, with ``ok_code(status)`` (default: a failure for UNKNOWN, DEADLINE_EXCEEDED,
UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS, Envoy's 5xx mapping; application errors
such as NOT_FOUND or INVALID_ARGUMENT are successes for the endpoint) and the time from the pick
to the end. A streaming response is released when the stream ends: read to the end, failed,
cancelled (uncounted) or garbage-collected (uncounted). A CANCELLED call is given back
uncounted. ORCA load reports in the trailing metadata (``endpoint-load-metrics-bin``, gRFC A51)
feed a balancer that takes reports (:class:`~balancekit.LoadReportWeightedRoundRobin`).

Retries follow the HTTP integrations (one :class:`~balancekit.integrations._call.Call` per
call, a :class:`~balancekit.Retry` policy): an UNAVAILABLE call that never left the client (no
connection: C-core's "failed to connect to all addresses") is retried at once on another
endpoint, without spending the retry budget (gRFC A6's transparent retry), and the endpoint is
ejected through the balancer's health tracker; an UNAVAILABLE call that may have reached the
server is retried after a backoff only for methods declared ``idempotent`` (A6 retries only
what a retry policy names). Calls with a request *stream* are never retried (the iterator
cannot be replayed); a response stream is retried only before its first message. The call's
``timeout`` is one deadline over every attempt.

Thread-safe as far as the balancer is (grpcio channels are). Sources: gRFC A6 (client retries:
transparent retry, ``retryableStatusCodes``), gRFC A51 and A58 (ORCA, weighted round robin),
gRPC's status code guide (``doc/statuscodes.md``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import grpc

from .._core import Balancer
from .._errors import InvalidOption, NoEndpointAvailable
from .._lease import Lease
from .._options import describe, seconds
from ..health.tracker import HealthTracker
from ._call import CONNECT, FINAL, Call, send_with_retries
from ._grpc_common import (
    Ended,
    GrpcOptions,
    OkCode,
    classify,
    default_ok_code,
    is_unavailable,
)
from ._grpc_pool import ChannelPool, Entry

__all__ = [
    "AsyncBalancedChannel",
    "BalancedChannel",
    "NoEndpointError",
    "default_ok_code",
]

_DEFAULT: Any = object()  # "not given": Options applies its own defaults


class NoEndpointError(grpc.RpcError, NoEndpointAvailable):  # type: ignore[misc]
    """No endpoint could take the call: a ``grpc.RpcError`` (``code()`` UNAVAILABLE, as gRPC's
    own "no healthy upstream") and a :class:`~balancekit.NoEndpointAvailable`."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return str(self)

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[()]:
        return ()


def _left(deadline: float | None) -> float | None:
    """What is left of the call's deadline for the next attempt (0: it expires at once)."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def _nothing(_: object) -> None:
    """Nothing to close about a finished gRPC attempt (send_with_retries' ``close``)."""


def check_channel_options(credentials: object, options: object, compression: object) -> None:
    """Validate what every per-endpoint channel is opened with (raises InvalidOption)."""
    if credentials is not None and not isinstance(credentials, grpc.ChannelCredentials):
        raise InvalidOption(
            f"credentials must be grpc.ChannelCredentials or None, not {describe(credentials)}"
        )
    if (
        not isinstance(options, Sequence)
        or isinstance(options, str | bytes)
        or not all(
            isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
            for item in options
        )
    ):
        raise InvalidOption(
            "options must be a sequence of (name, value) channel arguments,"
            f" not {describe(options)}"
        )
    if compression is not None and not isinstance(compression, grpc.Compression):
        raise InvalidOption(
            f"compression must be a grpc.Compression or None, not {describe(compression)}"
        )


class _Channels:
    """What the sync and asyncio channels share: options, the pool, the balancer's view."""

    _options: GrpcOptions

    def _configure(
        self,
        balancer: Balancer,
        *,
        retry: Any,
        ok_code: OkCode,
        idempotent: object,
        context: Any,
        eject: Any,
        max_eject: Any,
        orca: bool,
        sweep: float,
        credentials: object,
        options: object,
        compression: object,
    ) -> float:
        check_channel_options(credentials, options, compression)
        kwargs = {
            name: value
            for name, value in (("retry", retry), ("eject", eject), ("max_eject", max_eject))
            if value is not _DEFAULT
        }
        self._options = GrpcOptions(
            balancer,
            ok_code=ok_code,
            idempotent=idempotent,
            context=context,
            orca=orca,
            **kwargs,
        )
        return seconds("sweep", sweep, high=86400.0)

    @property
    def balancer(self) -> Balancer:
        """The balancer choosing the endpoints."""
        return self._options.balancer

    @property
    def health(self) -> HealthTracker | None:
        """The health tracker refused connections eject through (see the HTTP integrations)."""
        return self._options.base.health

    def _started(self, method: str, metadata: Any, *, replayable: bool) -> Call:
        call = self._options.call(method, metadata, replayable=replayable)
        try:
            call.start()
        except NoEndpointAvailable as error:
            raise NoEndpointError(str(error)) from error
        return call


class BalancedChannel(_Channels, grpc.Channel):  # type: ignore[misc]
    """A ``grpc.Channel`` sending each call to the endpoint ``balancer`` selects.

    Options (keyword-only, validated at once):

    - ``credentials``: ``grpc.ChannelCredentials`` for every endpoint (``grpc.secure_channel``),
      or None (``grpc.insecure_channel``); ``options``: channel arguments for every endpoint
      (e.g. ``("grpc.ssl_target_name_override", "api.example.com")`` when endpoints are IPs and
      the certificate names the service); ``compression``.
    - ``retry``: a :class:`~balancekit.Retry` (default ``Retry()``: 3 attempts on distinct
      endpoints, a budget); None for one attempt. Its ``retry_result`` receives the finished
      attempt (``code()``, ``details()``, ``trailing_metadata()``) and retries it when true,
      for idempotent methods.
    - ``ok_code``: a function of the ``grpc.StatusCode`` deciding success
      (:func:`default_ok_code`).
    - ``idempotent``: which methods may be sent again after they may have reached a server:
      False (default), True, a collection of full method names (``"/pkg.Service/Method"``), or
      a function of the method name.
    - ``context``: what ``select`` receives, a function of a
      :class:`~balancekit.integrations._grpc_common.CallInfo` (method, metadata); default a
      :class:`~balancekit.Request` with the method as path and the text metadata as headers,
      so ``bk.keys.header("x-user")`` works for the hashing strategies.
    - ``eject``, ``max_eject``: as for the HTTP integrations.
    - ``orca``: read ORCA load reports from trailers into the balancer's ``report`` (default
      True; only balancers with a ``report`` method take them).
    - ``sweep``: seconds between membership checks (default 1); :meth:`sync` checks now.

    ``future()`` makes one attempt (no retries). ``subscribe`` is not supported (a pool of
    channels has no single connectivity state).
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        compression: grpc.Compression | None = None,
        retry: Any = _DEFAULT,
        ok_code: OkCode = default_ok_code,
        idempotent: object = False,
        context: Callable[[Any], Any] | None = None,
        eject: Any = _DEFAULT,
        max_eject: Any = _DEFAULT,
        orca: bool = True,
        sweep: float = 1.0,
    ) -> None:
        interval = self._configure(
            balancer,
            retry=retry,
            ok_code=ok_code,
            idempotent=idempotent,
            context=context,
            eject=eject,
            max_eject=max_eject,
            orca=orca,
            sweep=sweep,
            credentials=credentials,
            options=options,
            compression=compression,
        )
        self._credentials = credentials
        self._channel_options = tuple(options)
        self._compression = compression
        self._pool: ChannelPool[grpc.Channel] = ChannelPool(balancer, self._open, sweep=interval)
        self._sync_lock = threading.Lock()

    def _open(self, address: str) -> grpc.Channel:
        if self._credentials is None:
            return grpc.insecure_channel(
                address, options=self._channel_options, compression=self._compression
            )
        return grpc.secure_channel(
            address, self._credentials, options=self._channel_options, compression=self._compression
        )

    @property
    def addresses(self) -> list[str]:
        """The endpoints with an open channel now."""
        return self._pool.addresses()

    def sync(self) -> None:
        """Apply membership now: open channels for new members, close those of endpoints that
        left (once their calls end). Runs by itself every ``sweep`` seconds, on a call."""
        for channel in self._pool.sync():
            channel.close()

    def _maybe_sync(self) -> None:
        if self._pool.due() and self._sync_lock.acquire(blocking=False):
            try:
                self.sync()
            finally:
                self._sync_lock.release()

    def _acquire(self, lease: Lease) -> Entry[grpc.Channel]:
        return self._pool.acquire(lease[0].address)

    def _release(self, entry: Entry[grpc.Channel]) -> None:
        channel = self._pool.release(entry)
        if channel is not None:
            channel.close()

    @staticmethod
    def _inner(entry: Entry[grpc.Channel], kind: str, method: str, *args: Any) -> Any:
        key = (kind, method, *args)
        inner = entry.callables.get(key)
        if inner is None:
            ser, deser, registered = args
            factory = getattr(entry.channel, kind)
            inner = factory(method, ser, deser, _registered_method=registered)
            entry.callables[key] = inner
        return inner

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> _UnaryUnary:
        return _UnaryUnary(
            self, method, request_serializer, response_deserializer, _registered_method
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> _Streaming:
        return _Streaming(
            self,
            "unary_stream",
            method,
            request_serializer,
            response_deserializer,
            _registered_method,
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> _StreamUnary:
        return _StreamUnary(
            self,
            "stream_unary",
            method,
            request_serializer,
            response_deserializer,
            _registered_method,
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> _Streaming:
        return _Streaming(
            self,
            "stream_stream",
            method,
            request_serializer,
            response_deserializer,
            _registered_method,
        )

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        raise NotImplementedError(
            "a BalancedChannel has one channel per endpoint and no single connectivity state"
        )

    def unsubscribe(self, callback: Any) -> None:
        raise NotImplementedError("a BalancedChannel has no connectivity subscriptions")

    def close(self) -> None:
        """Close every endpoint's channel (their calls are cancelled); no call may start after."""
        for channel in self._pool.close():
            channel.close()

    def __enter__(self) -> BalancedChannel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Callable:
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
        if not isinstance(method, str):
            raise InvalidOption(f"method must be a str, not {describe(method)}")
        self._channel = channel
        self._kind = kind
        self._method = method
        self._codecs = (serializer, deserializer, registered)

    def _inner(self, entry: Entry[grpc.Channel]) -> Any:
        return self._channel._inner(entry, self._kind, self._method, *self._codecs)


class _UnaryUnary(_Callable, grpc.UnaryUnaryMultiCallable):  # type: ignore[misc]
    def __init__(self, channel: BalancedChannel, method: str, *codecs: Any) -> None:
        super().__init__(channel, "unary_unary", method, *codecs)

    def _invoke(self, request: Any, timeout: float | None, metadata: Any, **kwargs: Any) -> Ended:
        channel = self._channel
        channel._maybe_sync()
        options = channel._options
        call = channel._started(self._method, metadata, replayable=options.idempotent(self._method))
        deadline = None if timeout is None else time.monotonic() + timeout

        def send(lease: Lease) -> Ended:
            entry = channel._acquire(lease)
            try:
                try:
                    value, rpc = self._inner(entry).with_call(
                        request, timeout=_left(deadline), metadata=metadata, **kwargs
                    )
                except grpc.RpcError as error:
                    if is_unavailable(error):
                        raise  # a transport failure: send_with_retries asks the call what next
                    return Ended(error, error=error)
                return Ended(rpc, value)
            finally:
                channel._release(entry)

        ended = send_with_retries(call, send, grpc.RpcError, classify, _nothing)
        options.judge(call, ended.rpc)
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
        except BaseException as error:
            channel._release(entry)
            call.abandon(error)
            raise
        options = channel._options

        def done(rpc: Any) -> None:
            try:
                health = options.base.health
                if health is not None and is_unavailable(rpc) and classify(rpc) == CONNECT:
                    health.connect_failed(lease[0].address)
                options.judge(call, rpc)
            finally:
                channel._release(entry)

        future.add_done_callback(done)
        return future


class _StreamUnary(_Callable, grpc.StreamUnaryMultiCallable):  # type: ignore[misc]
    """A request stream, one answer: one attempt (the request iterator cannot be replayed)."""

    def _invoke(self, requests: Any, timeout: float | None, metadata: Any, **kwargs: Any) -> Ended:
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
                        _eject_if_refused(options.base.health, lease, error)
                        raise
                    return Ended(error, error=error)
                return Ended(rpc, value)
            finally:
                channel._release(entry)

        ended = send_with_retries(call, send, grpc.RpcError, _final, _nothing)
        options.judge(call, ended.rpc)
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


def _final(error: Any) -> str:
    """A failure that is never retried (the request stream was consumed)."""
    return FINAL


def _eject_if_refused(health: HealthTracker | None, lease: Lease, error: grpc.RpcError) -> None:
    """Eject an endpoint that refused the connection even when the call is not retried."""
    if health is not None and classify(error) == CONNECT:
        health.connect_failed(lease[0].address)


class _Streaming(_Callable):
    """unary_stream and stream_stream: the call returns a :class:`ResponseStream`."""

    def __call__(
        self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> ResponseStream:
        channel = self._channel
        channel._maybe_sync()
        unary = self._kind == "unary_stream"
        idempotent = unary and channel._options.idempotent(self._method)
        call = channel._started(self._method, metadata, replayable=idempotent)
        deadline = None if timeout is None else time.monotonic() + timeout

        def start(entry: Entry[grpc.Channel]) -> Any:
            return self._inner(entry)(request, timeout=_left(deadline), metadata=metadata, **kwargs)

        return ResponseStream(channel, call, start, retryable=unary)


from ._grpc_aio import AsyncBalancedChannel  # noqa: E402
from ._grpc_stream import ResponseStream  # noqa: E402  (it needs BalancedChannel's type only)
