"""httpx sync and async transports against real servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

import balancekit as bk
from balancekit.integrations.httpx import AsyncBalancedTransport, BalancedTransport

from ._server import ThreadServer

Start = Callable[..., list[ThreadServer]]


def _count(client: httpx.Client, n: int, path: str = "/") -> Counter[str]:
    return Counter(client.get(path).json()["id"] for _ in range(n))


def _idle(lb: bk.Balancer) -> bool:
    return all(s.in_flight == 0 for s in lb.stats().values())


def _closed_port() -> str:
    """An address on loopback where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.9", 0))
        return f"127.0.0.9:{sock.getsockname()[1]}"


def test_round_robin_is_exact_and_keeps_the_logical_host(servers: Start) -> None:
    pool = servers(3)
    lb = bk.RoundRobin([s.address for s in pool])
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as client:
        assert _count(client, 30) == {"s1": 10, "s2": 10, "s3": 10}
        answer = client.get("/users/7?x=1")
    assert answer.json()["host"] == "backend"
    assert answer.json()["path"] == "/users/7?x=1"
    assert str(answer.request.url) == "http://backend/users/7?x=1"
    assert _idle(lb)
    assert sum(s.succeeded for s in lb.stats().values()) == 31


def test_weighted_round_robin_follows_weights(servers: Start) -> None:
    pool = servers(3)
    lb = bk.WeightedRoundRobin(
        [bk.Endpoint(s.address, weight=w) for s, w in zip(pool, [3, 2, 1], strict=True)]
    )
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as client:
        assert _count(client, 60) == {"s1": 30, "s2": 20, "s3": 10}


def test_least_connections_shares_sequential_requests_evenly(servers: Start) -> None:
    pool = servers(3)
    lb = bk.LeastConnections([s.address for s in pool])
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as client:
        assert _count(client, 30) == {"s1": 10, "s2": 10, "s3": 10}
    assert _idle(lb)


def test_hashing_by_a_header_keeps_each_user_on_one_server(servers: Start) -> None:
    pool = servers(3)
    lb = bk.IPHash([s.address for s in pool], key=bk.keys.header("x-user"))
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as client:
        seen: dict[str, set[str]] = {}
        for i in range(60):
            user = f"user-{i % 20}"
            server = client.get("/", headers={"x-user": user}).json()["id"]
            seen.setdefault(user, set()).add(server)
    assert all(len(servers_) == 1 for servers_ in seen.values())
    assert len(set().union(*seen.values())) >= 2


def test_host_header_endpoint_sends_the_endpoint_address(servers: Start) -> None:
    (server,) = servers(1)
    lb = bk.RoundRobin([server.address])
    transport = BalancedTransport(lb, host_header="endpoint")
    with httpx.Client(base_url="http://backend", transport=transport) as client:
        assert client.get("/").json()["host"] == server.address


def test_least_response_time_sends_little_to_a_slow_server(servers: Start) -> None:
    pool = servers(3, delays={0: 0.05})  # s1, first in line, answers 50 ms late
    lb = bk.LeastResponseTime([s.address for s in pool])
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as client:
        counts = _count(client, 150)
    assert counts["s1"] >= 1  # it was tried ...
    assert counts["s1"] * 10 < counts["s2"] + counts["s3"], counts  # ... and then avoided
    stats = lb.stats()
    slow, fast = stats[pool[0].address].latency, stats[pool[1].address].latency
    assert slow is not None and fast is not None and slow > fast


def test_streamed_response_stays_in_flight_until_closed(servers: Start) -> None:
    pool = servers(2)
    lb = bk.LeastConnections([s.address for s in pool])
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as client:
        with client.stream("GET", "/big") as response:
            owner = response.headers["x-server"]
            address = next(s.address for s in pool if s.ident == owner)
            assert lb.stats()[address].in_flight == 1
            # the busy server is avoided while the stream is open
            assert client.get("/").json()["id"] != owner
            body = response.read()
        assert len(body) == 256 * 1024
        assert _idle(lb)


