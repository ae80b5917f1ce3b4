"""Fixtures for the integration tests: real HTTP servers on loopback, in threads or processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._grpc_fixture import grpc_servers  # noqa: F401  (gRPC server processes, for test_grpc*)
from ._process import start_announcing, stop
from ._redis import RedisServer
from ._server import ThreadServer

SERVER_SCRIPT = Path(__file__).with_name("_server.py")


@pytest.fixture
def servers() -> Iterator[Callable[..., list[ThreadServer]]]:
    """Start ``n`` thread servers on 127.0.0.2, .3, ... (ids s1, s2, ...); all stopped after.

    ``delays`` and ``failures`` map a server's index to its delay and its share of 503s."""
    started: list[ThreadServer] = []

    def start(
        n: int,
        *,
        delays: dict[int, float] | None = None,
        failures: dict[int, float] | None = None,
    ) -> list[ThreadServer]:
        for i in range(n):
            delay = (delays or {}).get(i, 0.0)
            failing = (failures or {}).get(i, 0.0)
            started.append(
                ThreadServer(f"127.0.0.{i + 2}", f"s{i + 1}", delay=delay, failures=failing)
            )
        return started[-n:]

    yield start
    for server in started:
        server.stop()


class ServerProcess:
    """A server in its own process, started, killed (SIGKILL) and restarted by its own PID."""

    def __init__(self, host: str, ident: str) -> None:
        self.host = host
        self.ident = ident
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        assert self.proc is None
        command = [sys.executable, str(SERVER_SCRIPT), "--host", self.host, "--port"]
        command += [str(self.port), "--id", self.ident]
        self.proc, self.port = start_announcing(command, f"server {self.ident}", timeout=10.0)

    def kill(self) -> None:
        """SIGKILL the process by its PID and reap it."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        stop(proc)


@pytest.fixture
def server_processes() -> Iterator[Callable[[int], list[ServerProcess]]]:
    """Start ``n`` server processes on 127.0.0.2, .3, ...; every one killed by PID after."""
    started: list[ServerProcess] = []

    def start(n: int) -> list[ServerProcess]:
        for i in range(n):
            server = ServerProcess(f"127.0.0.{i + 2}", f"p{i + 1}")
            started.append(server)
            server.start()
        return started[-n:]

    yield start
    for server in started:
        server.kill()


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 10 ms for at most ``timeout`` seconds; whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server on a free loopback port, killed by PID after the test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
