"""Ending the child processes the integration tests start (test servers, dnsmasq)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
from typing import Any


def kill_and_reap(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL ``proc`` by its PID unless it has already exited, then wait for it (10 s at most)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def start_announcing(
    command: list[str], what: str, *, timeout: float = 20.0, stdin: bool = False
) -> tuple[subprocess.Popen[str], int]:
    """Start a test server that prints ``PORT <n>`` once it listens; return it and the port.

    The wait is bounded by ``timeout``; a server that says anything else, or nothing, is killed
    by its PID and the failure raised. ``stdin=True`` gives the child a pipe it may watch to
    stop by itself if this process dies without killing it.
    """
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stdin=subprocess.PIPE if stdin else None, text=True
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("PORT "):
        stop(proc)
        raise RuntimeError(f"{what} did not start: {line!r}")
    return proc, int(line.split()[1])


def stop(proc: subprocess.Popen[Any]) -> None:
    """:func:`kill_and_reap`, then close the pipes this process holds to it."""
    kill_and_reap(proc)
    for pipe in (proc.stdout, proc.stdin):
        if pipe is not None:
            pipe.close()
