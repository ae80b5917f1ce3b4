"""Key extractors: functions of a :class:`~balancekit.Request` that return the key to hash.

Each factory returns a plain callable ``Request -> str | bytes | None``; ``None`` means "this
request has no such key". A hashing balancer calls it on the selection context and raises when it
gets ``None``, so compose extractors with a fallback:

>>> import balancekit as bk
>>> by_session = bk.keys.first_of(bk.keys.cookie("session"), bk.keys.client_ip())
>>> by_session(bk.Request(headers={"Cookie": "session=s1"}, client_addr="192.0.2.1"))
's1'
>>> by_session(bk.Request(client_addr="192.0.2.1"))
'192.0.2.1'
>>> bk.keys.cookie("session").or_else(bk.keys.path())(bk.Request(path="/a"))
'/a'

A missing *or empty* header, cookie or query value counts as missing (``None``), so an empty
``session=`` cookie falls back rather than sending every such client to one endpoint.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import TypeAlias

from ._errors import InvalidOption
from ._options import describe
from .request import Request

__all__ = [
    "Extractor",
    "KeyFunc",
    "TrustedProxies",
    "client_ip",
    "cookie",
    "first_of",
    "five_tuple",
    "header",
    "host",
    "path",
    "query",
]

#: A key extractor: a function of the request returning the key, or ``None`` if it has none.
KeyFunc: TypeAlias = Callable[[Request], "str | bytes | None"]
_IPAddress: TypeAlias = "ipaddress.IPv4Address | ipaddress.IPv6Address"
_Network: TypeAlias = "ipaddress.IPv4Network | ipaddress.IPv6Network"


class Extractor:
    """A named key extractor; calling it returns the key or ``None``. Compose with ``or_else``.

    Calls are O(1) beyond the extractor's own work. A context that is not a
    :class:`~balancekit.Request` raises :class:`~balancekit.InvalidOption`.
    """

    __slots__ = ("_func", "_name")

    def __init__(self, func: KeyFunc, name: str) -> None:
        self._func = func
        self._name = name

    def __call__(self, request: Request) -> str | bytes | None:
        if not isinstance(request, Request):
            raise InvalidOption(
                f"key extractor {self._name} needs a balancekit.Request as the selection "
                f"context, got {type(request).__name__}; call select(Request(...))"
            )
        return self._func(request)

    def or_else(self, fallback: KeyFunc) -> Extractor:
        """This extractor, or ``fallback``'s key when this one returns ``None``."""
        return first_of(self, fallback)

    def __repr__(self) -> str:
        return f"keys.{self._name}"


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidOption(f"keys.{kind}() needs a non-empty str name, got {describe(name)}")
    return name


def header(name: str) -> Extractor:
    """The combined value of header ``name`` (case-insensitive; several lines joined with
    ``", "``), or ``None`` when it is absent or empty."""
    _check_name("header", name)
    folded = name.lower()

    def extract(request: Request) -> str | None:
        values = request.headers.get_all(folded)
        return ", ".join(values) or None

    return Extractor(extract, f"header({describe(name)})")


def cookie(name: str) -> Extractor:
    """The value of cookie ``name`` (RFC 6265, case-sensitive), or ``None`` if absent/empty."""
    _check_name("cookie", name)

    def extract(request: Request) -> str | None:
        return request.cookies.get(name) or None

    return Extractor(extract, f"cookie({describe(name)})")


def query(name: str) -> Extractor:
    """The first value of query parameter ``name``, or ``None`` if absent or empty."""
    _check_name("query", name)

    def extract(request: Request) -> str | None:
        return request.query.get(name) or None

    return Extractor(extract, f"query({describe(name)})")


def path() -> Extractor:
    """The request path as given (never ``None``: a request's path is at least ``"/"``)."""
    return Extractor(lambda request: request.path, "path()")


def host() -> Extractor:
    """The normalised host (lower case, no port), or ``None`` when the request has none."""
    return Extractor(lambda request: request.host or None, "host()")


