"""Regression tests from the adversarial review of the etcd source: hostile revisions, and a
gateway (or a proxy in front of it) that trickles a watch or a range forever or answers an
enormous range. The hostile server is a loopback socket in a thread, stopped by the test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from balancekit.discovery import DiscoveryError, Etcd
from balancekit.discovery._etcd_wire import PrefixState

RANGE = b'{"header": {"revision": "7"}, "kvs": []}'


@given(
    st.one_of(
        st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=5).filter(
            lambda text: not text.isascii()
        ),
        st.integers(max_value=-1),
        st.integers(min_value=2**63),
    )
)
def test_a_revision_that_is_no_int64_is_a_discovery_error_changing_nothing(
    revision: object,
) -> None:
    """'²' passed ``str.isdigit`` and then broke ``int()`` with a bare ValueError; '١٢٣' was
    read as 123; a negative or past-int64 number was kept and sent back to etcd."""
    state = PrefixState("svc/")
    state.apply_range({"header": {"revision": "3"}})
    with pytest.raises(DiscoveryError):
        state.apply_range({"header": {"revision": revision}})
    assert state.revision == 3
    kv = {"key": "c3ZjLzEwLjAuMC4xOjgw", "mod_revision": revision}  # svc/10.0.0.1:80
    with pytest.raises(DiscoveryError):
        state.apply_watch({"result": {"events": [{"kv": kv}]}})


Handler = Callable[[socket.socket], None]


@pytest.fixture
def hostile() -> Iterator[Callable[[Handler], str]]:
    """Serve each connection on 127.0.0.1 with ``handler`` (one thread); the URL."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)

    def start(handler: Handler) -> str:
        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                with conn, contextlib.suppress(OSError):  # the client hung up
                    conn.settimeout(5.0)
                    _read_request(conn)
                    handler(conn)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    stop.set()
    for thread in threads:
        thread.join(10)
    listener.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _trickle(stop: threading.Event, first: bytes) -> Handler:
    """An answer whose body starts with ``first`` and then sends a blank line every 50 ms
    (JSON's whitespace) until the test stops, so no read ever times out."""

    def handler(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunk(first))
        for _ in range(160):  # at most 8 s: past the 5 s the tests allow
            if stop.wait(0.05):
                return
            conn.sendall(_chunk(b"\n"))

    return handler


def _watching(url: str) -> Etcd:
    """A source that has listed the prefix (revision 7) and will watch next."""
    source = Etcd("svc/", url=url, wait=0.5, timeout=0.5)
    source._state.apply_range({"header": {"revision": "7"}})
    return source


def _timed(function: Callable[[], object]) -> tuple[float, object]:
    began = time.monotonic()
    try:
        result: object = function()
    except Exception as error:  # the assertions say which are expected
        result = error
    return time.monotonic() - began, result


def test_a_trickled_watch_returns_within_its_wait(hostile: Callable[[Handler], str]) -> None:
    """A watch stream that keeps sending whitespace never hits the read timeout: resolve
    (and a watcher's stop) blocked for as long as the server liked."""
    stop = hostile.stop  # type: ignore[attr-defined]
    created = b'{"result": {"header": {"revision": "7"}, "created": true}}\n'
    source = _watching(hostile(_trickle(stop, created)))
    try:
        took, result = _timed(source.resolve)
        took_async, result_async = _timed(
            lambda: asyncio.run(_watching(source.url).resolve_async())
        )
    finally:
        stop.set()
        source.close()
    assert took < 5.0 and took_async < 5.0, (took, took_async)
    assert not isinstance(result, BaseException) and not isinstance(result_async, BaseException)


def test_a_trickled_range_fails_within_its_timeout(hostile: Callable[[Handler], str]) -> None:
    stop = hostile.stop  # type: ignore[attr-defined]
    source = Etcd("svc/", url=hostile(_trickle(stop, b"{")), wait=0.5, timeout=0.5)
    try:
        took, result = _timed(source.resolve)
    finally:
        stop.set()
        source.close()
    assert took < 5.0, took
    assert isinstance(result, DiscoveryError)


def test_an_enormous_range_answer_is_refused_unread(
    hostile: Callable[[Handler], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The range answer was read whole into memory, however large (the watch lines had a
    limit, the range none)."""
    from balancekit.discovery import etcd

    monkeypatch.setattr(etcd, "MAX_MESSAGE_BYTES", 100_000)
    sent: list[int] = []

    def handler(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunk(b"["))
        for _ in range(200):  # 200 x 64 KiB: far past the limit
            conn.sendall(_chunk(b" " * 65536))
            sent.append(1)
        conn.sendall(_chunk(b"]") + b"0\r\n\r\n")

    source = Etcd("svc/", url=hostile(handler), wait=0.5, timeout=2.0)
    try:
        with pytest.raises(DiscoveryError, match="bytes"):
            source.resolve()
    finally:
        source.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer token\n"},  # a token read from a file, newline and all
        {"Authorization": "Bearer t\r\nX-Injected: 1"},
        {"Authorization": "Bearer tökén"},
        {"Authorization": "\ud800"},
        {"Bad Name": "x"},
        {"": "x"},
        {"X-Long": "a" * 100_000},
    ],
)
def test_headers_no_request_can_carry_are_refused_at_once(headers: dict[str, str]) -> None:
    """Were accepted, then every resolve failed inside httpx or h11 (UnicodeEncodeError,
    LocalProtocolError) instead of one InvalidOption naming the header."""
    from balancekit import InvalidOption

    with pytest.raises(InvalidOption, match="header"):
        Etcd("svc/", headers=headers)


def test_ordinary_headers_are_kept() -> None:
    source = Etcd("svc/", headers={"Authorization": "Bearer abc.DEF-123_=", "X-Tab": "a\tb"})
    assert source._headers == {"Authorization": "Bearer abc.DEF-123_=", "X-Tab": "a\tb"}


def test_a_password_in_the_url_is_kept_out_of_repr_and_errors(
    hostile: Callable[[Handler], str],
) -> None:
    """The watcher logs ``describe(source)`` on every failed refresh and names its thread after
    it, and an HTTP error said ``to {response.url}``: both showed ``user:password@``."""

    def refuse(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")

    url = hostile(refuse).replace("http://", "http://root:s3cret-pw@")
    source = Etcd("svc/", url=url, wait=0.5, timeout=2.0)
    try:
        with pytest.raises(DiscoveryError) as caught:
            source.resolve()
    finally:
        source.close()
    assert "401" in str(caught.value)
    for text in (repr(source), str(caught.value)):
        assert "s3cret-pw" not in text, text
