"""A DNS lookup's queries share one ``timeout``: slow answers cannot add up past it.

A small UDP DNS server on 127.0.0.1 (dnspython builds the answers) serves an SRV record with
three targets and answers every query after ``delay`` seconds. Each query alone is well within
the timeout; the lookup needs seven of them (SRV, then A and AAAA per target), so it must give
up. The server is started and stopped by the test; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import dns.exception
import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from balancekit.discovery import DNS

NAME = "_http._tcp.slow.test."


class SlowDNS:
    """Answers SRV for NAME (three targets) and A for each target, ``delay`` s after asking."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.queries = 0
        self.stopped = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text()
        if question.rdtype == dns.rdatatype.SRV and name == NAME:
            records = [f"10 1 80{i} s{i}.slow.test." for i in range(3)]
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "SRV", *records))
        elif question.rdtype == dns.rdatatype.A and name.endswith(".slow.test."):
            index = int(name[1])
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", f"127.0.0.{index + 2}"))
        return response.to_wire()

    def _serve(self) -> None:
        for _ in range(100_000):  # bounded: ~5,000 s of 50 ms polls at most
            if self.stopped.is_set():
                return
            try:
                wire, client = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queries += 1
            if self.stopped.wait(self.delay):
                return
            self.sock.sendto(self._answer(wire), client)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def slow_dns() -> Iterator[SlowDNS]:
    server = SlowDNS(delay=0.15)
    yield server
    server.stop()


def source(server: SlowDNS, timeout: float) -> DNS:
    return DNS(NAME, nameservers=["127.0.0.1"], nameserver_port=server.port, timeout=timeout)


def test_a_fast_enough_server_answers_the_whole_lookup(slow_dns: SlowDNS) -> None:
    snapshot = source(slow_dns, timeout=5.0).resolve()
    assert [e.address for e in snapshot.endpoints] == [
        "127.0.0.2:800",
        "127.0.0.3:801",
        "127.0.0.4:802",
    ]


def test_slow_answers_cannot_add_up_past_the_timeout(slow_dns: SlowDNS) -> None:
    # Each answer takes 0.15 s, well within 0.5 s; seven of them do not fit. Before, the timeout
    # applied to each query and this lookup succeeded after ~1 s.
    with pytest.raises(dns.exception.Timeout):
        source(slow_dns, timeout=0.5).resolve()
    assert slow_dns.queries < 7


def test_the_async_lookup_shares_its_deadline_too(slow_dns: SlowDNS) -> None:
    with pytest.raises(dns.exception.Timeout):
        asyncio.run(source(slow_dns, timeout=0.5).resolve_async())
