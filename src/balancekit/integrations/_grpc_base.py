"""What the sync and asyncio balanced gRPC channels share: their options, the error for an
empty pool, and the helpers of their calls' attempts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import grpc

from .._core import Balancer
from .._errors import InvalidOption, NoEndpointAvailable
from .._lease import Lease
from .._options import describe, seconds
from ..health.tracker import HealthTracker
from ._call import CONNECT, FINAL, Call
from ._grpc_common import GrpcOptions, OkCode, classify
from ._grpc_pool import ChannelPool

__all__ = [
    "DEFAULT",
    "PAST",
    "ChannelBase",
    "NoEndpointError",
    "check_channel_options",
    "check_method",
    "eject_if_refused",
    "never_retried",
    "nothing_to_close",
    "time_left",
]

DEFAULT: Any = object()  # "not given": Options applies its own defaults


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


#: The timeout an attempt started past its call's deadline gets (see :func:`time_left`).
PAST = -1.0


def time_left(deadline: float | None) -> float | None:
    """What is left of the call's deadline for the next attempt; :data:`PAST` once it has
    passed. Never 0 or a few microseconds below it: grpcio may still complete a call given a
    timeout of 0 (the deadline and a fast answer race in C-core), while a deadline clearly in
    the past fails at once with DEADLINE_EXCEEDED, without the server."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    return left if left > 0.0 else PAST


def nothing_to_close(_: object) -> None:
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
    # grpcio converts the arguments when a channel is made, i.e. on the first call to each
    # endpoint, after its pick: a value it refuses (an object, an unencodable str) would fail
    # every call there. One throwaway channel now (no I/O: channels connect on first use).
    try:
        probe = grpc.insecure_channel("127.0.0.1:1", options=tuple(options))
    except Exception as error:
        raise InvalidOption(
            f"options: grpcio refuses these channel arguments ({type(error).__name__}: {error})"
        ) from error
    probe.close()


def check_method(method: object) -> str:
    """A method's full name (``"/pkg.Service/Method"``), checked when its callable is made: a
    str grpcio can encode. Else InvalidOption (grpcio would raise at each call, after a pick)."""
    if not isinstance(method, str):
        raise InvalidOption(f"method must be a str, not {describe(method)}")
    try:
        method.encode()
    except UnicodeEncodeError as error:
        raise InvalidOption(f"method must be encodable as UTF-8, not {describe(method)}") from error
    return method


class ChannelBase:
    """What the sync and asyncio channels share: options, the pool, the balancer's view."""

    _options: GrpcOptions
    _pool: ChannelPool[Any]

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
        interval = seconds("sweep", sweep, high=86400.0)  # all checked before the balancer
        kwargs = {
            name: value
            for name, value in (("retry", retry), ("eject", eject), ("max_eject", max_eject))
            if value is not DEFAULT
        }
        self._options = GrpcOptions(
            balancer,
            ok_code=ok_code,
            idempotent=idempotent,
            context=context,
            orca=orca,
            **kwargs,  # Options attaches a health tracker last, once everything is valid
        )
        return interval

    @property
    def balancer(self) -> Balancer:
        """The balancer choosing the endpoints."""
        return self._options.balancer

    @property
    def health(self) -> HealthTracker | None:
        """The health tracker refused connections eject through (see the HTTP integrations)."""
        return self._options.base.health

    def _started(self, method: str, metadata: Any, *, replayable: bool) -> Call:
        if self._pool.closed:  # before the pick: no lease is taken, nothing is counted
            raise ValueError("Cannot invoke RPC on closed channel!")
        call = self._options.call(method, metadata, replayable=replayable)
        try:
            call.start()
        except NoEndpointAvailable as error:
            raise NoEndpointError(str(error)) from error
        return call


def never_retried(error: Any) -> str:
    """A failure that is never retried (the request stream was consumed)."""
    return FINAL


def eject_if_refused(health: HealthTracker | None, lease: Lease, error: grpc.RpcError) -> None:
    """Eject an endpoint that refused the connection even when the call is not retried."""
    if health is not None and classify(error) == CONNECT:
        health.connect_failed(lease.address)
