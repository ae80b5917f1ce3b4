"""The requests adapter against real servers on loopback."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import requests

import balancekit as bk
from balancekit.integrations.requests import BalancedAdapter

from ._server import ThreadServer
from .test_httpx import _closed_port, _idle

Start = Callable[..., list[ThreadServer]]


def _session(lb: bk.Balancer, **options: object) -> requests.Session:
    session = requests.Session()
    session.mount("http://backend/", BalancedAdapter(lb, **options))  # type: ignore[arg-type]
    return session


def _count(session: requests.Session, n: int) -> Counter[str]:
    return Counter(session.get("http://backend/").json()["id"] for _ in range(n))


def test_round_robin_is_exact_with_logical_url_and_host(servers: Start) -> None:
    pool = servers(3)
    lb = bk.RoundRobin([s.address for s in pool])
    with _session(lb) as session:
        assert _count(session, 30) == {"s1": 10, "s2": 10, "s3": 10}
        response = session.get("http://backend/users/7?x=1")
    assert response.json()["host"] == "backend"
    assert response.json()["path"] == "/users/7?x=1"
    assert response.url == "http://backend/users/7?x=1"
    assert _idle(lb)


def test_weighted_round_robin_follows_weights(servers: Start) -> None:
    pool = servers(3)
    lb = bk.WeightedRoundRobin(
        [bk.Endpoint(s.address, weight=w) for s, w in zip(pool, [3, 2, 1], strict=True)]
    )
    with _session(lb) as session:
        assert _count(session, 60) == {"s1": 30, "s2": 20, "s3": 10}


def test_least_response_time_avoids_a_slow_server(servers: Start) -> None:
    pool = servers(3, delays={0: 0.05})
    lb = bk.LeastResponseTime([s.address for s in pool])
    with _session(lb) as session:
        counts = _count(session, 150)
    assert counts["s1"] >= 1 and counts["s1"] * 10 < counts["s2"] + counts["s3"], counts


def test_stream_true_stays_in_flight_until_closed(servers: Start) -> None:
    (server,) = servers(1)
    lb = bk.LeastConnections([server.address])
    with _session(lb) as session:
        with session.get("http://backend/big", stream=True) as response:
            assert lb.stats()[server.address].in_flight == 1
            size = sum(len(chunk) for chunk in response.iter_content(65536))
        assert size == 256 * 1024
        assert _idle(lb)
        response = session.get("http://backend/big", stream=True)
        response.close()  # closed unread: released too
        assert _idle(lb)


def test_refused_connections_are_retried_and_ejected(servers: Start) -> None:
    pool = servers(2)
    dead = _closed_port()
    lb = bk.RoundRobin([dead, *(s.address for s in pool)])
    with _session(lb, eject=60.0, max_eject=60.0) as session:
        assert _count(session, 20) == {"s1": 10, "s2": 10}
        assert session.post("http://backend/", data=b"x").status_code == 200
    assert lb.stats()[dead].failed == 1 and lb.stats()[dead].ejected


def test_broken_connection_is_retried_only_for_idempotent_methods(servers: Start) -> None:
    pool = servers(2)
    lb = bk.RoundRobin([s.address for s in pool])
    with _session(lb) as session:
        with pytest.raises(requests.ConnectionError):
            session.get("http://backend/hangup")
        assert sum(s.failed for s in lb.stats().values()) == 2
        with pytest.raises(requests.ConnectionError):
            session.post("http://backend/hangup", data=b"x")
        assert sum(s.failed for s in lb.stats().values()) == 3
    assert _idle(lb)


def test_server_errors_count_as_failures(servers: Start) -> None:
    (server,) = servers(1)
    lb = bk.RoundRobin([server.address])
    with _session(lb) as session:
        assert session.get("http://backend/status/503").status_code == 503
        assert session.head("http://backend/").status_code == 200
    stats = lb.stats()[server.address]
    assert (stats.failed, stats.succeeded, stats.in_flight) == (1, 1, 0)


def test_an_empty_pool_raises_connection_error_and_no_endpoint_available() -> None:
    with _session(bk.RoundRobin()) as session, pytest.raises(requests.ConnectionError) as caught:
        session.get("http://backend/")
    assert isinstance(caught.value, bk.NoEndpointAvailable)
