"""The request context that key extractors, the router and the guards read.

A :class:`Request` is a small, immutable, typed description of one request as a balancer sees
it: the connection (client address and port, local address and port, protocol) and, for HTTP,
the method, scheme, host, path, query, headers, cookies and a body prefix. Build one by hand, or
from an ASGI scope, an ``httpx.Request`` or a ``requests.PreparedRequest``; those constructors are
duck-typed, so balancekit imports none of those packages.

>>> from balancekit import Request
>>> r = Request(method="get", host="API.example.com:8443", path="/v1/users",
...             query="id=7&id=8", headers={"Cookie": "session=abc; theme=dark"},
...             client_addr="192.0.2.10", client_port=51000)
>>> r.method, r.host, r.query.get_all("id"), r.cookies["session"]
('GET', 'api.example.com', ('7', '8'), 'abc')
>>> r.headers["cookie"]
'session=abc; theme=dark'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlsplit

from ._errors import InvalidOption
from ._options import describe, integer

__all__ = ["Cookies", "Headers", "QueryParams", "Request"]

#: What the constructors accept for headers or query parameters: a mapping or (name, value) pairs.
PairsLike: TypeAlias = "Mapping[str, str] | Iterable[tuple[str, str]]"


def _pairs(value: PairsLike, what: str) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str | bytes | bytearray):
        raise InvalidOption(f"{what} must be a mapping or (name, value) pairs, not a {type(value)}")
    try:
        items: Iterable[Any] = iter(value.items() if isinstance(value, Mapping) else value)
    except TypeError:
        raise InvalidOption(
            f"{what} must be a mapping or (name, value) pairs, got {type(value).__name__}"
        ) from None
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise InvalidOption(
                f"{what} must be a mapping or (name, value) pairs, got {describe(item)}"
            )
        name, val = item
        if not isinstance(name, str) or not isinstance(val, str):
            raise InvalidOption(f"{what} names and values must be str, got {describe(item)}")
        pairs.append((name, val))
    return tuple(pairs)


class _MultiMap(Mapping[str, str]):
    """An immutable, ordered, multi-valued mapping of ``str`` to ``str``.

    Lookup is O(1) (a dict built once from the pairs); ``get_all`` returns every value of a
    name in arrival order. Equality and hashing use the pairs, so order matters.
    """

    __slots__ = ("_index", "_pairs")
    _fold = False

    def __init__(self, pairs: PairsLike = ()) -> None:
        self._pairs = _pairs(pairs, type(self).__name__)
        # Lists while building, tuples once: appending is O(1), so n lines of one name cost
        # O(n), where re-building a tuple per line cost O(n^2) (32,000 lines: seconds).
        lists: dict[str, list[str]] = {}
        fold = self._fold
        for name, value in self._pairs:
            lists.setdefault(name.lower() if fold else name, []).append(value)
        self._index: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in lists.items()}

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of ``name``, in order; ``()`` when absent. O(1)."""
        return self._index.get(name.lower() if self._fold else name, ())

    def multi_items(self) -> tuple[tuple[str, str], ...]:
        """All (name, value) pairs in arrival order, names as given."""
        return self._pairs

    def __getitem__(self, name: str) -> str:
        values = self._index[name.lower() if self._fold else name]
        return values[0]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return (name.lower() if self._fold else name) in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _MultiMap)
        return self._pairs == other._pairs

    def __hash__(self) -> int:
        return hash(self._pairs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._pairs)!r})"


class Headers(_MultiMap):
    """HTTP header fields: names case-insensitive, several lines per name allowed.

    ``headers[name]`` is the combined field value: the lines joined with ``", "`` as RFC 9110
    §5.3 specifies; ``get_all(name)`` returns the lines themselves. Iteration yields lower-case
    names.
    """

    __slots__ = ()
    _fold = True

    def __init__(self, pairs: PairsLike = ()) -> None:  # its own, so a typo names this class
        super().__init__(pairs)

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._index[name.lower()])


class QueryParams(_MultiMap):
    """Parsed query string (``application/x-www-form-urlencoded``), names case-sensitive.

    ``query[name]`` is the first value, ``get_all(name)`` every value; blank values are kept.
    """

    __slots__ = ()

    def __init__(self, pairs: PairsLike = ()) -> None:  # its own, so a typo names this class
        super().__init__(pairs)


class Cookies(_MultiMap):
    """Cookies from the ``Cookie`` header (RFC 6265 §5.4): ``cookies[name]`` is the first value."""

    __slots__ = ()

    def __init__(self, pairs: PairsLike = ()) -> None:  # its own, so a typo names this class
        super().__init__(pairs)


def parse_cookie_header(values: Iterable[str]) -> Cookies:
    """Parse ``Cookie`` header lines into :class:`Cookies`, leniently.

    RFC 6265 §4.2.1 syntax is ``name=value`` pairs separated by ``"; "``; browsers send one line,
    HTTP/2 may split it into several (RFC 9113 §8.2.3), so every line is parsed. Pairs without
    ``=`` are skipped, whitespace around names and values is trimmed and one pair of surrounding
    double quotes is removed. Values are not percent-decoded (RFC 6265 gives them no encoding).
    O(length of the header).
    """
    pairs: list[tuple[str, str]] = []
    for line in values:
        for part in line.split(";"):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or not name:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            pairs.append((name, value))
    return Cookies(pairs)