def five_tuple() -> Extractor:
    """The L4 flow ``protocol|client_addr|client_port|local_addr|local_port``.

    ``None`` when the client address or port is unknown (e.g. an outgoing httpx request); a
    missing local address or port is left empty. Use it to keep one connection's packets or
    requests on one endpoint.
    """

    def extract(request: Request) -> str | None:
        if request.client_addr is None or request.client_port is None:
            return None
        local_port = "" if request.local_port is None else str(request.local_port)
        return (
            f"{request.protocol}|{request.client_addr}|{request.client_port}|"
            f"{request.local_addr or ''}|{local_port}"
        )

    return Extractor(extract, "five_tuple()")


def first_of(*extractors: KeyFunc) -> Extractor:
    """The first non-``None`` key among ``extractors``, tried in order; ``None`` if all miss.

    O(number of extractors) in the worst case.
    """
    if not extractors:
        raise InvalidOption("keys.first_of() needs at least one extractor")
    for item in extractors:
        if not callable(item):
            raise InvalidOption(f"keys.first_of() takes key extractors, got {describe(item)}")
    chain = tuple(extractors)

    def extract(request: Request) -> str | bytes | None:
        for item in chain:
            key = item(request)
            if key is not None:
                return key
        return None

    return Extractor(extract, f"first_of({', '.join(map(repr, chain))})")


#: The most networks ``TrustedProxies`` takes: a bound on the time and memory of configuration.
MAX_TRUSTED_PROXIES = 65_536


