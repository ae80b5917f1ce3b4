"""gRPC echo servers in their own processes (``_grpc_server.py``), started and SIGKILLed by PID."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._process import start_announcing, stop

SCRIPT = Path(__file__).with_name("_grpc_server.py")


class GrpcServer:
    """One server process: ``address`` once started; :meth:`kill` sends SIGKILL to its PID."""

    def __init__(self, ident: str, *, delay: float = 0.0, orca: str = "") -> None:
        self.ident = ident
        self.delay = delay
        self.orca = orca
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None
        command = [sys.executable, str(SCRIPT), "--id", self.ident, "--port", str(self.port)]
        command += ["--delay", str(self.delay)] + (["--orca", self.orca] if self.orca else [])
        # stdin is a pipe: the server stops by itself if this process dies without killing it
        self.proc, self.port = start_announcing(command, f"gRPC server {self.ident}", stdin=True)

    def kill(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        stop(proc)


Start = Callable[..., list[GrpcServer]]


@pytest.fixture
def grpc_servers() -> Iterator[Start]:
    """``grpc_servers(n, delays={i: s}, orca={i: "cpu,qps"})``: n started servers s0, s1, ...;
    every one killed by its PID after the test."""
    started: list[GrpcServer] = []

    def start(
        n: int, *, delays: dict[int, float] | None = None, orca: dict[int, str] | None = None
    ) -> list[GrpcServer]:
        batch = []
        for i in range(n):
            server = GrpcServer(
                f"s{len(started)}", delay=(delays or {}).get(i, 0.0), orca=(orca or {}).get(i, "")
            )
            started.append(server)
            server.start()
            batch.append(server)
        return batch

    yield start
    for server in started:
        server.kill()