def _split_host(host: str) -> str:
    """Lower-case a Host value and drop its port and a trailing dot; IPv6 keeps its brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


@dataclass(frozen=True, slots=True, init=False)
class Request:
    """One request as the balancing layer sees it (immutable).

    Every option is keyword-only and normalised once here, so readers never re-normalise:
    ``method`` is upper-cased; ``host`` lower-cased without port or trailing dot; ``query``
    accepts a raw query string (``raw_query`` keeps it) or pairs; ``headers`` a mapping or pairs;
    ``cookies`` default to those parsed from the ``Cookie`` header. ``path`` is kept as given
    (percent-decoded, like ASGI's ``path``); the router matches it as is, the signature screen
    normalises its own copy. ``body`` is a prefix of the body for the signature screen (``b""``
    when unknown). Construction is O(size of headers and query).
    """

    client_addr: str | None
    client_port: int | None
    local_addr: str | None
    local_port: int | None
    protocol: str
    method: str
    scheme: str
    host: str
    path: str
    raw_query: str
    query: QueryParams
    headers: Headers
    cookies: Cookies
    body: bytes

    def __init__(
        self,
        *,
        client_addr: str | None = None,
        client_port: int | None = None,
        local_addr: str | None = None,
        local_port: int | None = None,
        protocol: str = "http/1.1",
        method: str = "GET",
        scheme: str = "http",
        host: str = "",
        path: str = "/",
        query: str | PairsLike = "",
        headers: PairsLike | Headers = (),
        cookies: PairsLike | Cookies | None = None,
        body: bytes = b"",
    ) -> None:
        for name, port in (("client_port", client_port), ("local_port", local_port)):
            if port is not None and (
                not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535
            ):
                raise InvalidOption(
                    f"{name} must be an int in 0..65535 or None, got {describe(port)}"
                )
        for name, addr in (("client_addr", client_addr), ("local_addr", local_addr)):
            if addr is not None and not isinstance(addr, str):
                raise InvalidOption(
                    f"{name} must be a str (an IP address) or None, got {describe(addr)}"
                )
        for name, text in (("protocol", protocol), ("method", method), ("scheme", scheme)):
            if not isinstance(text, str) or not text:
                raise InvalidOption(f"{name} must be a non-empty str, got {describe(text)}")
        if not isinstance(path, str):
            raise InvalidOption(f"path must be a str, got {describe(path)}")
        if not isinstance(host, str):
            raise InvalidOption(f"host must be a str, got {describe(host)}")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise InvalidOption(f"body must be bytes (a prefix of the body), got {type(body)}")
        if isinstance(query, str):
            raw_query = query.removeprefix("?")
            params = QueryParams(parse_qsl(raw_query, keep_blank_values=True))
        else:
            params = QueryParams(query)
            raw_query = "&".join(f"{k}={v}" for k, v in params.multi_items())
        hdrs = headers if isinstance(headers, Headers) else Headers(headers)
        if cookies is None:
            jar = parse_cookie_header(hdrs.get_all("cookie"))
        else:
            jar = cookies if isinstance(cookies, Cookies) else Cookies(cookies)
        if not host and "host" in hdrs:
            host = hdrs.get_all("host")[0]
        setter = object.__setattr__
        setter(self, "client_addr", client_addr)
        setter(self, "client_port", client_port)
        setter(self, "local_addr", local_addr)
        setter(self, "local_port", local_port)
        setter(self, "protocol", protocol.lower())
        setter(self, "method", method.upper())
        setter(self, "scheme", scheme.lower())
        setter(self, "host", _split_host(host))
        setter(self, "path", path or "/")
        setter(self, "raw_query", raw_query)
        setter(self, "query", params)
        setter(self, "headers", hdrs)
        setter(self, "cookies", jar)
        setter(self, "body", bytes(body))

    @classmethod
    def from_asgi(cls, scope: Mapping[str, Any], *, body: bytes = b"") -> Request:
        """Build from an ASGI ``http`` or ``websocket`` connection scope (ASGI spec 2.x).

        Reads ``client``, ``server``, ``scheme``, ``http_version``, ``method``, ``path``,
        ``query_string`` and ``headers`` (latin-1 decoded byte pairs). ``protocol`` becomes the
        ALPN-style name (``"http/1.1"``, ``"h2"``, ``"h3"``; ``"websocket"`` for websockets).
        The body is not part of a scope: pass a prefix as ``body`` if the screen should see it.
        """
        if not isinstance(scope, Mapping):
            raise InvalidOption(f"from_asgi needs an ASGI scope (a mapping), got {describe(scope)}")
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            raise InvalidOption(
                f"from_asgi needs an 'http' or 'websocket' scope, got {describe(kind)}"
            )
        client = _asgi_peer(scope.get("client"), "client")
        server = _asgi_peer(scope.get("server"), "server")
        version = scope.get("http_version", "1.1")
        if not isinstance(version, str):
            raise InvalidOption(f"scope['http_version'] must be a str, got {describe(version)}")
        protocol = "websocket" if kind == "websocket" else _ALPN.get(version, f"http/{version}")
        raw_headers = scope.get("headers", ())
        if isinstance(raw_headers, bytes | bytearray | str):
            raise InvalidOption("scope['headers'] must be [name, value] byte pairs")
        try:
            items = iter(raw_headers)
        except TypeError:
            raise InvalidOption(
                f"scope['headers'] must be [name, value] byte pairs, got {describe(raw_headers)}"
            ) from None
        headers: list[tuple[str, str]] = []
        for item in items:
            if not (
                isinstance(item, tuple | list)
                and len(item) == 2
                and all(isinstance(part, bytes | bytearray) for part in item)
            ):
                raise InvalidOption(
                    f"scope['headers'] must be [name, value] byte pairs, got {describe(item)}"
                )
            headers.append((bytes(item[0]).decode("latin-1"), bytes(item[1]).decode("latin-1")))
        query_string = scope.get("query_string", b"")
        if not isinstance(query_string, bytes | bytearray):
            raise InvalidOption(
                f"scope['query_string'] must be bytes, got {describe(query_string)}"
            )
        default_scheme = "ws" if kind == "websocket" else "http"
        server_host = server[0] if server[0] is not None else ""
        return cls(
            client_addr=client[0],
            client_port=client[1],
            local_addr=server[0],
            local_port=server[1],
            protocol=protocol,
            method=scope.get("method", "GET"),
            scheme=scope.get("scheme", default_scheme),
            host=next((v for k, v in headers if k.lower() == "host"), server_host),
            path=scope.get("path", "/"),
            query=bytes(query_string).decode("latin-1"),
            headers=headers,
            body=body,
        )

    @classmethod
    def from_httpx(cls, request: Any, *, body: bytes = b"") -> Request:
        """Build from an ``httpx.Request`` (duck-typed: ``method``, ``url``, ``headers``).

        An outgoing request has no client connection yet, so the client and local fields are
        ``None``. The body is not read (it may be a stream): pass a prefix as ``body``. Anything
        that is not shaped like an ``httpx.Request`` raises :class:`InvalidOption`.
        """
        try:
            url = request.url
            headers = [(str(k), str(v)) for k, v in request.headers.multi_items()]
            query = bytes(url.query).decode("latin-1")
            fields = (str(request.method), str(url.scheme), str(url.host), str(url.path))
        except (AttributeError, TypeError, ValueError, UnicodeError, OverflowError) as exc:
            raise InvalidOption(
                f"from_httpx needs an httpx.Request, got {describe(request)}: {describe(exc)}"
            ) from None
        method, scheme, host, path = fields
        return cls(
            method=method,
            scheme=scheme,
            host=host,
            path=path,
            query=query,
            headers=headers,
            body=body,
        )

    @classmethod
    def from_requests(cls, prepared: Any, *, body_limit: int = 4096) -> Request:
        """Build from a ``requests.PreparedRequest`` (duck-typed: ``method``, ``url``,
        ``headers``, ``body``). ``body`` keeps the first ``body_limit`` bytes of a ``bytes`` or
        ``str`` body (a ``str`` as UTF-8, lone surrogates passed through); a streamed body (a
        file or an iterator) is not consumed. Anything not shaped like a ``PreparedRequest``
        raises :class:`InvalidOption`.
        """
        limit = integer("body_limit", body_limit, 0, 2**63 - 1)
        try:
            parts = urlsplit(str(prepared.url))
            headers = [(str(k), str(v)) for k, v in (prepared.headers or {}).items()]
            raw = prepared.body
            data = (
                raw[:limit].encode("utf-8", "surrogatepass")
                if isinstance(raw, str)
                else bytes(raw[:limit])
                if isinstance(raw, bytes | bytearray)
                else b""
            )
            method = str(prepared.method or "GET")
        except (AttributeError, TypeError, ValueError, UnicodeError, OverflowError) as exc:
            raise InvalidOption(
                f"from_requests needs a requests.PreparedRequest, got {describe(prepared)}:"
                f" {describe(exc)}"
            ) from None
        return cls(
            method=method,
            scheme=parts.scheme or "http",
            host=parts.netloc.rpartition("@")[2],
            path=parts.path or "/",
            query=parts.query,
            headers=headers,
            body=data[:limit],
        )


def _asgi_peer(value: object, what: str) -> tuple[str | None, int | None]:
    """An ASGI ``client`` / ``server`` entry: ``[host, port]``, ``[path, None]`` or ``None``."""
    if value is None or (isinstance(value, tuple | list) and not value):
        return None, None
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise InvalidOption(
            f"scope[{describe(what)}] must be [host, port] or None, got {describe(value)}"
        )
    host, port = value
    return host, port


_ALPN = {"1.0": "http/1.0", "1.1": "http/1.1", "2": "h2", "2.0": "h2", "3": "h3", "3.0": "h3"}