class TrustedProxies:
    """A set of IP networks whose forwarding headers are believed.

    Membership is O(number of distinct prefix lengths): networks are kept as integer prefixes
    in one set per (IP version, prefix length). Entries are addresses (``"10.0.0.1"``) or CIDRs
    (``"10.0.0.0/8"``, host bits must be zero).
    """

    __slots__ = ("_tables",)

    def __init__(self, networks: Iterable[str | _Network | _IPAddress] = ()) -> None:
        if isinstance(networks, str | ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks = (networks,)  # one network, not the addresses it contains
        tables: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
        try:
            items = iter(networks)
        except TypeError:
            raise InvalidOption(
                f"trusted_proxies must be IP networks (a list or one CIDR str), got "
                f"{describe(networks)}"
            ) from None
        for count, item in enumerate(items):
            if count == MAX_TRUSTED_PROXIES:  # an endless or huge iterable (range(10**12))
                raise InvalidOption(
                    f"trusted_proxies holds more than {MAX_TRUSTED_PROXIES} networks: list"
                    " CIDR blocks (e.g. '10.0.0.0/8'), not addresses one by one"
                )
            try:
                net = ipaddress.ip_network(item, strict=True)
            except (TypeError, ValueError) as exc:
                raise InvalidOption(
                    f"trusted_proxies entries must be IP addresses or CIDRs with zero host "
                    f"bits (e.g. '10.0.0.0/8'), got {describe(item)}: {exc}"
                ) from None
            shift = net.max_prefixlen - net.prefixlen
            by_len = tables[net.version].setdefault(shift, set())
            by_len.add(int(net.network_address) >> shift)
        self._tables = tables

    def __contains__(self, address: object) -> bool:
        parsed = _parse_ip(address) if isinstance(address, str) else None
        return parsed is not None and self.contains_ip(parsed[0])

    def contains_ip(self, ip: _IPAddress) -> bool:
        """Whether a parsed address lies in one of the networks."""
        value = int(ip)
        return any(value >> shift in nets for shift, nets in self._tables[ip.version].items())

    def __bool__(self) -> bool:
        return any(self._tables[4]) or any(self._tables[6])


#: The longest text :func:`_parse_ip` will parse: a bracketed IPv6 address with an IPv4 tail,
#: a zone id of up to 64 characters, a port and quotes fits in 128.
_MAX_IP_TEXT = 128


@functools.lru_cache(maxsize=4096)
def _parse_ip(text: str) -> tuple[_IPAddress, str] | None:
    """Parse an address as found in X-Forwarded-For or RFC 7239 ``for=``: optional quotes,
    brackets and port are removed; IPv4-mapped IPv6 becomes IPv4. Returns the address and its
    canonical text. Cached (LRU, 4,096 entries): parsing costs microseconds, and the same
    clients and proxies recur.
    """
    if len(text) > _MAX_IP_TEXT:  # no address is this long; keep huge text out of the cache
        return None
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, str(ip)


_FORWARDED_TOKEN = re.compile(r'"[^"]*"?|[^",;]+|[,;]')


def _forwarded_for(values: tuple[str, ...]) -> list[str]:
    """The ``for=`` values of RFC 7239 ``Forwarded`` lines, in hop order.

    Elements are separated by commas and parameters by semicolons; a quoted-string value may
    contain either, so the split honours quotes (an unclosed quote runs to the end of the
    line). An element without ``for=`` yields ``""`` (an unusable hop), keeping hop positions
    aligned. O(length): one pass of a regex whose alternatives start on distinct characters
    (no backtracking), then string joins.
    """
    hops: list[str] = []
    for line in values:
        element: list[str] = []
        current: list[str] = []
        for token in _FORWARDED_TOKEN.findall(line + ","):
            if token not in (",", ";"):
                current.append(token)
                continue
            element.append("".join(current))
            current = []
            if token == ",":
                found = ""
                for param in element:
                    name, _, value = param.partition("=")
                    if name.strip().lower() == "for":
                        found = value.strip()
                if any(part.strip() for part in element):
                    hops.append(found)
                element = []
    return hops


def client_ip(
    *,
    trusted_proxies: Iterable[str | _Network | _IPAddress] | TrustedProxies = (),
    header: str = "x-forwarded-for",
) -> Extractor:
    """The client's IP address, believing forwarding headers only from trusted proxies.

    Without trusted proxies this is the direct peer (``request.client_addr``, normalised). When
    the peer is a trusted proxy, the hops in ``header`` (``"x-forwarded-for"``, or
    ``"forwarded"`` for RFC 7239 ``for=`` parameters) are walked from the right: each hop was
    written by the proxy to its right, so the first address that is *not* a trusted proxy is the
    client (the "rightmost untrusted" rule; anything further left is client-controlled and
    ignored). A hop that is not an IP (``unknown``, an RFC 7239 obfuscated ``_name``) stops the
    walk at the proxy that reported it. Only the configured ``header`` is read: a proxy that
    sets X-Forwarded-For passes a forged ``Forwarded`` through untouched.

    Returns ``None`` when the request has no client address. O(hops x prefix lengths).
    """
    proxies = trusted_proxies if isinstance(trusted_proxies, TrustedProxies) else None
    if proxies is None:
        proxies = TrustedProxies(trusted_proxies)  # type: ignore[arg-type]
    kind = header.lower() if isinstance(header, str) else header
    if kind not in ("x-forwarded-for", "forwarded"):
        raise InvalidOption(
            f"header must be 'x-forwarded-for' or 'forwarded', got {describe(header)}"
        )
    trust = proxies

    def extract(request: Request) -> str | None:
        peer_text = request.client_addr
        if peer_text is None:
            return None
        peer = _parse_ip(peer_text)
        if peer is None:
            return peer_text or None
        if not trust or not trust.contains_ip(peer[0]):
            return peer[1]
        lines = request.headers.get_all(kind)
        if kind == "forwarded":
            hops = _forwarded_for(lines)
        else:
            hops = [hop for line in lines for hop in line.split(",")]
        current = peer
        for hop in reversed(hops):
            parsed = _parse_ip(hop)
            if parsed is None:
                return current[1]
            current = parsed
            if not trust.contains_ip(current[0]):
                return current[1]
        return current[1]

    return Extractor(extract, f"client_ip(header={describe(kind)})")
