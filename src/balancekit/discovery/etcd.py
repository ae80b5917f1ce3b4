"""etcd service discovery: the endpoints under a key prefix, watched, via etcd's JSON gateway.

Use::

    import balancekit as bk
    from balancekit.discovery import Etcd, Watcher
    lb = bk.LeastConnections()
    with Watcher(lb, Etcd("services/api/", url="http://127.0.0.1:2379"), min_interval=0.1):
        ...   # etcdctl put services/api/10.0.0.7:8080 '{"weight": 2, "metadata": {"zone": "b"}}'

Every key under the prefix is one endpoint: the rest of the key is its ``host:port``, the value
empty (weight 1) or a JSON object with ``weight`` and ``metadata`` (see
:mod:`balancekit.discovery._etcd_wire`); a key that names no usable endpoint is skipped and
logged. The first :meth:`Etcd.resolve` lists the prefix (``/v3/kv/range``); each later one
watches it from the next revision (``/v3/watch``, a stream of JSON lines) and returns as soon as
a change arrives, or after ``wait`` seconds with the membership unchanged. Since the watch
starts from the revision the source last saw, no change between two resolves is lost; if etcd
has compacted that revision away, the source lists the prefix again. Any failure (etcd
unreachable, an error answer) raises, so the watcher keeps the endpoints it has and retries
with backoff; the next resolve after a failure lists the prefix anew, so a restarted etcd
(even one with a new data directory) is read afresh.

Why the gateway and httpx, not an etcd client library: ``etcd3`` no longer imports with current
protobuf; ``aetcd`` (maintained) is asyncio-only and needs grpcio and protobuf, a large native
dependency for two calls. etcd serves the same v3 API as JSON over HTTP (the gRPC gateway,
``/v3/`` since etcd 3.4), which httpx, already balancekit's ``httpx`` extra, speaks both
synchronously (for :class:`~balancekit.discovery.Watcher`) and with asyncio (for
:class:`~balancekit.discovery.AsyncWatcher`). Install with ``pip install balancekit[etcd]``.

Cost: one range per (re)start, then one watch request per change or per ``wait`` seconds.
Source: etcd ``api/etcdserverpb/rpc.proto`` (Range, Watch) and "gRPC gateway" in etcd's docs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .._errors import InvalidOption, missing_extra

try:
    import httpx
except ModuleNotFoundError as error:  # say which extra installs it, not only its module name
    if (error.name or "").partition(".")[0] != "httpx":
        raise
    raise missing_extra("balancekit.discovery.Etcd", "httpx", "etcd", "httpx") from error

from .._options import describe, seconds
from ._etcd_wire import PrefixState
from ._source import LONGEST_WAIT, DiscoveryError, Snapshot

__all__ = ["Etcd"]

#: The longest header value accepted in ``headers`` (characters).
MAX_HEADER_LENGTH = 16_384
#: The characters of an HTTP field name (RFC 9110 section 5.1: a ``token``).
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

#: The longest line one watch message, or the whole range answer, may take (bytes): far
#: above any sane batch of events (a range of this size lists about half a million keys).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class Etcd:
    """A discovery source reading and watching the keys under ``prefix`` (see the module docs).

    Options (keyword-only, validated at once): ``url`` (etcd's client URL, default
    ``http://127.0.0.1:2379``), ``wait`` (the longest a resolve waits for a change, default
    3 s: keep it below the watcher's ``stop`` timeout, 5 s), ``timeout`` (connect and range timeout,
    default 2 s), ``headers`` (sent with every request, e.g. an ``Authorization`` token).
    Use one :class:`Etcd` per watcher: its resolves take turns.
    """

    def __init__(
        self,
        prefix: str,
        *,
        url: str = "http://127.0.0.1:2379",
        wait: float = 3.0,
        timeout: float = 2.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._state = PrefixState(prefix)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidOption(f"url must be an http:// or https:// URL, not {describe(url)}")
        try:
            base = httpx.URL(url)
        except (httpx.InvalidURL, UnicodeError, ValueError) as error:
            raise InvalidOption(f"url is not a valid URL: {describe(error)}") from None
        if not base.host:
            raise InvalidOption(f"url has no host: {describe(url)}")
        if base.port is not None and not 0 < base.port < 65536:
            raise InvalidOption(f"url's port must be from 1 to 65535: {describe(url)}")
        self._wait = seconds("wait", wait, high=LONGEST_WAIT)
        self._timeout = seconds("timeout", timeout, high=LONGEST_WAIT)
        if headers is not None and not (
            isinstance(headers, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise InvalidOption(f"headers must be a dict of str to str, not {describe(headers)}")
        for name, value in (headers or {}).items():
            _check_header(name, value)
        self.url = str(base).rstrip("/")
        self._headers = dict(headers or {})
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None

    @property
    def prefix(self) -> str:
        """The key prefix watched."""
        return self._state.prefix

    @property
    def revision(self) -> int | None:
        """The etcd revision the last answer was current at (None before the first, or after
        a failure: the next resolve lists the prefix again)."""
        return self._state.revision

    @property
    def skipped(self) -> int:
        """How many times a key was skipped for an unusable address or value (each logged)."""
        return self._state.skipped

    def _watch_timeouts(self) -> httpx.Timeout:
        """A watch's read timeout is ``wait``: the longest silence before "no change"."""
        return httpx.Timeout(self._timeout, read=self._wait)

    # -- synchronous ---------------------------------------------------------------------------

    def resolve(self) -> Snapshot:
        """List the prefix (first time, after a failure or a compaction), else wait up to
        ``wait`` seconds for a change; the membership. Raises on any failure."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(headers=self._headers, timeout=self._timeout)
            try:
                if self._state.revision is not None:
                    self._watch(self._client)
                if self._state.revision is None:
                    deadline = time.monotonic() + self._timeout
                    with self._client.stream(
                        "POST", f"{self.url}/v3/kv/range", json=self._state.range_request()
                    ) as answer:
                        _check(answer)
                        body = _body(answer.iter_bytes(), deadline, self._timeout)
                    self._state.apply_range(_json(body))
            except BaseException:
                self._state.revision = None  # list afresh once etcd answers again
                raise
            return self._state.snapshot()

    def _watch(self, client: httpx.Client) -> None:
        body = self._state.watch_request()
        deadline = time.monotonic() + self._wait  # a stream trickling blank lines ends too
        try:
            with client.stream(
                "POST", f"{self.url}/v3/watch", json=body, timeout=self._watch_timeouts()
            ) as response:
                _check(response)
                for message in _lines(response.iter_bytes(), deadline):
                    if self._state.apply_watch(message):
                        return  # a change (or a compaction: the caller lists again)
        except httpx.ReadTimeout:
            return  # no change within `wait`: the membership stands
        if time.monotonic() >= deadline:
            return  # the stream went on past `wait` without a change
        raise DiscoveryError("etcd closed the watch stream")

    def close(self) -> None:
        """Close the HTTP connection of :meth:`resolve` (a later resolve opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
            if client is not None:
                client.close()

    # -- asyncio -------------------------------------------------------------------------------

    async def resolve_async(self) -> Snapshot:
        """:meth:`resolve` without blocking the event loop (a client per call: an asyncio
        client belongs to one event loop)."""
        async with httpx.AsyncClient(headers=self._headers, timeout=self._timeout) as client:
            try:
                if self._state.revision is not None:
                    await self._watch_async(client)
                if self._state.revision is None:
                    deadline = time.monotonic() + self._timeout
                    async with client.stream(
                        "POST", f"{self.url}/v3/kv/range", json=self._state.range_request()
                    ) as answer:
                        _check(answer)
                        body = await _abody(answer.aiter_bytes(), deadline, self._timeout)
                    self._state.apply_range(_json(body))
            except BaseException:
                self._state.revision = None
                raise
            return self._state.snapshot()

    async def _watch_async(self, client: httpx.AsyncClient) -> None:
        body = self._state.watch_request()
        deadline = time.monotonic() + self._wait
        try:
            async with client.stream(
                "POST", f"{self.url}/v3/watch", json=body, timeout=self._watch_timeouts()
            ) as response:
                _check(response)
                async for message in _alines(response.aiter_bytes(), deadline):
                    if self._state.apply_watch(message):
                        return
        except httpx.ReadTimeout:
            return
        if time.monotonic() >= deadline:
            return
        raise DiscoveryError("etcd closed the watch stream")

    def __repr__(self) -> str:
        return f"Etcd({self.prefix!r}, url={_shown(self.url)!r})"


def _check_header(name: str, value: str) -> None:
    """Refuse a header no request can carry (RFC 9110 section 5: a token name; a value of
    visible ASCII, spaces and tabs), e.g. a token read from a file with its newline."""
    if not (0 < len(name) <= 256 and all(c in _TOKEN for c in name)):
        raise InvalidOption(f"header name {describe(name)} is not an HTTP field name")
    if len(value) > MAX_HEADER_LENGTH:
        raise InvalidOption(
            f"header {name} has {len(value)} characters, more than {MAX_HEADER_LENGTH}"
        )
    if not (value.isascii() and value.replace("\t", " ").isprintable()):
        at = next(
            i for i, c in enumerate(value) if not (c == "\t" or (c.isascii() and c.isprintable()))
        )
        raise InvalidOption(  # the value may be a secret: name only the offending character
            f"header {name}'s value must be visible ASCII, spaces and tabs (no line breaks);"
            f" character {at} is {value[at]!a}"
        )


def _shown(url: str | httpx.URL) -> str:
    """``url`` without its ``user:password@`` (repr and errors end up in logs)."""
    return str(httpx.URL(url).copy_with(username=None, password=None))


def _check(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise DiscoveryError(f"etcd answered HTTP {response.status_code} to {_shown(response.url)}")


class _Body:
    """Gathers a range answer; refuses one past MAX_MESSAGE_BYTES, or still coming after
    ``timeout`` seconds (a read timeout alone never ends a body that trickles)."""

    def __init__(self, deadline: float, timeout: float) -> None:
        self._data = bytearray()
        self._deadline = deadline
        self._timeout = timeout

    def feed(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > MAX_MESSAGE_BYTES:
            raise DiscoveryError(f"etcd's range answer is over {MAX_MESSAGE_BYTES} bytes")
        if time.monotonic() > self._deadline:
            raise DiscoveryError(f"etcd's range answer took over {self._timeout:g}s")

    def bytes(self) -> bytes:
        return bytes(self._data)


def _body(chunks: Iterator[bytes], deadline: float, timeout: float) -> bytes:
    body = _Body(deadline, timeout)
    for chunk in chunks:
        body.feed(chunk)
    return body.bytes()


async def _abody(chunks: AsyncIterator[bytes], deadline: float, timeout: float) -> bytes:
    body = _Body(deadline, timeout)
    async for chunk in chunks:
        body.feed(chunk)
    return body.bytes()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise DiscoveryError(f"etcd answered something that is not JSON: {error}") from None


class _Lines:
    """Cuts a byte stream into lines in time linear in its size; refuses a line past
    MAX_MESSAGE_BYTES."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._buffer += chunk[start:end]
            if self._buffer.strip():
                lines.append(bytes(self._buffer))
            self._buffer.clear()
            start = end + 1
        self._buffer += chunk[start:]
        if len(self._buffer) > MAX_MESSAGE_BYTES:
            raise DiscoveryError(f"etcd sent a watch message over {MAX_MESSAGE_BYTES} bytes")
        return lines


def _message(line: bytes) -> object:
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as error:
        raise DiscoveryError(f"etcd's watch sent a line that is not JSON: {error}") from None


def _lines(chunks: Iterator[bytes], deadline: float) -> Iterator[object]:
    """The messages of a watch stream, until it ends or ``deadline`` (monotonic) passes."""
    lines = _Lines()
    for chunk in chunks:
        yield from map(_message, lines.feed(chunk))
        if time.monotonic() >= deadline:
            return


async def _alines(chunks: AsyncIterator[bytes], deadline: float) -> AsyncIterator[object]:
    lines = _Lines()
    async for chunk in chunks:
        for line in lines.feed(chunk):
            yield _message(line)
        if time.monotonic() >= deadline:
            return
