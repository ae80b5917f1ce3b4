"""A real DNS server for the discovery tests: dnsmasq in the foreground on a loopback port.

SRV and host records live in the generated config file, which dnsmasq reads only at start, so
changing them means a restart (:meth:`Dnsmasq.restart`: SIGKILL by PID, start again on the same
port). A/AAAA records in the ``--addn-hosts`` file are re-read on SIGHUP (:meth:`Dnsmasq.reload`),
as dnsmasq(8) documents for SIGHUP. Every answer carries TTL 1 s (``--local-ttl=1``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from ._process import kill_and_reap

DNSMASQ = shutil.which("dnsmasq") or next(
    (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.access(p, os.X_OK)), None
)


def require_dnsmasq() -> str:
    """dnsmasq's path; skip when absent, except in CI (CI=true), where its absence fails."""
    if DNSMASQ is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("dnsmasq is missing in CI: .ci/install-system-deps should install it")
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq)")
    return DNSMASQ


def free_udp_port() -> int:
    """A loopback port free for UDP and for TCP (dnsmasq listens on both: a port whose TCP side
    was taken made it exit with 2, "address in use"); bounded tries."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no loopback port free for both UDP and TCP in 50 tries")


class Dnsmasq:
    """dnsmasq serving the domain ``test`` from generated files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.binary = require_dnsmasq()
        self.directory = directory
        self.port = free_udp_port()
        self.conf = directory / "dnsmasq.conf"
        self.hosts = directory / "hosts"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False  # once started, restarts keep the port the clients were given
        self.records: tuple[list[str], list[str]] = ([], [])
        self.hosts.write_text("")

    def write(self, srv: list[str], hosts: list[str]) -> None:
        """Write the config: ``srv`` are srv-host values, ``hosts`` host-record values."""
        self.records = (srv, hosts)
        lines = [
            f"port={self.port}",
            "listen-address=127.0.0.1",
            "bind-interfaces",
            "no-resolv",
            "no-hosts",
            "local=/test/",
            "local-ttl=1",
            f"addn-hosts={self.hosts}",
            "pid-file=",
        ]
        lines += [f"srv-host={value}" for value in srv]
        lines += [f"host-record={value}" for value in hosts]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start dnsmasq; the first start moves to another port (at most 3 times) if the
        chosen one was taken meanwhile (exit status 2: another process bound it between
        :func:`free_udp_port` and dnsmasq's bind)."""
        for attempt in range(3):
            try:
                self._start_once()
            except RuntimeError as error:
                if self.started or attempt == 2 or "exited with 2" not in str(error):
                    raise
                self.proc = None
                self.port = free_udp_port()
                self.write(*self.records)
                continue
            self.started = True
            return

    def _start_once(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--no-daemon",
                f"--port={self.port}",
                "--listen-address=127.0.0.1",
                "--no-resolv",
                "--no-hosts",
                f"--conf-file={self.conf}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until dnsmasq answers a query on its port."""
        deadline = time.monotonic() + timeout
        query = dns.message.make_query("ready.test.", "A")
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited with {self.proc.returncode}")
            try:
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
                return
            except (OSError, dns.exception.Timeout):
                time.sleep(0.05)
        raise RuntimeError("dnsmasq did not answer within 5 s")

    def reload(self) -> None:
        """SIGHUP: dnsmasq clears its cache and re-reads the addn-hosts file."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGHUP)

    def restart(self) -> None:
        """Stop by PID and start again on the same port (re-reads the config file)."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        kill_and_reap(proc)
