"""Probes against hostile servers on loopback: a byte dripper, a huge body, endless headers.

Each server listens on 127.0.0.1 (port chosen by the OS), is started and stopped by its test, and
sends a finite amount, so a probe that did not bound itself still ends (and fails the test by its
verdict). No test asserts a duration: the servers count what they sent before the probe gave up.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk
from balancekit.health import ActiveChecker, HttpCheck, TcpCheck
from balancekit.health._wire import BODY_LIMIT, HEAD_LIMIT, ResponseReader

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

#: What a hostile server does with each connection, after reading the request.
Script = Callable[[socket.socket, threading.Event], None]


class HostileServer:
    """Accepts connections on 127.0.0.1 and runs ``script(conn, stop)`` for each, in a thread."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sent = 0  # bytes sent over all connections
        self.stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            self.sent += len(data)

    def _accept(self) -> None:
        for _ in range(100_000):  # bounded: ~5,000 s of 50 ms polls at most
            if self.stopped.is_set():
                return
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(2.0)
                conn.recv(4096)  # the request
                self.script(conn, self.stopped)
            except OSError:
                pass  # the probe hung up: what a bounded probe does

    def stop(self) -> None:
        self.stopped.set()
        self._accepter.join(5)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)


Start = Callable[[Script], "HostileServer"]


@pytest.fixture
def hostile() -> Iterator[Start]:
    started: list[HostileServer] = []

    def start(script: Script) -> HostileServer:
        started.append(HostileServer(script))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def endpoint(server: HostileServer) -> bk.Endpoint:
    return bk.Endpoint(server.address)


def drip(server_ref: list[HostileServer], every: float) -> Script:
    """Send a valid 200 response one byte at a time, ``every`` seconds apart (about 4 s in all)."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        for byte in OK:
            if stop.wait(every):
                return
            server_ref[0].send(conn, bytes([byte]))

    return script


def test_a_dripping_server_fails_the_probe_within_its_timeout(hostile: Start) -> None:
    ref: list[HostileServer] = []
    server = hostile(drip(ref, every=0.1))
    ref.append(server)
    passed, detail = HttpCheck(timeout=0.5).check(endpoint(server))
    # Before: the timeout applied to each read, so the whole response arrived (~4 s) and passed.
    assert not passed and "Timeout" in detail
    assert server.sent < len(OK)  # the probe gave up before the response was complete


def test_a_round_is_not_held_by_a_dripping_server(hostile: Start) -> None:
    ref: list[HostileServer] = []
    dripping = hostile(drip(ref, every=0.1))
    ref.append(dripping)
    healthy = hostile(lambda conn, stop: conn.sendall(OK))
    lb = bk.RoundRobin([dripping.address, healthy.address])
    checker = ActiveChecker(lb, check=HttpCheck(timeout=0.5), fall=1)
    assert checker.check_once() == {dripping.address: False, healthy.address: True}
    assert dripping.sent < len(OK)
    assert checker.down() == {dripping.address}


def test_a_huge_content_length_is_not_read_whole(hostile: Start) -> None:
    ref: list[HostileServer] = []

    def huge(conn: socket.socket, stop: threading.Event) -> None:
        ref[0].send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
        for _ in range(256):  # 1 MiB of body at most, then hold the connection
            if stop.is_set():
                return
            ref[0].send(conn, b"\0" * 4096)
        stop.wait(5)

    server = hostile(huge)
    ref.append(server)
    # Before: response.read() asked for 1e11 bytes at once: MemoryError.
    assert HttpCheck(timeout=2.0).check(endpoint(server)) == (True, "HTTP 200")


def test_endless_headers_fail_the_probe(hostile: Start) -> None:
    ref: list[HostileServer] = []

    def flood(conn: socket.socket, stop: threading.Event) -> None:
        ref[0].send(conn, b"HTTP/1.1 200 OK\r\n")
        for i in range(10_000):  # ~200 KiB of headers, never a blank line
            if stop.is_set():
                return
            ref[0].send(conn, b"X-Filler-%05d: 0123456789\r\n" % i)

    server = hostile(flood)
    ref.append(server)
    passed, detail = HttpCheck(timeout=2.0).check(endpoint(server))
    assert not passed and "exceed" in detail


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ],
)
def test_a_complete_answer_on_a_connection_kept_open_passes(hostile: Start, answer: bytes) -> None:
    """A server that ignores ``Connection: close``: the probe must see the response's end."""
    ref: list[HostileServer] = []

    def keep_open(conn: socket.socket, stop: threading.Event) -> None:
        ref[0].send(conn, answer)
        stop.wait(5)

    server = hostile(keep_open)
    ref.append(server)
    probe = HttpCheck(timeout=3.0, expected=(200, 204))
    for passed, detail in (
        probe.check(endpoint(server)),
        asyncio.run(probe.acheck(endpoint(server))),
    ):
        assert passed, detail


