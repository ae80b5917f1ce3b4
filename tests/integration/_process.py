"""Ending the child processes the integration tests start (test servers, dnsmasq)."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def kill_and_reap(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL ``proc`` by its PID unless it has already exited, then wait for it (10 s at most)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
