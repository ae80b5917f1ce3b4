"""Every attempt of every request is released exactly once, whatever the inner transport does.

A scripted inner transport answers each attempt with what hypothesis draws: a 200, a 503 the
policy rejects, a refused connection, a broken one, a read timeout, a status whose ``ok_status``
raises, or an interrupt. After each request (its body read and closed, or its exception
caught), no lease is out, every lease issued is counted once (succeeded + failed + cancelled),
and every response the inner transport produced was closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.integrations.httpx import AsyncBalancedTransport, BalancedTransport

ACTIONS = ["200", "503", "connect", "broken", "timeout", "bug", "interrupt"]
ADDRESSES = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"]
BUG = 299  # ok_status raises on it


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, closes: list[int], index: int) -> None:
        self._closes = closes
        self._index = index

    def __iter__(self) -> Iterator[bytes]:
        yield b"body"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"body"

    def close(self) -> None:
        self._closes[self._index] += 1

    async def aclose(self) -> None:
        self.close()


class Scripted(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Answers attempts from a script (then 200s); counts how often each response is closed."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.closes: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        action = self.script.pop(0) if self.script else "200"
        if action == "connect":
            raise httpx.ConnectError("refused", request=request)
        if action == "broken":
            raise httpx.RemoteProtocolError("closed", request=request)
        if action == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if action == "interrupt":
            raise KeyboardInterrupt
        status = {"200": 200, "503": 503, "bug": BUG}[action]
        self.closes.append(0)
        return httpx.Response(status, stream=Body(self.closes, len(self.closes) - 1))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.handle_request(request)


def ok_status(status: int) -> bool:
    if status == BUG:
        raise ValueError("a bug in ok_status")
    return status < 500


def check(lb: bk.BalancerBase, inner: Scripted) -> None:
    stats = lb.stats().values()
    assert all(s.in_flight == 0 for s in stats)
    assert sum(s.selected for s in stats) == sum(
        s.succeeded + s.failed + s.cancelled for s in stats
    )
    assert all(closes >= 1 for closes in inner.closes), inner.closes
    lb._check_invariants()


def setup(
    strategy: type[bk.BalancerBase], script: list[str], burst: int, health: bool
) -> tuple[bk.BalancerBase, Scripted, bk.Retry]:
    lb = strategy(ADDRESSES, clock=lambda: 0.0)
    if health:
        lb = bk.with_health(lb, bk.PassiveHealth(consecutive_failures=2, max_ejection_share=0.5))
    retry = bk.Retry(
        retry_result=lambda r: r.status_code == 503,
        backoff=0.0,
        budget=bk.RetryBudget(burst=burst),
    )
    return lb, Scripted(script), retry


def requests_drawn(actions: list[str]) -> st.SearchStrategy[list[tuple[str, list[str]]]]:
    methods = st.sampled_from(["GET", "POST"])
    scripts = st.lists(st.sampled_from(actions), max_size=4)
    return st.lists(st.tuples(methods, scripts), min_size=1, max_size=8)


#: asyncio stops its loop on a KeyboardInterrupt in a task: the async test cancels instead
ASYNC_ACTIONS = [action for action in ACTIONS if action != "interrupt"]
STRATEGIES = [bk.RoundRobin, bk.LeastConnections, bk.LeastResponseTime, bk.PeakEWMA]


@settings(max_examples=60, deadline=None)
@given(
    strategy=st.sampled_from(STRATEGIES),
    drawn=requests_drawn(ACTIONS),
    burst=st.integers(1, 3),
    health=st.booleans(),
)
def test_sync_attempts_are_each_released_once(
    strategy: type[bk.BalancerBase], drawn: list[tuple[str, list[str]]], burst: int, health: bool
) -> None:
    lb, inner, retry = setup(strategy, [], burst, health)
    transport = BalancedTransport(lb, transport=inner, retry=retry, ok_status=ok_status)
    with httpx.Client(base_url="http://backend", transport=transport) as client:
        for method, script in drawn:
            inner.script = list(script)
            with contextlib.suppress(httpx.TransportError, ValueError, KeyboardInterrupt):
                client.request(method, "/", content=b"x").read()
            check(lb, inner)


@settings(max_examples=40, deadline=None)
@given(
    strategy=st.sampled_from(STRATEGIES),
    drawn=requests_drawn(ASYNC_ACTIONS),
    burst=st.integers(1, 3),
    cancel_after=st.sampled_from([None, 0, 1, 2]),
)
def test_async_attempts_are_each_released_once(
    strategy: type[bk.BalancerBase],
    drawn: list[tuple[str, list[str]]],
    burst: int,
    cancel_after: int | None,
) -> None:
    lb, inner, retry = setup(strategy, [], burst, False)
    transport = AsyncBalancedTransport(lb, transport=inner, retry=retry, ok_status=ok_status)

    async def main() -> None:
        async with httpx.AsyncClient(base_url="http://backend", transport=transport) as client:
            for method, script in drawn:
                inner.script = list(script)
                request = asyncio.ensure_future(client.request(method, "/", content=b"x"))
                for _ in range(cancel_after or 0):
                    await asyncio.sleep(0)
                if cancel_after is not None:
                    request.cancel()
                with contextlib.suppress(httpx.TransportError, ValueError, asyncio.CancelledError):
                    await request
                check(lb, inner)

    asyncio.run(main())


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_cancelled_async_request_during_its_backoff_is_released_once(
    strategy: type[bk.BalancerBase],
) -> None:
    lb, inner, _ = setup(strategy, ["503"], 3, False)
    retry = bk.Retry(  # Random(0) draws a first backoff of 8.4 s: the cancel comes first
        retry_result=lambda r: r.status_code == 503,
        backoff=10.0,
        max_backoff=10.0,
        rng=random.Random(0),
    )
    transport = AsyncBalancedTransport(lb, transport=inner, retry=retry)

    async def main() -> None:
        async with httpx.AsyncClient(base_url="http://backend", transport=transport) as client:
            request = asyncio.ensure_future(client.get("/"))
            for _ in range(20):  # until it waits its backoff (at most 10 s, drawn with jitter)
                await asyncio.sleep(0)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request

    asyncio.run(main())
    check(lb, inner)
    assert inner.closes == [1]  # the rejected 503 it held was closed
    assert sum(s.failed for s in lb.stats().values()) == 1
