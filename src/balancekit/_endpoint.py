"""Endpoints: an address, a weight and free-form metadata; parsing and validation."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._errors import DuplicateEndpoint, InvalidEndpoint

__all__ = ["MAX_WEIGHT", "Endpoint", "EndpointLike", "as_endpoint", "as_endpoints", "split_address"]

#: The largest weight an endpoint may carry (NGINX allows up to 2**31 - 1; HAProxy 256).
MAX_WEIGHT = 1_000_000

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$"
)


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``) into its host and port, validating both.

    >>> split_address("10.0.0.1:8080")
    ('10.0.0.1', 8080)
    >>> split_address("[::1]:443")
    ('::1', 443)
    """
    if not isinstance(address, str):
        raise InvalidEndpoint(f"an address must be a str like 'host:port', not {address!r}")
    if address.startswith("["):
        close = address.find("]")
        if close < 0 or address[close + 1 : close + 2] != ":":
            raise InvalidEndpoint(f"cannot parse {address!r}: write IPv6 addresses as '[::1]:8080'")
        host, port_text = address[1:close], address[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidEndpoint(f"{host!r} in {address!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or not host:
            raise InvalidEndpoint(
                f"cannot parse {address!r}: expected 'host:port', e.g. '10.0.0.1:8080'"
            )
        if ":" in host:
            raise InvalidEndpoint(
                f"cannot parse {address!r}: put IPv6 hosts in brackets, '[::1]:8080'"
            )
        if not _HOSTNAME.match(host):
            raise InvalidEndpoint(
                f"{host!r} in {address!r} is neither an IP address nor a hostname"
            )
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise InvalidEndpoint(f"the port in {address!r} must be a number from 0 to 65535")
    return host, int(port_text)


def _check_weight(weight: object, address: str) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise InvalidEndpoint(f"the weight of {address!r} must be an int, not {weight!r}")
    if not 1 <= weight <= MAX_WEIGHT:
        raise InvalidEndpoint(
            f"the weight of {address!r} is {weight}: weights are whole numbers 1 to {MAX_WEIGHT}"
            " (use mark_down() to take an endpoint out of rotation)"
        )
    return weight


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One server a balancer can choose: its ``host:port`` address, a weight and metadata.

    Endpoints are immutable and compare by address and weight; metadata (zone, version, ...) is
    carried along for the caller and never read by a strategy.

    >>> Endpoint("10.0.0.1:8080", weight=5)
    Endpoint(address='10.0.0.1:8080', weight=5)
    >>> Endpoint("10.0.0.1:8080").port
    8080
    """

    address: str
    weight: int = 1
    metadata: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        split_address(self.address)
        _check_weight(self.weight, self.address)
        if not isinstance(self.metadata, MappingProxyType):
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

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
    raise InvalidEndpoint(f"expected an Endpoint or a 'host:port' string, not {item!r}")


def as_endpoints(items: Iterable[EndpointLike]) -> list[Endpoint]:
    """Coerce many endpoints, refusing the same address twice."""
    if isinstance(items, str | Endpoint):
        raise InvalidEndpoint("pass a list of endpoints, not a single one: [" + repr(items) + "]")
    result: list[Endpoint] = []
    seen: set[str] = set()
    for item in items:
        endpoint = as_endpoint(item)
        if endpoint.address in seen:
            raise DuplicateEndpoint(f"{endpoint.address!r} is listed twice")
        seen.add(endpoint.address)
        result.append(endpoint)
    return result