@pytest.mark.parametrize("kind", ["drip", "huge"])
def test_the_async_probe_is_bounded_alike(hostile: Start, kind: str) -> None:
    ref: list[HostileServer] = []

    def huge(conn: socket.socket, stop: threading.Event) -> None:
        ref[0].send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n" + b"x" * 8192)
        stop.wait(5)

    server = hostile(drip(ref, every=0.1) if kind == "drip" else huge)
    ref.append(server)
    passed, detail = asyncio.run(HttpCheck(timeout=0.5).acheck(endpoint(server)))
    if kind == "drip":
        assert not passed and server.sent < len(OK)
    else:
        assert (passed, detail) == (True, "HTTP 200")


def test_tcp_check_connects_within_the_deadline(hostile: Start) -> None:
    server = hostile(lambda conn, stop: None)
    assert TcpCheck(timeout=0.5).check(endpoint(server)) == (True, "connected")
    closed = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    passed, _ = TcpCheck(timeout=0.5).check(bk.Endpoint(address))
    assert not passed


@pytest.mark.parametrize("option", ["timeout"])
@pytest.mark.parametrize(
    "value", [float("inf"), float("nan"), 1e300, 10**400, 0, True], ids=lambda v: repr(v)[:10]
)
def test_probe_timeouts_must_be_finite(option: str, value: object) -> None:
    for kind in (TcpCheck, HttpCheck):
        with pytest.raises(bk.InvalidOption, match=option):
            kind(**{option: value})  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption, match="interval"):
        ActiveChecker(bk.RoundRobin(["10.0.0.1:80"]), interval=value)  # type: ignore[arg-type]
    if value != 0:
        with pytest.raises(bk.InvalidOption, match="timeout"):
            ActiveChecker(bk.RoundRobin(["10.0.0.1:80"])).stop(value)  # type: ignore[arg-type]


# -- the response reader, property-based --------------------------------------------------------


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@given(
    status=st.integers(100, 599),
    body=st.binary(max_size=3000),
    framing=st.sampled_from(["length", "chunked", "close"]),
    eol=st.sampled_from([b"\r\n", b"\n"]),  # RFC 9112 lets a recipient accept a bare LF
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_a_response_parses_the_same_however_it_is_split(
    status: int, body: bytes, framing: str, eol: bytes, cuts: list[int]
) -> None:
    head = b"HTTP/1.1 %d Whatever%sServer: x%s" % (status, eol, eol)
    if framing == "length":
        head += b"Content-Length: %d%s" % (len(body), eol)
    elif framing == "chunked":
        head += b"Transfer-Encoding: chunked" + eol
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    data = head + eol + body
    reader = ResponseReader()
    for piece in pieces(data, cuts):
        reader.feed(piece)
    if framing == "close" and status >= 200 and status not in (204, 304) and len(body) < 1024:
        assert not reader.done  # only the end of the stream ends such a body
    if framing != "close" or status < 200 or status in (204, 304):
        assert reader.done  # without waiting for the server to close
    reader.feed(b"")  # end of stream
    assert reader.done and reader.status == status


@given(st.lists(st.binary(max_size=5000), max_size=30))
def test_arbitrary_bytes_only_ever_raise_value_error_and_stay_bounded(chunks: list[bytes]) -> None:
    reader = ResponseReader()
    try:
        for chunk in [*chunks, b""]:
            reader.feed(chunk)
            assert len(reader._head) <= HEAD_LIMIT + 5000 + BODY_LIMIT
    except ValueError:
        pass
