"""A server process is SIGKILLed and restarted under a steady stream of GETs: nobody notices.

The stream runs in a client thread (or task) through each integration. The dead server is
taken out of rotation by the balancer's health tracker, either through the one the integration
attaches (a refused connection ejects at once) or through the balancer's own passive health
(``bk.with_health``: a failed release ejects it), with connection ejection off. Either way
ejection runs on the balancer's clock, which the test controls, so "the dead server gets no
traffic" is exact, not a race: after the kill, it receives at most the attempts
that discovered it dead (each retried elsewhere), and after the restart it receives traffic
again once its ejection period is over.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
import requests

import balancekit as bk
from balancekit.integrations.httpx import AsyncBalancedTransport, BalancedTransport
from balancekit.integrations.requests import BalancedAdapter

from .conftest import ServerProcess, wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Stream:
    """GETs sent one after another until stopped (at most 20 000 or 60 s)."""

    def __init__(self) -> None:
        self.served: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def record(self, send: Callable[[], str]) -> None:
        try:
            self.served[send()] += 1
        except Exception as error:
            self.errors.append(error)

    def total(self) -> int:
        return sum(self.served.values())


def _sync_runner(
    kind: str, lb: bk.Balancer, stream: Stream, eject: float | None
) -> Callable[[], None]:
    def run() -> None:
        deadline = time.monotonic() + 60
        if kind == "httpx":
            transport = BalancedTransport(lb, eject=eject, max_eject=30.0)
            with httpx.Client(base_url="http://backend", transport=transport) as client:
                for _ in range(20_000):
                    if stream.stop.is_set() or time.monotonic() > deadline:
                        break
                    stream.record(lambda: str(client.get("/").json()["id"]))
        else:
            session = requests.Session()
            session.mount("http://backend/", BalancedAdapter(lb, eject=eject))
            with session:
                for _ in range(20_000):
                    if stream.stop.is_set() or time.monotonic() > deadline:
                        break
                    stream.record(lambda: str(session.get("http://backend/").json()["id"]))

    return run


def _async_runner(lb: bk.Balancer, stream: Stream, eject: float | None) -> Callable[[], None]:
    async def main() -> None:
        deadline = time.monotonic() + 60
        transport = AsyncBalancedTransport(lb, eject=eject)
        async with httpx.AsyncClient(base_url="http://backend", transport=transport) as client:
            for _ in range(20_000):
                if stream.stop.is_set() or time.monotonic() > deadline:
                    break
                try:
                    response = await client.get("/")
                    stream.served[str(response.json()["id"])] += 1
                except Exception as error:
                    stream.errors.append(error)

    return lambda: asyncio.run(main())


@pytest.mark.parametrize("health", ["connect-ejection", "passive-health"])
@pytest.mark.parametrize("kind", ["httpx", "httpx-async", "requests"])
def test_kill_and_restart_a_server_under_load(
    kind: str, health: str, server_processes: Callable[[int], list[ServerProcess]]
) -> None:
    pool = server_processes(3)
    victim = pool[1]
    clock = FakeClock()
    eject: float | None = 1.0
    lb = bk.RoundRobin([s.address for s in pool], clock=clock)
    if health == "passive-health":
        eject = None  # the balancer's own outlier detection does the ejecting
        lb = bk.with_health(lb, bk.PassiveHealth(consecutive_failures=1, base_ejection=1.0))
    stream = Stream()
    if kind == "httpx-async":
        run = _async_runner(lb, stream, eject)
    else:
        run = _sync_runner(kind, lb, stream, eject)
    client = threading.Thread(target=run, daemon=True)
    client.start()
    try:
        assert wait_until(lambda: stream.total() >= 30), "the stream did not start"
        assert stream.served[victim.ident] >= 5

        victim.kill()  # SIGKILL by its PID
        killed_at = lb.stats()[victim.address].selected
        before = stream.total()
        assert wait_until(lambda: stream.total() >= before + 60), "the stream stalled"
        dead = lb.stats()[victim.address]
        assert dead.ejected and dead.up  # ejected by health, never marked down
        # at most the attempt in flight at the kill and the one that found it dead
        assert dead.selected - killed_at <= 2, dead
        served_while_dead = stream.served[victim.ident]

        victim.start()  # the same port again
        clock.now += 31.0  # its ejection period (at most max_eject) is over
        assert wait_until(lambda: stream.served[victim.ident] >= served_while_dead + 5), (
            "the restarted server got no traffic"
        )
        back = lb.stats()[victim.address]
        assert back.up and not back.ejected
    finally:
        stream.stop.set()
        client.join(timeout=30)
    assert not client.is_alive()
    assert stream.errors == []  # zero failed requests for the client
    assert stream.total() >= 95
