"""A real etcd for the discovery tests: one member on free loopback ports, data in a tmp dir.

:class:`EtcdServer` starts ``etcd`` (Debian's ``etcd-server``; .ci/install-system-deps installs
it), stops it by its own PID (SIGTERM, then SIGKILL) and starts it again on the same ports and
data directory, so the revisions go on. :meth:`put`, :meth:`delete` and :meth:`compact` talk to
it through its JSON gateway, as the source under test does, but with code of their own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

ETCD = shutil.which("etcd") or next(
    (p for p in ("/usr/bin/etcd", "/usr/local/bin/etcd") if os.access(p, os.X_OK)), None
)


def require_etcd() -> str:
    """etcd's path; skip when absent, except in CI (CI=true), where its absence fails."""
    if ETCD is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("etcd is missing in CI: .ci/install-system-deps should install it")
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    return ETCD


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _b64(text: str | bytes) -> str:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


class EtcdServer:
    """One etcd member on 127.0.0.1 (client and peer ports chosen free at construction)."""

    def __init__(self, directory: Path) -> None:
        self.binary = require_etcd()
        self.directory = directory
        self.client_port = _free_port()
        self.peer_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.client_port}"

    def start(self) -> None:
        assert self.proc is None
        peer = f"http://127.0.0.1:{self.peer_port}"
        with open(self.directory / "etcd.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--name=test",
                    f"--data-dir={self.directory / 'data'}",
                    f"--listen-client-urls={self.url}",
                    f"--advertise-client-urls={self.url}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=test={peer}",
                    "--log-level=error",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(f"{self.url}/v3/kv/range", json={"key": _b64("x")}).is_success:
                    return
            time.sleep(0.05)
        log_text = (self.directory / "etcd.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"etcd did not start: {log_text}")

    def stop(self) -> None:
        """SIGTERM the process by its PID (SIGKILL after 5 s) and reap it."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.url}{path}", json=body, timeout=5)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def put(self, key: str | bytes, value: str | bytes | dict[str, Any] = b"") -> int:
        """Put ``value`` (a dict is written as JSON) under ``key``; the new revision."""
        raw = json.dumps(value).encode() if isinstance(value, dict) else value
        answer = self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(raw)})
        return int(answer["header"]["revision"])

    def delete(self, key: str) -> int:
        return int(self._post("/v3/kv/deleterange", {"key": _b64(key)})["header"]["revision"])

    def compact(self, revision: int) -> None:
        self._post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
