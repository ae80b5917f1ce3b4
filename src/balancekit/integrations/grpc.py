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
uncounted. ORCA load reports in the trailing metadata (``endpoint-load-metrics``, TEXT or JSON)
feed a balancer that takes reports (:class:`~balancekit.LoadReportWeightedRoundRobin`); the
binary ``endpoint-load-metrics-bin`` of gRFC A51 is consumed by C-core and never reaches Python.

Retries follow the HTTP integrations (one :class:`~balancekit.integrations._call.Call` per
call, a :class:`~balancekit.Retry` policy): an UNAVAILABLE call that never left the client (no
connection: C-core's "failed to connect to all addresses") is retried at once on another
endpoint, without spending the retry budget (gRFC A6's transparent retry), and the endpoint is
ejected through the balancer's health tracker; an UNAVAILABLE call that may have reached the
server is retried after a backoff only for methods declared ``idempotent`` (A6 retries only
what a retry policy names). Calls with a request *stream* are never retried (the iterator
cannot be replayed); a response stream is retried only before its first message. The call's
``timeout`` is one deadline over every attempt: no backoff is waited past it.

Thread-safe as far as the balancer is (grpcio channels are). Sources: gRFC A6 (client retries:
transparent retry, ``retryableStatusCodes``), gRFC A51 and A58 (ORCA, weighted round robin),
gRPC's status code guide (``doc/statuscodes.md``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from .._errors import missing_extra

try:
    import grpc
except ModuleNotFoundError as error:  # say which extra installs it, not only its module name
    if (error.name or "").partition(".")[0] != "grpc":
        raise
    raise missing_extra("balancekit.grpc", "grpcio", "grpc", "grpc") from error

from .._core import Balancer
from .._lease import Lease
from ._grpc_aio import AsyncBalancedChannel
from ._grpc_base import DEFAULT, ChannelBase, NoEndpointError
from ._grpc_calls import Streaming, StreamUnary, UnaryUnary
from ._grpc_common import OkCode, default_ok_code
from ._grpc_pool import ChannelPool, Entry
from ._grpc_stream import ResponseStream

__all__ = [
    "AsyncBalancedChannel",
    "BalancedChannel",
    "NoEndpointError",
    "ResponseStream",
    "default_ok_code",
]


class BalancedChannel(ChannelBase, grpc.Channel):  # type: ignore[misc]
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
        retry: Any = DEFAULT,
        ok_code: OkCode = default_ok_code,
        idempotent: object = False,
        context: Callable[[Any], Any] | None = None,
        eject: Any = DEFAULT,
        max_eject: Any = DEFAULT,
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
        return self._pool.acquire(lease.address)

    def _release(self, entry: Entry[grpc.Channel]) -> None:
        channel = self._pool.release(entry)
        if channel is not None:
            # Off this thread: a stream's last release runs in grpcio's done callback, on the
            # channel's own thread, and closing a channel from there never returns.
            threading.Thread(
                target=channel.close, name="balancekit-grpc-close", daemon=True
            ).start()

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
    ) -> UnaryUnary:
        return UnaryUnary(
            self, method, request_serializer, response_deserializer, _registered_method
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> Streaming:
        return Streaming(
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
    ) -> StreamUnary:
        return StreamUnary(
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
    ) -> Streaming:
        return Streaming(
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