def test_connection_refused_is_retried_elsewhere_and_ejected(servers: Start) -> None:
    pool = servers(2)
    dead = _closed_port()
    lb = bk.RoundRobin([dead, *(s.address for s in pool)])
    transport = BalancedTransport(lb, eject=60.0, max_eject=60.0)
    with httpx.Client(base_url="http://backend", transport=transport) as client:
        counts = _count(client, 20)
        posted = client.post("/", content=b"data")  # nothing was sent: any method is retried
    assert posted.status_code == 200
    assert counts == {"s1": 10, "s2": 10}
    assert lb.stats()[dead].failed == 1 and lb.stats()[dead].ejected
    assert transport.health is not None and transport.health.ejected() == [dead]


def test_a_drain_during_an_ejection_outlasts_it(servers: Start) -> None:
    """Issue 10, item 13: an operator's mark_down is never undone when an ejection ends."""
    pool = servers(2)
    dead = _closed_port()
    lb = bk.RoundRobin([dead, *(s.address for s in pool)])
    transport = BalancedTransport(lb, eject=0.05, max_eject=0.05)
    with httpx.Client(base_url="http://backend", transport=transport) as client:
        assert client.get("/").status_code == 200  # dead refused it: ejected, retried elsewhere
        lb.mark_down(dead)  # the operator drains it meanwhile
        time.sleep(0.1)  # the ejection is over
        assert _count(client, 10) == {"s1": 5, "s2": 5}
        assert lb.stats()[dead].selected == 1 and not lb.stats()[dead].up  # still drained
        lb.mark_up(dead)
        assert _count(client, 10) == {"s1": 5, "s2": 5}  # refused again, and retried
    assert lb.stats()[dead].selected == 2 and lb.stats()[dead].up
    assert lb.stats()[dead].ejected


def test_any_number_of_dead_servers_sit_out_while_one_answers(servers: Start) -> None:
    (live,) = servers(1)
    dead = [_closed_port(), _closed_port()]
    lb = bk.RoundRobin([*dead, live.address])
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as client:
        assert _count(client, 20) == {"s1": 20}
    assert [lb.stats()[address].selected for address in dead] == [1, 1]  # found dead, once


def test_a_refused_connection_ejects_through_the_balancers_own_health(servers: Start) -> None:
    pool = servers(2)
    dead = _closed_port()
    passive = bk.PassiveHealth(consecutive_failures=5, base_ejection=60.0)
    lb = bk.with_health(bk.RoundRobin([dead, *(s.address for s in pool)]), passive)
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as client:
        assert _count(client, 20) == {"s1": 10, "s2": 10}
    tracker = bk.health_of(lb)
    assert tracker is not None and tracker.ejected() == [dead]  # at once, not after 5
    assert lb.stats()[dead].selected == 1 and lb.stats()[dead].up  # one mechanism: no mark_down


def test_broken_connection_is_retried_only_for_idempotent_methods(servers: Start) -> None:
    pool = servers(2)
    lb = bk.RoundRobin([s.address for s in pool])
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as client:
        # /hangup closes the connection unanswered on every server: a GET is tried on both
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/hangup")
        assert sum(s.failed for s in lb.stats().values()) == 2
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/hangup", content=b"x")  # may have been processed: not retried
        assert sum(s.failed for s in lb.stats().values()) == 3
    assert all(s.up for s in lb.stats().values())  # an answer-less close is no reason to eject


def test_server_errors_count_as_failures_but_are_returned(servers: Start) -> None:
    (server,) = servers(1)
    lb = bk.RoundRobin([server.address])
    transport = BalancedTransport(lb, ok_status=lambda status: status < 400)
    with httpx.Client(base_url="http://backend", transport=transport) as client:
        assert client.get("/status/503").status_code == 503
        assert client.get("/status/404").status_code == 404
        assert client.get("/").status_code == 200
    stats = lb.stats()[server.address]
    assert (stats.failed, stats.succeeded) == (2, 1)


def test_an_empty_pool_raises_a_connect_error_that_is_also_no_endpoint_available() -> None:
    lb = bk.RoundRobin()
    transport = BalancedTransport(lb)
    with (
        httpx.Client(base_url="http://backend", transport=transport) as client,
        pytest.raises(httpx.ConnectError) as caught,
    ):
        client.get("/")
    assert isinstance(caught.value, bk.NoEndpointAvailable)


