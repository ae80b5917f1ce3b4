"""DNS discovery against a real dnsmasq on a loopback port (skipped without dnsmasq, outside CI)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import pytest

import balancekit as bk
from balancekit.discovery import DNS, AsyncWatcher, Static, Watcher

from ._dnsmasq import Dnsmasq
from .conftest import wait_until

SRV = "_http._tcp.backend.test"
HOSTS = [f"s{i}.backend.test,127.0.0.{i + 1}" for i in range(1, 5)]


def srv(target: int, port: int, priority: int = 10, weight: int = 1) -> str:
    return f"{SRV},s{target}.backend.test,{port},{priority},{weight}"


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    server = Dnsmasq(tmp_path)
    server.write([srv(1, 8001, weight=5), srv(2, 8002), srv(3, 8003, priority=20)], HOSTS)
    server.start()
    yield server
    server.stop()


def _source(server: Dnsmasq, name: str = SRV, **options: object) -> DNS:
    return DNS(name, nameservers=["127.0.0.1"], nameserver_port=server.port, **options)  # type: ignore[arg-type]


def _members(lb: bk.Balancer) -> dict[str, int]:
    return {e.address: e.weight for e in lb.endpoints}


def test_srv_weights_and_the_best_priority_group(dnsmasq: Dnsmasq) -> None:
    snapshot = _source(dnsmasq).resolve()
    assert {e.address: e.weight for e in snapshot.endpoints} == {
        "127.0.0.2:8001": 5,
        "127.0.0.3:8002": 1,
    }
    assert snapshot.ttl == 1.0  # dnsmasq --local-ttl=1
    assert snapshot.endpoints[0].metadata["target"] == "s1.backend.test."
    every = _source(dnsmasq, all_priorities=True).resolve()
    assert {e.address for e in every.endpoints} == {
        "127.0.0.2:8001",
        "127.0.0.3:8002",
        "127.0.0.4:8003",
    }


def test_srv_changes_reach_the_balancer_within_the_ttl(dnsmasq: Dnsmasq) -> None:
    lb = bk.WeightedRoundRobin()
    # a refresh during a restart times out (0.5 s) and is retried 0.2 s later
    source = _source(dnsmasq, timeout=0.5)
    with Watcher(lb, source, min_interval=0.2, error_interval=0.2) as watcher:
        assert _members(lb) == {"127.0.0.2:8001": 5, "127.0.0.3:8002": 1}
        assert watcher.interval == 1.0  # the TTL
        held = lb.select()  # a request in flight on s1 across the change
        while held.address != "127.0.0.2:8001":
            lb.release(held)
            held = lb.select()

        # add s4 (weight 3), remove s2, give s1 weight 2
        dnsmasq.write(
            [srv(1, 8001, weight=2), srv(3, 8003, priority=20), srv(4, 8004, weight=3)], HOSTS
        )
        dnsmasq.restart()
        wanted = {"127.0.0.2:8001": 2, "127.0.0.5:8004": 3}
        assert wait_until(lambda: _members(lb) == wanted, timeout=1.0 + 3.0), _members(lb)
        assert lb.stats()["127.0.0.2:8001"].in_flight == 1  # accounting survived the update
        lb.release(held)
        assert lb.stats()["127.0.0.2:8001"].in_flight == 0

        # the whole best group goes: the standby priority takes over
        dnsmasq.write([srv(3, 8003, priority=20)], HOSTS)
        dnsmasq.restart()
        assert wait_until(lambda: _members(lb) == {"127.0.0.4:8003": 1}, timeout=4.0)
        assert watcher.errors == 0


def test_no_answer_or_no_server_keeps_the_current_endpoints(dnsmasq: Dnsmasq) -> None:
    lb = bk.RoundRobin()
    errors: list[BaseException] = []
    watcher = Watcher(
        lb,
        _source(dnsmasq, timeout=0.3),
        min_interval=0.2,
        error_interval=0.2,
        on_error=errors.append,
    )
    with watcher:
        before = _members(lb)
        dnsmasq.write([], HOSTS)  # every SRV record removed: NXDOMAIN
        dnsmasq.restart()
        empty = bk.discovery.DiscoveryError
        # (a refresh during the restart may time out first: look for the empty answer)
        assert wait_until(lambda: any(isinstance(e, empty) for e in errors), timeout=4.0)
        dnsmasq.stop()  # no DNS server at all: timeouts
        seen = len(errors)
        assert wait_until(lambda: len(errors) > seen, timeout=4.0)
        assert isinstance(errors[-1], dns.exception.Timeout)
        assert _members(lb) == before
        assert watcher.last_error is not None


def test_a_records_reload_on_sighup_through_an_asyncio_watcher(dnsmasq: Dnsmasq) -> None:
    dnsmasq.hosts.write_text("127.0.0.5 web.test\n127.0.0.6 web.test\n")
    dnsmasq.restart()  # read at start; a SIGHUP below (applied asynchronously) for the change
    lb = bk.LeastConnections()

    async def main() -> None:
        source = _source(dnsmasq, "web.test", port=8080, ipv6=False)
        async with AsyncWatcher(lb, source, min_interval=0.2) as watcher:
            assert set(_members(lb)) == {"127.0.0.5:8080", "127.0.0.6:8080"}
            dnsmasq.hosts.write_text("127.0.0.6 web.test\n127.0.0.7 web.test\n")
            dnsmasq.reload()  # SIGHUP re-reads the addn-hosts file
            for _ in range(40):  # bounded: 40 * 0.1 s
                if set(_members(lb)) == {"127.0.0.6:8080", "127.0.0.7:8080"}:
                    break
                await asyncio.sleep(0.1)
            assert set(_members(lb)) == {"127.0.0.6:8080", "127.0.0.7:8080"}
            assert watcher.refreshes >= 2

    asyncio.run(main())


def test_static_sources_are_applied_once() -> None:
    lb = bk.RoundRobin()
    with Watcher(lb, Static(["10.0.0.1:80", bk.Endpoint("10.0.0.2:80", weight=2)])) as watcher:
        assert _members(lb) == {"10.0.0.1:80": 1, "10.0.0.2:80": 2}
        assert watcher.interval == math.inf


def test_watcher_options_are_validated() -> None:
    lb = bk.RoundRobin()
    with pytest.raises(bk.InvalidOption):
        Watcher(lb, Static([]), min_interval=0)
    with pytest.raises(bk.InvalidOption):
        Watcher(lb, object())  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption):
        DNS("_http._tcp.x", nameserver_port=0)
