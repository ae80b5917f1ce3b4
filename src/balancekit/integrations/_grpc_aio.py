"""The asyncio twin of :class:`~balancekit.integrations.grpc.BalancedChannel` (``grpc.aio``).

Same options, same outcomes and retries (the shared :class:`~balancekit.integrations._call.Call`
driven by :func:`~balancekit.integrations._call.send_with_retries_async`). A unary-response call
returns an awaitable call object at once, as ``grpc.aio`` does (the attempts run in a task); a
streaming call returns an :class:`AsyncResponseStream` (``async for``, ``read()``, ``write()``)
released from grpc.aio's done callback, or by the reader when it retries a stream that failed
before its first message; a stream collected unfinished goes back uncounted. Channels are
``grpc.aio`` channels, closed with ``await``. One event loop per channel, as grpc.aio requires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import grpc
import grpc.aio

from .._core import Balancer
from .._lease import Lease
from ._call import Call, send_with_retries_async
from ._grpc_aio_stream import AsyncResponseStream, Done
from ._grpc_base import DEFAULT, PAST, ChannelBase, check_method, never_retried
from ._grpc_common import (
    Ended,
    OkCode,
    check_metadata,
    check_timeout,
    classify,
    default_ok_code,
    is_unavailable,
)
from ._grpc_pool import ChannelPool, Entry

__all__ = ["AsyncBalancedChannel", "AsyncUnaryCall"]


async def _no_close(_: object) -> None:
    """Nothing to close about a finished attempt."""


class AsyncBalancedChannel(ChannelBase, grpc.aio.Channel):  # type: ignore[misc]
    """A ``grpc.aio.Channel`` sending each call to the endpoint ``balancer`` selects.

    Options as :class:`~balancekit.integrations.grpc.BalancedChannel`. Close it with
    ``await channel.close()`` or ``async with``.
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
        self._pool: ChannelPool[grpc.aio.Channel] = ChannelPool(
            balancer, self._open, sweep=interval
        )
        self._closing: set[asyncio.Task[None]] = set()

    def _open(self, address: str) -> grpc.aio.Channel:
        if self._credentials is None:
            return grpc.aio.insecure_channel(
                address, options=self._channel_options, compression=self._compression
            )
        return grpc.aio.secure_channel(
            address, self._credentials, options=self._channel_options, compression=self._compression
        )

    @property
    def addresses(self) -> list[str]:
        """The endpoints with an open channel now."""
        return self._pool.addresses()

    async def sync(self) -> None:
        """Apply membership now (see ``BalancedChannel.sync``)."""
        for channel in self._pool.sync():
            await channel.close()

    def _later(self, work: Any) -> bool:
        """Run the coroutine ``work`` in a task on the running loop; False (``work`` closed,
        never run) when there is none: a stream collected after its loop ended."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work.close()
            return False
        task = loop.create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return True

    def _maybe_sync(self) -> None:
        if self._pool.due():
            for channel in self._pool.sync():
                self._later(channel.close())

    def _acquire(self, lease: Lease) -> Entry[grpc.aio.Channel]:
        return self._pool.acquire(lease.address)

    def _release(self, entry: Entry[grpc.aio.Channel]) -> None:
        channel = self._pool.release(entry)
        if channel is not None:
            self._later(channel.close())

    def _method(self, kind: str, method: str, *codecs: Any) -> _AsyncCallable:
        return _AsyncCallable(self, kind, method, codecs)

    def unary_unary(self, method: str, *codecs: Any, **kwargs: Any) -> _AsyncCallable:
        return self._method("unary_unary", method, *_codecs(codecs, kwargs))

    def unary_stream(self, method: str, *codecs: Any, **kwargs: Any) -> _AsyncCallable:
        return self._method("unary_stream", method, *_codecs(codecs, kwargs))

    def stream_unary(self, method: str, *codecs: Any, **kwargs: Any) -> _AsyncCallable:
        return self._method("stream_unary", method, *_codecs(codecs, kwargs))

    def stream_stream(self, method: str, *codecs: Any, **kwargs: Any) -> _AsyncCallable:
        return self._method("stream_stream", method, *_codecs(codecs, kwargs))

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        raise NotImplementedError("a pool of channels has no single connectivity state")

    async def wait_for_state_change(self, last_observed_state: Any) -> None:
        raise NotImplementedError("a pool of channels has no single connectivity state")

    async def channel_ready(self) -> None:
        raise NotImplementedError("a pool of channels has no single connectivity state")

    async def close(self, grace: float | None = None) -> None:
        """Close every endpoint's channel (calls still running are cancelled after ``grace``)."""
        for channel in self._pool.close():
            await channel.close(grace)
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    async def __aenter__(self) -> AsyncBalancedChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _codecs(codecs: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(serializer, deserializer, registered) from grpc.aio's positional or keyword form."""
    names = ("request_serializer", "response_deserializer", "_registered_method")
    values = [*codecs, None, None, False][:3]
    for index, name in enumerate(names):
        if name in kwargs:
            values[index] = kwargs[name]
    return values[0], values[1], values[2]


class _AsyncCallable:
    """A method of an :class:`AsyncBalancedChannel`."""

    def __init__(
        self, channel: AsyncBalancedChannel, kind: str, method: str, codecs: tuple[Any, ...]
    ) -> None:
        self._channel = channel
        self._kind = kind
        self._method = check_method(method)
        self._codecs = codecs

    def _inner(self, entry: Entry[grpc.aio.Channel]) -> Any:
        key = (self._kind, self._method, *self._codecs)
        inner = entry.callables.get(key)
        if inner is None:
            ser, deser, registered = self._codecs
            factory = getattr(entry.channel, self._kind)
            inner = factory(self._method, ser, deser, _registered_method=registered)
            entry.callables[key] = inner
        return inner

    def __call__(
        self, request: Any = None, *, timeout: float | None = None, metadata: Any = None, **kw: Any
    ) -> Any:
        timeout, metadata = check_timeout(timeout), check_metadata(metadata)
        channel = self._channel
        channel._maybe_sync()
        options = channel._options
        unary_request = self._kind.startswith("unary")
        replayable = unary_request and options.idempotent(self._method)
        call = channel._started(self._method, metadata, replayable=replayable)
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        call.deadline = None if timeout is None else time.monotonic() + timeout
        expired = [False]  # the last attempt started past the deadline

        def start(entry: Entry[grpc.aio.Channel]) -> Any:
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if left is not None and left <= 0.0:
                left = PAST  # not 0: grpcio may still complete a call given 0 (time_left)
            expired[0] = left == PAST
            return self._inner(entry)(request, timeout=left, metadata=metadata, **kw)

        if self._kind.endswith("stream"):
            return AsyncResponseStream(
                channel,
                call,
                start,
                retryable=unary_request,
                expired=timeout is not None and timeout <= 0,
            )
        return AsyncUnaryCall(self._attempts(call, start, unary_request, expired))

    async def _attempts(
        self, call: Call, start: Callable[[Any], Any], unary: bool, expired: list[bool]
    ) -> Ended:
        channel = self._channel
        options = channel._options

        async def send(lease: Lease) -> Ended:
            entry = channel._acquire(lease)
            try:
                try:
                    rpc = start(entry)
                except Exception:
                    call.cancel()  # grpcio refused the call itself: nothing was sent
                    raise
                try:
                    value = await rpc
                except grpc.RpcError as error:
                    if is_unavailable(error):
                        raise
                    return Ended(error, error=error)
                except Exception:
                    rpc.cancel()
                    call.cancel()  # not the endpoint's answer: grpcio failed in the client
                    raise
                except BaseException:
                    rpc.cancel()
                    raise
                trailers = await rpc.trailing_metadata() if options.report is not None else None
                return Ended(Done(rpc, trailers), value)
            finally:
                channel._release(entry)

        ended = await send_with_retries_async(
            call, send, grpc.RpcError, classify if unary else never_retried, _no_close
        )
        options.judge(call, ended.rpc, expired=expired[0])
        return ended


class AsyncUnaryCall:
    """What a unary-response call returns: await it for the response; ``code()``,
    ``details()``, ``initial_metadata()`` and ``trailing_metadata()`` (coroutines) are the last
    attempt's; ``cancel()`` cancels the call (its lease goes back uncounted)."""

    def __init__(self, attempts: Any) -> None:
        self._task: asyncio.Task[Ended] = asyncio.get_running_loop().create_task(attempts)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    async def _result(self) -> Any:
        ended = await self._task
        if ended.error is not None:
            raise ended.error
        return ended.value

    async def _last(self) -> Any:
        try:
            ended = await asyncio.shield(self._task)
        except grpc.RpcError as error:  # UNAVAILABLE after the last attempt: the error is the call
            return error
        rpc = ended.rpc
        return rpc.aio if isinstance(rpc, Done) else rpc

    async def code(self) -> grpc.StatusCode:
        rpc = await self._last()
        result = rpc.code()
        return await result if asyncio.iscoroutine(result) else result

    async def details(self) -> str | None:
        rpc = await self._last()
        result = rpc.details()
        return await result if asyncio.iscoroutine(result) else result  # type: ignore[no-any-return]

    async def initial_metadata(self) -> Any:
        rpc = await self._last()
        result = rpc.initial_metadata()
        return await result if asyncio.iscoroutine(result) else result

    async def trailing_metadata(self) -> Any:
        rpc = await self._last()
        result = rpc.trailing_metadata()
        return await result if asyncio.iscoroutine(result) else result

    def cancel(self) -> bool:
        return self._task.cancel()

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def done(self) -> bool:
        return self._task.done()
