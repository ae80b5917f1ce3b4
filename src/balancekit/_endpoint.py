"""Endpoints: an address, a weight and free-form metadata; parsing and validation."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._bounded import bounded
from ._errors import DuplicateEndpoint, InvalidEndpoint
from ._options import describe

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "MAX_WEIGHT",
    "Endpoint",
    "EndpointLike",
    "as_endpoint",
    "as_endpoints",
    "canonical_address",
    "split_address",
]

#: The largest weight an endpoint may carry (NGINX allows up to 2**31 - 1; HAProxy 256).
MAX_WEIGHT = 1_000_000

#: Longest address text parsed: a 253-character hostname, a trailing dot, ``:`` and a 5-digit
#: port. Longer text is refused before any parsing (so 100 KB costs nothing).
MAX_ADDRESS_LENGTH = 260

#: The most endpoints one list (a constructor's, ``update()``'s, a discovery source's or a
#: subset's input) holds: far above real pools (tens of thousands), yet an endless generator
#: of valid endpoints is refused with :class:`InvalidOption` instead of filling memory.
MAX_POOL_SIZE = 1_000_000

# Every pattern below is applied with fullmatch() to text already cut to MAX_ADDRESS_LENGTH
# (``$`` would also match before a final newline: "host\n" passed the old pattern).
# A label (RFC 1123 section 2.1: letters, digits, hyphens, 1 to 63 characters, a digit may
# lead). Kept lenient as before: "_" is allowed (Docker Compose and SRV-style names) and so is a
# trailing hyphen; a leading hyphen is refused (it reads as an option to command-line tools).
_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")
# A last label that a resolver's inet_aton() would read as a number ("1.2.3.4.5", "127.1",
# "0x7f.1", "999.1.1.1"): RFC 1123 section 2.1 and RFC 3696 section 2 rule out an all-numeric
# top-level label, so such a host must be a strict dotted-quad IPv4 address or nothing.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")
# An IPv6 zone id (RFC 6874 section 2: unreserved characters), at most 64 of them; Linux
# interface names have at most 15.
_ZONE = re.compile(r"[A-Za-z0-9._~-]{1,64}")


def _canonical_host(host: str, address: str) -> str:
    """A hostname or IPv4 address in canonical form: lower case, no trailing dot."""
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidEndpoint(
            f"{describe(host)} in {describe(address)} is neither an IP address nor a hostname"
            " (labels of letters, digits, '-' and '_', 1 to 63 characters, at most 253 in all)"
        )
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise InvalidEndpoint(
                f"{describe(host)} in {describe(address)} is not an IPv4 address (four decimal"
                " numbers 0 to 255 without leading zeros) and a hostname cannot end in a"
                " numeric label"
            ) from None
    return name.lower()


def _canonical_ipv6(text: str, address: str) -> str:
    """An IPv6 address (optionally ``%zone``) in RFC 5952 form, brackets not included."""
    addr, percent, zone = text.partition("%")
    if percent and not _ZONE.fullmatch(zone):
        raise InvalidEndpoint(
            f"the zone id in {describe(address)} must be 1 to 64 letters, digits, '.', '_', '~'"
            " or '-' (RFC 6874)"
        )
    try:
        ip = ipaddress.IPv6Address(addr)
    except ValueError:
        raise InvalidEndpoint(
            f"{describe(text)} in {describe(address)} is not an IPv6 address"
        ) from None
    # RFC 5952 section 5: an IPv4-mapped address keeps its dotted tail. Written out here
    # because str() of one differs between Python versions (3.13 changed it).
    mapped = ip.ipv4_mapped
    canonical = f"::ffff:{mapped}" if mapped is not None else ip.compressed
    return f"{canonical}%{zone}" if percent else canonical


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``) into its canonical host and port, validating both.

    Canonical form: hostnames lower-case without a trailing dot; IPv4 as a strict dotted quad;
    IPv6 in RFC 5952 form (lower case, zeros compressed; ``::ffff:1.2.3.4`` for IPv4-mapped),
    a zone id kept as given; the port without leading zeros. Anything else raises
    :class:`InvalidEndpoint`. O(len(address)), at most :data:`MAX_ADDRESS_LENGTH` characters.

    >>> split_address("10.0.0.1:8080")
    ('10.0.0.1', 8080)
    >>> split_address("[::1]:443")
    ('::1', 443)
    >>> split_address("DB.Example.:05432")
    ('db.example', 5432)
    """
    if not isinstance(address, str):
        raise InvalidEndpoint(f"an address must be a str like 'host:port', not {describe(address)}")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidEndpoint(
            f"an address has at most {MAX_ADDRESS_LENGTH} characters, got {len(address)}:"
            f" {describe(address)}"
        )
    if address.startswith("["):
        close = address.find("]")
        if close < 0 or address[close + 1 : close + 2] != ":":
            raise InvalidEndpoint(
                f"cannot parse {describe(address)}: write IPv6 addresses as '[::1]:8080'"
            )
        host, port_text = _canonical_ipv6(address[1:close], address), address[close + 2 :]
    else:
        text, sep, port_text = address.rpartition(":")
        if not sep or not text:
            raise InvalidEndpoint(
                f"cannot parse {describe(address)}: expected 'host:port', e.g. '10.0.0.1:8080'"
            )
        if ":" in text:
            raise InvalidEndpoint(
                f"cannot parse {describe(address)}: put IPv6 hosts in brackets, '[::1]:8080'"
            )
        host = _canonical_host(text, address)
    if (
        not 1 <= len(port_text) <= 5
        or not (port_text.isascii() and port_text.isdigit())
        or not 0 <= int(port_text) <= 65535
    ):
        raise InvalidEndpoint(
            f"the port in {describe(address)} must be a number from 0 to 65535 (at most 5 digits)"
        )
    return host, int(port_text)


