"""Cancelled requests against a real 50 ms server teach the balancer nothing (issue 10, item 9).

``asyncio.wait_for(client.get(...), 0.01)`` gives up before the server answers: each lease is
given back uncounted (``Balancer.cancel``), so the balancer never records a success, a failure
or a 10 ms latency for a server that takes 50 ms. Likewise an interrupt while a body is read,
and a stream the reader abandons (unless its status already said it failed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx
import pytest
import requests

import balancekit as bk
from balancekit.integrations.httpx import AsyncBalancedTransport, BalancedTransport
from balancekit.integrations.requests import BalancedAdapter

from ._server import ThreadServer

Start = Callable[..., list[ThreadServer]]
CANCELLED = 10


def _counts(lb: bk.Balancer, address: str) -> tuple[int, int, int, int]:
    stats = lb.stats()[address]
    return stats.succeeded, stats.failed, stats.cancelled, stats.in_flight


def test_wait_for_cancelling_httpx_calls_records_no_outcome_and_no_latency(
    servers: Start,
) -> None:
    (server,) = servers(1, delays={0: 0.05})
    lb = bk.LeastResponseTime([server.address])

    async def main() -> None:
        transport = AsyncBalancedTransport(lb)
        async with httpx.AsyncClient(base_url="http://backend", transport=transport) as client:
            for _ in range(CANCELLED):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.get("/"), 0.01)
            assert _counts(lb, server.address) == (0, 0, CANCELLED, 0)
            assert lb.stats()[server.address].latency is None  # no sample at all
            await client.get("/")  # one answer: the estimate is what the server takes

    asyncio.run(main())
    latency = lb.stats()[server.address].latency
    assert latency is not None and latency >= 0.05
    assert _counts(lb, server.address) == (1, 0, CANCELLED, 0)


def test_wait_for_cancelling_retry_acall_records_no_outcome(servers: Start) -> None:
    (server,) = servers(1, delays={0: 0.05})
    lb = bk.LeastResponseTime([server.address])
    retry = bk.Retry()

    async def main() -> None:
        async with httpx.AsyncClient() as client:

            async def send(endpoint: bk.Endpoint) -> httpx.Response:
                return await client.get(f"http://{endpoint.address}/")

            for _ in range(CANCELLED):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(retry.acall(lb, send), 0.01)

    asyncio.run(main())
    assert _counts(lb, server.address) == (0, 0, CANCELLED, 0)
    assert lb.stats()[server.address].latency is None
    assert retry.budget is not None and retry.budget.successes == 0


@pytest.mark.parametrize("kind", ["httpx", "requests"])
@pytest.mark.parametrize(("path", "counted"), [("/big", "cancelled"), ("/status/503", "failed")])
def test_an_interrupted_body_is_uncounted_unless_its_status_failed(
    kind: str, path: str, counted: str, servers: Start
) -> None:
    (server,) = servers(1)
    lb = bk.LeastConnections([server.address])
    with pytest.raises(KeyboardInterrupt):
        if kind == "httpx":
            transport = BalancedTransport(lb)
            with (
                httpx.Client(base_url="http://backend", transport=transport) as client,
                client.stream("GET", path) as response,
            ):
                for _ in response.iter_raw(1024):
                    raise KeyboardInterrupt  # ^C while the body is read
        else:
            with requests.Session() as session:
                session.mount("http://backend/", BalancedAdapter(lb))
                with session.get(f"http://backend{path}", stream=True) as answer:
                    for _ in answer.iter_content(1024):
                        raise KeyboardInterrupt
    stats = lb.stats()[server.address]
    assert (stats.succeeded, stats.failed, stats.cancelled, stats.in_flight) == (
        0,
        counted == "failed",
        counted == "cancelled",
        0,
    )


def test_a_cancelled_async_stream_is_uncounted(servers: Start) -> None:
    (server,) = servers(1)
    lb = bk.LeastConnections([server.address])

    async def read_then_cancel() -> None:
        transport = AsyncBalancedTransport(lb)
        async with (
            httpx.AsyncClient(base_url="http://backend", transport=transport) as client,
            client.stream("GET", "/big") as response,
        ):
            async for _ in response.aiter_raw(1024):
                raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(read_then_cancel())
    assert _counts(lb, server.address) == (0, 0, 1, 0)
