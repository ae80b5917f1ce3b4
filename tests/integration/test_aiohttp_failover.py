"""One of three aiohttp servers is SIGKILLed and restarted under a stream of requests from an
aiohttp session with balancekit's middleware: the client sees no failure.

As tests/integration/test_failover.py does for httpx and requests: ejection runs on the
balancer's clock, which the test controls, so "the dead server gets no more traffic" is exact.
The stream runs in an asyncio loop in a thread, several requests at a time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator

import aiohttp
import pytest

import balancekit as bk
from balancekit.integrations.aiohttp import BalancedMiddleware

from ._aiohttp_server import AiohttpServer
from .conftest import wait_until

CONCURRENCY = 4


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Stream:
    """GETs from ``CONCURRENCY`` tasks until stopped (at most 20 000 or 60 s)."""

    def __init__(self) -> None:
        self.served: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def total(self) -> int:
        return sum(self.served.values())

    def run(self, lb: bk.Balancer, eject: float | None) -> None:
        async def worker(session: aiohttp.ClientSession, deadline: float) -> None:
            for _ in range(20_000 // CONCURRENCY):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    async with session.get("/") as response:
                        self.served[str((await response.json())["id"])] += 1
                except Exception as error:
                    self.errors.append(error)

        async def main() -> None:
            deadline = time.monotonic() + 60
            middleware = BalancedMiddleware(lb, eject=eject, max_eject=30.0)
            async with aiohttp.ClientSession("http://backend", middlewares=(middleware,)) as s:
                await asyncio.gather(*(worker(s, deadline) for _ in range(CONCURRENCY)))

        asyncio.run(main())


@pytest.fixture
def pool() -> Iterator[list[AiohttpServer]]:
    servers = [AiohttpServer(f"127.0.0.{i + 2}", f"k{i + 1}") for i in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()


@pytest.mark.parametrize("health", ["connect-ejection", "passive-health"])
def test_sigkill_one_of_three_under_a_stream_no_client_failure(
    health: str, pool: list[AiohttpServer]
) -> None:
    victim = pool[1]
    clock = FakeClock()
    eject: float | None = 1.0
    lb: bk.BalancerBase = bk.RoundRobin([s.address for s in pool], clock=clock)
    if health == "passive-health":
        eject = None  # the balancer's own outlier detection does the ejecting
        lb = bk.with_health(lb, bk.PassiveHealth(consecutive_failures=1, base_ejection=1.0))
    stream = Stream()
    client = threading.Thread(target=stream.run, args=(lb, eject), daemon=True)
    client.start()
    try:
        assert wait_until(lambda: stream.total() >= 60), "the stream did not start"
        assert stream.served[victim.ident] >= 10

        killed_at = lb.stats()[victim.address].selected
        victim.kill()  # SIGKILL by its PID
        before = stream.total()
        assert wait_until(lambda: stream.total() >= before + 200), "the stream stalled"
        dead = lb.stats()[victim.address]
        assert dead.ejected and dead.up
        # the requests in flight on it at the kill, and those that found it dead
        after_kill = dead.selected - killed_at
        assert after_kill <= CONCURRENCY + 2, dead
        served_while_dead = stream.served[victim.ident]

        victim.start()  # the same port again
        clock.now += 31.0  # its ejection period (at most max_eject) is over
        assert wait_until(lambda: stream.served[victim.ident] >= served_while_dead + 10), (
            "the restarted server got no traffic"
        )
        back = lb.stats()[victim.address]
        assert back.up and not back.ejected
    finally:
        stream.stop.set()
        client.join(timeout=30)
    assert not client.is_alive()
    assert stream.errors == []  # zero failed requests for the client
    assert _idle(lb)
    print(
        f"\nSIGKILL {health}: {stream.total()} requests, 0 client errors,"
        f" {after_kill} attempts reached the killed server after the kill,"
        f" {sum(s.failed for s in lb.stats().values())} attempts failed and were retried"
    )


def _idle(lb: bk.Balancer) -> bool:
    return all(s.in_flight == 0 for s in lb.stats().values())