def canonical_address(address: str) -> str:
    """``address`` in the canonical form :class:`Endpoint` stores (see :func:`split_address`).

    >>> canonical_address("API.example.com.:0080"), canonical_address("[0:0::1]:80")
    ('api.example.com:80', '[::1]:80')
    """
    host, port = split_address(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_weight(weight: object, address: str) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise InvalidEndpoint(
            f"the weight of {describe(address)} must be an int, not {describe(weight)}"
        )
    if not 1 <= weight <= MAX_WEIGHT:
        raise InvalidEndpoint(
            f"the weight of {describe(address)} is {describe(weight)}: weights are whole numbers 1"
            f" to"
            f" {MAX_WEIGHT}"
            " (use mark_down() to take an endpoint out of rotation)"
        )
    return weight


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One server a balancer can choose: its ``host:port`` address, a weight and metadata.

    Endpoints are immutable and compare by address and weight; metadata (zone, version, ...) is
    carried along for the caller and never read by a strategy. The address is stored in its
    canonical form (:func:`split_address`), so ``"A.example.:080"`` and ``"a.example:80"`` are
    one member, and a hash strategy hashes the same string for both. Endpoints pickle and copy;
    unpickling runs the same checks (an edited pickle raises :class:`InvalidEndpoint`).

    >>> Endpoint("10.0.0.1:8080", weight=5)
    Endpoint(address='10.0.0.1:8080', weight=5)
    >>> Endpoint("10.0.0.1:8080").port
    8080
    >>> Endpoint("[2001:DB8:0::1]:080").address
    '[2001:db8::1]:80'
    """

    address: str
    weight: int = 1
    metadata: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        address = canonical_address(self.address)
        _check_weight(self.weight, address)
        if not isinstance(self.metadata, Mapping):
            raise InvalidEndpoint(
                f"the metadata of {describe(address)} must be a mapping (e.g. a dict), not"
                f" {describe(self.metadata)}"
            )
        if address != self.address:
            object.__setattr__(self, "address", address)
        if not isinstance(self.metadata, MappingProxyType):
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    # Pickle and copy rebuild an endpoint by calling the class with its fields, so what a pickle
    # carries is validated and canonicalised as any other input is: a pickle edited to a
    # negative weight or a bad address raises InvalidEndpoint, and never yields an Endpoint no
    # constructor could build. (The dataclass default pickled the fields' values, and failed:
    # a ``mappingproxy`` cannot be pickled, so the metadata goes as a plain dict.)
    def __reduce__(self) -> tuple[type[Endpoint], tuple[str, int, dict[str, Any]]]:
        return (type(self), (self.address, self.weight, dict(self.metadata)))

    # Replaces the dataclass's ``__setstate__``, which stored any fields unchecked. A pickle
    # made by ``__reduce__`` never calls it; only a hand-made one (an object built empty, then
    # given a state) does, so it runs the constructor's checks on that state too.
    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple | list) or not 1 <= len(state) <= 3:
            raise InvalidEndpoint(
                f"an Endpoint's pickled state is (address, weight, metadata), not {describe(state)}"
            )
        Endpoint.__init__(self, *state)  # frozen: __init__ sets the slots with object.__setattr__

    @property
    def host(self) -> str:
        """The host part of the address (an IP address or a hostname)."""
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        """The port part of the address."""
        return split_address(self.address)[1]

    def with_weight(self, weight: int) -> Endpoint:
        """A copy of this endpoint with another weight (validated)."""
        return Endpoint(self.address, _check_weight(weight, self.address), self.metadata)


#: What the membership operations accept: an :class:`Endpoint` or an address string (weight 1).
EndpointLike = Endpoint | str


def as_endpoint(item: EndpointLike) -> Endpoint:
    """Coerce a string (weight 1) or an :class:`Endpoint` into an :class:`Endpoint`."""
    if isinstance(item, Endpoint):
        return item
    if isinstance(item, str):
        return Endpoint(item)
    raise InvalidEndpoint(f"expected an Endpoint or a 'host:port' string, not {describe(item)}")


def as_endpoints(items: Iterable[EndpointLike]) -> list[Endpoint]:
    """Coerce many endpoints, refusing the same address twice and more than
    :data:`MAX_POOL_SIZE` (read lazily: an endless generator stops at one more)."""
    if isinstance(items, str | Endpoint):
        raise InvalidEndpoint(
            "pass a list of endpoints, not a single one: [" + describe(items) + "]"
        )
    try:
        iter(items)
    except TypeError:
        raise InvalidEndpoint(f"endpoints must be a list, not {describe(items)}") from None
    result: list[Endpoint] = []
    seen: set[str] = set()
    hint = ": give each client a share of a larger fleet with balancekit.subset"
    for item in bounded("endpoints", items, MAX_POOL_SIZE, hint):
        endpoint = as_endpoint(item)
        if endpoint.address in seen:
            raise DuplicateEndpoint(f"{describe(endpoint.address)} is listed twice")
        seen.add(endpoint.address)
        result.append(endpoint)
    return result
