"""Active checks against real servers on loopback that die and come back.

Servers listen on 127.0.0.1 with ports chosen by the OS; each test stops what it starts. Rounds
are driven with ``check_once`` where possible; the thread and asyncio modes wait for an outcome
in bounded loops (never asserting a duration).
"""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import balancekit as bk
from balancekit.health import (
    ActiveChecker,
    CheckFailed,
    CheckPassed,
    HealthEvent,
    HttpCheck,
    TcpCheck,
    health_of,
)


class HealthServer:
    """An HTTP server on 127.0.0.1 answering GET /health with ``status``; stop() and start()."""

    def __init__(self, port: int = 0) -> None:
        self.status = 200
        self.port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(owner.status if self.path == "/health" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = None


@pytest.fixture
def servers() -> Iterator[list[HealthServer]]:
    started = [HealthServer() for _ in range(3)]
    yield started
    for server in started:
        server.stop()


def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> bool:
    """Poll ``condition`` for at most ``limit`` seconds (a bound, not an assertion on timing)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def picks(lb: bk.BalancerBase, n: int = 30) -> set[str]:
    seen = set()
    for _ in range(n):
        lease = lb.select()
        seen.add(lease.address)
        lb.release(lease)
    return seen


def test_tcp_check_follows_a_server_that_dies_and_comes_back(servers: list[HealthServer]) -> None:
    events: list[HealthEvent] = []
    lb = bk.with_health(
        bk.RoundRobin([s.address for s in servers]),
        bk.PassiveHealth(consecutive_failures=None),
        on_event=events.append,
    )
    checker = ActiveChecker(lb, check=TcpCheck(timeout=2.0), rise=2, fall=2)
    assert checker.check_once() == {s.address: True for s in servers}
    victim = servers[1]
    victim.stop()
    assert checker.check_once()[victim.address] is False
    assert victim.address in picks(lb)  # one failure is not yet a fall
    checker.check_once()
    assert checker.down() == {victim.address}
    assert isinstance(events[-1], CheckFailed) and events[-1].address == victim.address
    assert victim.address not in picks(lb)
    victim.start()  # the same port again
    checker.check_once()
    assert victim.address not in picks(lb)  # one pass is not yet a rise
    checker.check_once()
    assert checker.down() == set()
    last = events[-1]
    assert isinstance(last, CheckPassed) and last.address == victim.address

    assert victim.address in picks(lb)


def test_an_endpoint_re_added_between_rounds_is_checked_down_again(
    servers: list[HealthServer],
) -> None:
    lb = bk.with_health(
        bk.RoundRobin([s.address for s in servers]), bk.PassiveHealth(consecutive_failures=None)
    )
    checker = ActiveChecker(lb, check=TcpCheck(timeout=2.0), rise=2, fall=2)
    victim = servers[0]
    victim.stop()
    checker.check_once()
    checker.check_once()
    assert checker.down() == {victim.address}
    lb.remove(victim.address)
    lb.add(victim.address)  # a fresh member: up until the checks say otherwise
    assert checker.down() == set()
    assert victim.address in picks(lb)
    checker.check_once()  # still failing: the streak goes on, so it falls again at once
    assert checker.down() == {victim.address}
    assert victim.address not in picks(lb)


def test_http_check_wants_the_expected_status(servers: list[HealthServer]) -> None:
    lb = bk.WeightedRoundRobin([s.address for s in servers])
    checker = ActiveChecker(lb, check=HttpCheck(path="/health", timeout=2.0), rise=1, fall=1)
    assert health_of(lb) is not None  # a tracker with passive detection off was attached
    servers[0].status = 503
    assert checker.check_once() == {
        servers[0].address: False,
        servers[1].address: True,
        servers[2].address: True,
    }
    assert picks(lb) == {servers[1].address, servers[2].address}
    servers[0].status = 200
    checker.check_once()
    assert picks(lb) == {s.address for s in servers}


def test_http_check_fails_on_a_refused_connection_and_a_non_http_answer() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer_garbage() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"nonsense\r\n\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        endpoint = bk.Endpoint(f"127.0.0.1:{port}")
        passed, detail = HttpCheck(timeout=2.0).check(endpoint)
        thread.join(5)
    assert not passed and "request failed" in detail
    passed, _ = HttpCheck(timeout=2.0).check(endpoint)  # closed now: refused
    assert not passed


def test_checks_and_passive_health_share_the_panic_threshold(servers: list[HealthServer]) -> None:
    lb = bk.with_health(
        bk.RoundRobin([s.address for s in servers]), bk.PassiveHealth(panic_threshold=0.5)
    )
    checker = ActiveChecker(lb, rise=1, fall=1, check=TcpCheck(timeout=2.0))
    servers[0].stop()
    servers[1].stop()
    checker.check_once()  # 1 of 3 healthy: panic, fail open over all three
    tracker = health_of(lb)
    assert tracker is not None and tracker.panic
    assert picks(lb) == {s.address for s in servers}


def test_thread_mode_notices_a_death_and_a_return(servers: list[HealthServer]) -> None:
    lb = bk.RoundRobin([s.address for s in servers])
    checker = ActiveChecker(lb, interval=0.02, jitter=0.5, rise=1, fall=1)
    with checker.running():
        assert wait_until(lambda: checker.rounds >= 1)
        servers[2].stop()
        assert wait_until(lambda: checker.down() == {servers[2].address})
        assert servers[2].address not in picks(lb)
        servers[2].start()
        assert wait_until(lambda: checker.down() == set())
    assert checker._thread is None


def test_asyncio_task_mode(servers: list[HealthServer]) -> None:
    lb = bk.RoundRobin([s.address for s in servers])
    checker = ActiveChecker(lb, interval=0.02, rise=1, fall=1, check=HttpCheck(timeout=2.0))

    async def scenario() -> set[str]:
        task = checker.start_task()
        try:
            for _ in range(500):  # bounded: at most ~5 s
                if checker.rounds >= 1:
                    break
                await asyncio.sleep(0.01)
            servers[0].status = 500
            for _ in range(500):
                if checker.down():
                    break
                await asyncio.sleep(0.01)
            return checker.down()
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    assert asyncio.run(scenario()) == {servers[0].address}


def test_async_tcp_check(servers: list[HealthServer]) -> None:
    endpoint = bk.Endpoint(servers[0].address)
    assert asyncio.run(TcpCheck(timeout=2.0).acheck(endpoint))[0]
    servers[0].stop()
    assert not asyncio.run(TcpCheck(timeout=2.0).acheck(endpoint))[0]


def test_removed_endpoints_are_forgotten(servers: list[HealthServer]) -> None:
    lb = bk.RoundRobin([s.address for s in servers])
    checker = ActiveChecker(lb, rise=1, fall=1)
    servers[0].stop()
    checker.check_once()
    lb.remove(servers[0].address)
    checker.check_once()
    assert checker.down() == set()


def test_jitter_keeps_the_delay_within_bounds() -> None:
    import random

    checker = ActiveChecker(bk.RoundRobin(), interval=2.0, jitter=0.25, rng=random.Random(3))
    delays = [checker.next_delay() for _ in range(200)]
    assert all(1.5 <= d <= 2.5 for d in delays) and len(set(delays)) > 100


@pytest.mark.parametrize(
    "options",
    [{"interval": 0}, {"jitter": 1.0}, {"rise": 0}, {"fall": 1.5}, {"check": 3}, {"rng": 1}],
)
def test_invalid_checker_options(options: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        ActiveChecker(bk.RoundRobin(), **options)  # type: ignore[arg-type]


def test_invalid_check_options() -> None:
    for make in (
        lambda: HttpCheck(path="health"),
        lambda: HttpCheck(expected=(700,)),
        lambda: HttpCheck(expected=()),
        lambda: HttpCheck(path="/h\u00e9alth"),  # percent-encode it instead
        lambda: HttpCheck(path="/a b"),
        lambda: HttpCheck(host="example.com\r\nX-Injected: 1"),
        lambda: HttpCheck(host=""),
        lambda: TcpCheck(timeout=0),
    ):
        with pytest.raises(bk.InvalidOption):
            make()


class Flaky:
    """A check that raises on its third call (a bug in a custom check, an unexpected error)."""

    def __init__(self) -> None:
        self.calls = 0

    def check(self, endpoint: bk.Endpoint) -> tuple[bool, str]:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("unexpected")
        return True, "ok"

    async def acheck(self, endpoint: bk.Endpoint) -> tuple[bool, str]:
        return self.check(endpoint)


def test_a_check_that_raises_is_a_failed_probe_and_the_checker_goes_on() -> None:
    lb = bk.RoundRobin(["10.0.0.1:80", "10.0.0.2:80"])
    checker = ActiveChecker(lb, check=Flaky(), rise=1, fall=1)
    assert checker.check_once() == {"10.0.0.1:80": True, "10.0.0.2:80": True}
    assert checker.check_once() == {"10.0.0.1:80": False, "10.0.0.2:80": True}
    assert checker.down() == {"10.0.0.1:80"}
    assert checker.check_once() == {"10.0.0.1:80": True, "10.0.0.2:80": True}
    assert checker.down() == set()
    flaky = ActiveChecker(lb, check=Flaky(), interval=0.01, jitter=0.0)
    with flaky.running():  # the thread survives the exception and keeps doing rounds
        deadline = time.monotonic() + 10
        while flaky.rounds < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert flaky.rounds >= 5
    verdicts = asyncio.run(ActiveChecker(lb, check=Flaky(), rise=1, fall=1).acheck_once())
    assert sorted(verdicts.values()) == [True, True]  # the async path wraps the same way


def test_a_re_added_endpoint_with_leases_out_starts_healthy() -> None:
    lb = bk.with_health(bk.RoundRobin(["a:1", "b:1"]), bk.PassiveHealth(consecutive_failures=None))
    tracker = health_of(lb)
    assert tracker is not None
    lease = lb.select(avoid={"b:1"})  # out while a:1 is removed and re-added
    tracker.set_check("a:1", False, "refused")
    lb.update(["b:1"])
    lb.update(["a:1", "b:1"])
    assert not lb.stats()["a:1"].checked_down
    assert lb.select_override("a:1") is not None  # eligible again
    assert lb.stats()["a:1"].in_flight == 2  # the old lease still counts
    lb.release(lease)
