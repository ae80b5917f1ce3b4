"""The probes' I/O, bounded: one deadline over connect, send and every read; bounded reads.

A health check must never be the thing that hangs. ``http.client`` applies its timeout to each
socket operation, so a server sending one byte every 0.4 s held a 1 s check for as long as it
liked, and ``response.read()`` buffered whatever ``Content-Length`` promised (1e11 bytes: a
MemoryError). Here a probe gets one deadline (``time.monotonic() + timeout``) and every connect,
send and receive waits only for what is left of it; the response is parsed by
:class:`ResponseReader`, a small sans-io reader fed by the sync and the asyncio probe alike.

What is read: the status line and headers (at most :data:`HEAD_LIMIT` bytes, like
``http.client``'s 64 KiB line limit), then at most :data:`BODY_LIMIT` bytes of body, discarded
(Envoy's HTTP health checker likewise buffers a bounded amount of the body,
``response_buffer_size``, 1 KiB by default, and ignores the rest). The verdict is the status; the
body is read only so a small one is drained before the connection closes.
"""

from __future__ import annotations

import socket
import time

from .._options import describe

__all__ = ["BODY_LIMIT", "HEAD_LIMIT", "ResponseReader", "connect", "left"]

#: Bytes of status line and headers a response may take before the probe fails.
HEAD_LIMIT = 65_536
#: Bytes of body read (and discarded) at most; the connection is closed after them.
BODY_LIMIT = 1_024
#: Header lines a response may have (``http.client``'s ``_MAXHEADERS``).
MAX_HEADERS = 100


def left(deadline: float) -> float:
    """Seconds left before ``deadline``; raises TimeoutError when none are."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the probe's timeout ran out")
    return remaining


def connect(host: str, port: int, deadline: float) -> socket.socket:
    """A TCP connection to ``host:port``, trying each address in what is left of the deadline.

    Name resolution (a hostname rather than an IP address) uses the system resolver, which has
    its own timeouts; the connect attempts and everything after them share the deadline.
    """
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left(deadline))
            sock.connect(address)
            return sock
        except OSError as failure:  # TimeoutError included
            sock.close()
            error = failure
    raise error if error is not None else OSError(f"no address for {describe(host)}")


class ResponseReader:
    """Parses an HTTP/1.x response fed in pieces: ``feed(data)``, ``feed(b"")`` at end of stream.

    ``done`` turns True once the status line, the headers and up to :data:`BODY_LIMIT` bytes of
    body have arrived, or the body ended before that (``Content-Length`` bytes, the last chunk of
    a chunked body, or the end of the stream); ``status`` is then the status code.
    A malformed or oversized head raises ValueError. Cost: O(bytes fed), at most
    ``HEAD_LIMIT + BODY_LIMIT`` kept.
    """

    __slots__ = ("_body_left", "_chunked", "_head", "_tail", "done", "status")

    def __init__(self) -> None:
        self._head = bytearray()
        self._body_left = -1  # body bytes still wanted; -1 until the head is complete
        self._chunked = False
        self._tail = b"\r\n"  # the body's last bytes, to see a chunked body's last chunk
        self.status = 0
        self.done = False

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        if self._body_left >= 0:
            if not data:  # the server closed after a short body: complete as far as we care
                self.done = True
            self._take_body(data)
            return
        if not data:
            raise ValueError("the connection closed before the response's headers ended")
        start = max(0, len(self._head) - 2)  # the blank line may straddle two pieces
        self._head += data
        # The head ends at an empty line: LF, optionally after CR (RFC 9112 section 2.2 lets a
        # recipient take a bare LF as a line end, as http.client does).
        ends = [
            (at, at + size)
            for at, size in (
                (self._head.find(b"\n\r\n", start), 3),
                (self._head.find(b"\n\n", start), 2),
            )
            if at >= 0
        ]
        if not ends:
            if len(self._head) > HEAD_LIMIT:
                raise ValueError(f"the response's headers exceed {HEAD_LIMIT} bytes")
            return
        end, body_start = min(ends)
        if end > HEAD_LIMIT:
            raise ValueError(f"the response's headers exceed {HEAD_LIMIT} bytes")
        body = bytes(self._head[body_start:])
        self._parse_head(bytes(self._head[:end]))
        self._head = bytearray()
        self._take_body(body)

    def _take_body(self, data: bytes) -> None:
        self._body_left = max(0, self._body_left - len(data))
        if self._chunked:  # the last chunk, "0" CRLF CRLF (trailers are not looked for)
            self._tail = (self._tail + data)[-7:]
            if self._tail.endswith(b"\r\n0\r\n\r\n"):
                self.done = True
        if self._body_left == 0:
            self.done = True

    def _parse_head(self, head: bytes) -> None:
        lines = [line.removesuffix(b"\r") for line in head.split(b"\n")]
        if len(lines) > MAX_HEADERS + 1:
            raise ValueError(f"the response has more than {MAX_HEADERS} header lines")
        parts = lines[0].split(None, 2)
        if (
            len(parts) < 2
            or not parts[0].startswith(b"HTTP/1.")
            or len(parts[1]) != 3
            or not parts[1].isdigit()
        ):
            raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        self.status = int(parts[1])
        wanted = BODY_LIMIT
        if self.status in (204, 304) or self.status < 200:
            wanted = 0
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            name = name.strip().lower()
            if colon and name == b"content-length":
                value = value.strip()
                if not value.isdigit() or len(value) > 20:
                    raise ValueError(f"not a Content-Length: {value[:40]!r}")
                wanted = min(wanted, int(value))
            elif colon and name == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = True
        self._body_left = wanted
