"""A streaming call of an :class:`~balancekit.integrations.grpc.AsyncBalancedChannel`.

Released from grpc.aio's done callback (judged in a task: grpc.aio's status methods are
coroutines), or by the reader when it retries a stream that failed before its first message,
as the sync :mod:`~balancekit.integrations._grpc_stream` does; a stream collected unfinished is
cancelled and goes back uncounted.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from ._call import Call
from ._grpc_common import classify, is_unavailable
from ._grpc_pool import Entry

if TYPE_CHECKING:
    from ._grpc_aio import AsyncBalancedChannel

__all__ = ["AsyncResponseStream", "Done"]


class Done:
    """A grpc.aio call that ended OK, read once: its code, details and trailers as plain
    methods (grpc.aio's are coroutines), for ``Call`` and the ORCA reader."""

    __slots__ = ("aio", "trailers")

    def __init__(self, aio: Any, trailers: Any) -> None:
        self.aio = aio
        self.trailers = trailers

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK

    def details(self) -> str | None:
        return None

    def trailing_metadata(self) -> Any:
        return self.trailers


class AsyncResponseStream:
    """A streaming call: ``async for`` its responses or ``await read()``; ``write()`` and
    ``done_writing()`` for a request stream; ``cancel()``; the status coroutines of the current
    attempt. Retries before the first message as the sync :class:`ResponseStream` does."""

    def __init__(
        self,
        channel: AsyncBalancedChannel,
        call: Call,
        start: Callable[[Entry[grpc.aio.Channel]], Any],
        *,
        retryable: bool,
        expired: bool = False,
    ) -> None:
        self._expired = expired  # started past its deadline: DEADLINE_EXCEEDED isn't the endpoint's
        self._channel = channel
        self._call = call
        self._start = start
        self._retryable = retryable
        self._received = False
        self._reader_done = False
        self._box: list[Any] = [None, False]  # the current attempt; a failure left to the reader
        self._attach()
        self._finalizer = weakref.finalize(self, _abandon, call, self._box)

    def _attach(self) -> None:
        call = self._call
        lease = call.lease
        assert lease is not None
        channel = self._channel
        entry = channel._acquire(lease)
        try:
            rpc = self._start(entry)
        except BaseException:
            channel._release(entry)
            call.cancel()  # grpcio refused the call itself: nothing was sent
            raise
        self._box[:] = [rpc, False]
        state = _Judge(channel, call, rpc, entry, weakref.ref(self), self._expired)
        rpc.add_done_callback(state.done)

    @property
    def _rpc(self) -> Any:
        return self._box[0]

    @property
    def _pending(self) -> bool:
        return bool(self._box[1])

    @_pending.setter
    def _pending(self, value: bool) -> None:
        self._box[1] = value

    def _may_retry(self, error: Any) -> bool:
        return (
            self._retryable
            and not self._received
            and not self._reader_done
            and is_unavailable(error)
        )

    async def read(self) -> Any:
        for _ in range(self._channel._options.retry.attempts + 1):
            rpc = self._rpc
            try:
                value = await rpc.read()
            except grpc.RpcError as error:
                if not self._may_retry(error):
                    self._reader_done = True
                    if self._pending:
                        self._channel._options.judge(self._call, error, expired=self._expired)
                    raise
                await self._retry(error)
                continue
            if value is grpc.aio.EOF:
                self._reader_done = True
            else:
                self._received = True
            return value
        raise AssertionError("more attempts than the retry policy allows")  # pragma: no cover

    async def _retry(self, error: grpc.RpcError) -> None:
        call = self._call
        step = call.failed(classify(error))
        if isinstance(step, float):
            if step > 0:
                try:
                    await asyncio.sleep(step)
                except BaseException:
                    call.cancel()
                    raise
            step = call.next()
        if step is None:
            self._reader_done = True
            raise error
        self._attach()

    def __aiter__(self) -> AsyncResponseStream:
        return self

    async def __anext__(self) -> Any:
        value = await self.read()
        if value is grpc.aio.EOF:
            raise StopAsyncIteration
        return value

    async def write(self, request: Any) -> None:
        await self._rpc.write(request)

    async def done_writing(self) -> None:
        await self._rpc.done_writing()

    def cancel(self) -> bool:
        return bool(self._rpc.cancel())

    def cancelled(self) -> bool:
        return bool(self._rpc.cancelled())

    def done(self) -> bool:
        return bool(self._rpc.done())

    def time_remaining(self) -> float | None:
        return self._rpc.time_remaining()  # type: ignore[no-any-return]

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._rpc.add_done_callback(lambda _: callback(self))

    async def code(self) -> grpc.StatusCode:
        return await self._rpc.code()

    async def details(self) -> str:
        return await self._rpc.details()  # type: ignore[no-any-return]

    async def initial_metadata(self) -> Any:
        return await self._rpc.initial_metadata()

    async def trailing_metadata(self) -> Any:
        return await self._rpc.trailing_metadata()

    async def wait_for_connection(self) -> None:
        await self._rpc.wait_for_connection()


def _abandon(call: Call, box: list[Any]) -> None:
    """A stream was collected (``box``: its current attempt, and whether a failure was left to
    the reader). Unfinished: cancel it, give the lease back uncounted. Finished: the done
    callback's task judges it, unless it left the failure to the reader: a failure then."""
    rpc, pending = box
    if rpc.done():
        if pending:
            call.finish(False)
        return
    rpc.cancel()
    call.cancel()


class _Judge:
    """grpc.aio's done callback for one attempt of a stream: judge it (in a task, since
    grpc.aio's status methods are coroutines) unless the reader will retry it."""

    __slots__ = ("call", "channel", "entry", "expired", "rpc", "stream")

    def __init__(
        self,
        channel: AsyncBalancedChannel,
        call: Call,
        rpc: Any,
        entry: Entry[grpc.aio.Channel],
        stream: weakref.ref[AsyncResponseStream],
        expired: bool,
    ) -> None:
        self.expired = expired
        self.channel = channel
        self.call = call
        self.rpc = rpc
        self.entry = entry
        self.stream = stream

    def done(self, rpc: Any) -> None:
        self.channel._release(self.entry)
        if not self.channel._later(self._judge()):
            self.call.cancel()  # no loop left to read the status on: give the lease back

    async def _judge(self) -> None:
        rpc = self.rpc
        code = await rpc.code()
        stream = self.stream()
        if stream is not None and stream._rpc is not rpc:
            return  # an attempt the reader has already reported and replaced
        if (
            stream is not None
            and code is grpc.StatusCode.UNAVAILABLE
            and stream._retryable
            and not stream._received
            and not stream._reader_done
        ):
            stream._pending = True
            return
        options = self.channel._options
        trailers = await rpc.trailing_metadata() if options.report is not None else None
        details = await rpc.details()
        options.judge(self.call, _Ended(code, details, trailers), expired=self.expired)


class _Ended(Done):
    """A finished grpc.aio attempt of any status, read once."""

    __slots__ = ("_code", "_details")

    def __init__(self, code: grpc.StatusCode, details: str | None, trailers: Any) -> None:
        super().__init__(None, trailers)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details