def test_options_are_validated() -> None:
    lb = bk.RoundRobin(["127.0.0.1:1"])
    for options in ({"host_header": "x"}, {"eject": -1}, {"retry": 3}, {"ok_status": 5}):
        with pytest.raises(bk.InvalidOption):
            BalancedTransport(lb, **options)
    with pytest.raises(bk.InvalidOption):
        BalancedTransport("not a balancer")  # type: ignore[arg-type]


async def _async_counts(lb: bk.Balancer, n: int, concurrency: int) -> Counter[str]:
    transport = AsyncBalancedTransport(lb)
    async with httpx.AsyncClient(base_url="http://backend", transport=transport) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> str:
            async with semaphore:
                response = await client.get("/")
                return str(response.json()["id"])

        return Counter(await asyncio.gather(*(one() for _ in range(n))))


def test_async_round_robin_is_exact_under_concurrency(servers: Start) -> None:
    pool = servers(3)
    lb = bk.RoundRobin([s.address for s in pool])
    assert asyncio.run(_async_counts(lb, 30, 10)) == {"s1": 10, "s2": 10, "s3": 10}
    assert _idle(lb)


def test_async_least_connections_avoids_a_slow_server(servers: Start) -> None:
    pool = servers(3, delays={0: 0.1})
    lb = bk.LeastConnections([s.address for s in pool])
    counts = asyncio.run(_async_counts(lb, 120, 6))
    assert counts["s1"] * 2 < min(counts["s2"], counts["s3"]), counts
    assert _idle(lb)


def test_async_retries_a_refused_connection(servers: Start) -> None:
    pool = servers(1)
    dead = _closed_port()
    lb = bk.RoundRobin([dead, pool[0].address])
    assert asyncio.run(_async_counts(lb, 10, 1)) == {"s1": 10}
    assert lb.stats()[dead].failed == 1


def test_async_stream_releases_on_close(servers: Start) -> None:
    (server,) = servers(1)
    lb = bk.LeastConnections([server.address])

    async def main() -> int:
        transport = AsyncBalancedTransport(lb)
        async with httpx.AsyncClient(base_url="http://backend", transport=transport) as client:
            async with client.stream("GET", "/big") as response:
                assert lb.stats()[server.address].in_flight == 1
                size = len(await response.aread())
            assert _idle(lb)
            return size

    assert asyncio.run(main()) == 256 * 1024


def test_refused_connections_are_retried_at_once_without_spending_the_budget(
    servers: Start,
) -> None:
    pool = servers(2)
    dead = _closed_port()
    lb = bk.RoundRobin([dead, *(s.address for s in pool)])
    retry = bk.Retry(backoff=60.0)  # a backoff would show: connection retries take none
    transport = AsyncBalancedTransport(lb, retry=retry, eject=None)  # every pick of dead fails

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url="http://backend", transport=transport) as client:
            responses = await asyncio.gather(*(client.get("/") for _ in range(90)))
            return [r.status_code for r in responses]

    assert asyncio.run(main()) == [200] * 90  # 30 concurrent failures, none seen by the caller
    assert lb.stats()[dead].failed >= 20  # about a third of the first attempts
    assert retry.budget is not None and retry.budget.retries == 0 and retry.budget.denied == 0
    assert _idle(lb)


def test_retries_after_sending_spend_the_budget(servers: Start) -> None:
    pool = servers(2)
    lb = bk.RoundRobin([s.address for s in pool])
    retry = bk.Retry(budget=bk.RetryBudget(ratio=0.1, burst=1.0), backoff=0.0)
    transport = BalancedTransport(lb, retry=retry)
    with httpx.Client(base_url="http://backend", transport=transport) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/hangup")  # tried on both: one retry, the budget's only token
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/hangup")  # no token left: not retried
    assert retry.budget is not None and (retry.budget.retries, retry.budget.denied) == (1, 1)
    assert sum(s.failed for s in lb.stats().values()) == 3
