"""DNS service discovery with dnspython: SRV records (priority and weight), or A/AAAA records.

Use::

    from balancekit.discovery import DNS, Watcher
    DNS("_http._tcp.backend.example").resolve()     # SRV: targets, ports and weights
    DNS("backend.example", port=8080).resolve()     # A and AAAA, every address on :8080
    with Watcher(lb, DNS("_http._tcp.backend.example")):   # refreshed by TTL in a thread
        ...

**SRV** (``port=None``, RFC 2782): every record's target is resolved to its A (and AAAA, unless
``ipv6=False``) addresses, each becoming ``address:port`` with the record's weight as the
endpoint weight (weight 0, "a very small chance" in RFC 2782, becomes 1; an address named by
several records gets the sum). Only the records of the best (numerically lowest) priority are
used; the others are standby, used when every record of the best group is gone from DNS
(``all_priorities=True`` uses every record and ignores priority). A target of ``"."`` means
"no service here" and is skipped.

**A/AAAA** (``port=8080``): every address of the name, weight 1.

The answer's ``ttl`` is the smallest TTL of the records used, so a
:class:`~balancekit.discovery.Watcher` asks again when the first of them expires. No answer
(NXDOMAIN, no records) gives an empty snapshot, which a watcher does not apply unless told to.
Timeouts and server failures raise (dnspython's exceptions): the balancer keeps its endpoints.

The lookups are a small generator (the plan) that yields queries and receives answers, driven
by a sync resolver (:meth:`DNS.resolve`) or an asyncio one (:meth:`DNS.resolve_async`).
Cost: one SRV query plus one or two address queries per target.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterable, Sequence
from typing import Any

from .._bounded import bounded
from .._errors import InvalidOption, missing_extra

try:
    import dns.asyncresolver
    import dns.exception
    import dns.rdatatype
    import dns.resolver
except ModuleNotFoundError as error:  # say which extra installs it, not only its module name
    if (error.name or "").partition(".")[0] != "dns":
        raise
    raise missing_extra("balancekit.discovery.DNS", "dnspython", "dns", "dns") from error

from .._endpoint import MAX_WEIGHT, Endpoint
from .._options import describe, seconds
from ._source import LONGEST_WAIT, Snapshot

__all__ = ["DNS"]

_Query = tuple[str, dns.rdatatype.RdataType]
_Plan = Generator[_Query, "dns.resolver.Answer | None", Snapshot]


def _join(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _srv_plan(name: str, *, ipv6: bool, all_priorities: bool) -> _Plan:
    """Yield the queries for an SRV lookup; return the snapshot."""
    answer = yield (name, dns.rdatatype.SRV)
    if answer is None or answer.rrset is None:
        return Snapshot((), 0.0)
    ttl = float(answer.rrset.ttl)
    records = list(answer.rrset)
    if not all_priorities:
        best = min(record.priority for record in records)
        records = [record for record in records if record.priority == best]
    weights: dict[str, int] = {}
    metadata: dict[str, dict[str, Any]] = {}
    kinds = (dns.rdatatype.A, dns.rdatatype.AAAA) if ipv6 else (dns.rdatatype.A,)
    for record in sorted(records, key=lambda r: (r.priority, r.target.to_text(), r.port)):
        target = record.target.to_text()
        if target == ".":
            continue
        for kind in kinds:
            addresses = yield (target, kind)
            if addresses is None or addresses.rrset is None:
                continue
            ttl = min(ttl, float(addresses.rrset.ttl))
            for item in addresses.rrset:
                address = _join(item.address, record.port)
                weights[address] = min(weights.get(address, 0) + max(record.weight, 1), MAX_WEIGHT)
                metadata[address] = {
                    "target": target,
                    "priority": record.priority,
                    "srv_weight": record.weight,
                }
    endpoints = tuple(
        Endpoint(address, weight, metadata[address]) for address, weight in sorted(weights.items())
    )
    return Snapshot(endpoints, ttl)


def _address_plan(name: str, port: int, *, ipv6: bool) -> _Plan:
    """Yield the A (and AAAA) queries for ``name``; return the snapshot."""
    ttl = math.inf
    addresses: set[str] = set()
    kinds = (dns.rdatatype.A, dns.rdatatype.AAAA) if ipv6 else (dns.rdatatype.A,)
    for kind in kinds:
        answer = yield (name, kind)
        if answer is None or answer.rrset is None:
            continue
        ttl = min(ttl, float(answer.rrset.ttl))
        addresses.update(_join(item.address, port) for item in answer.rrset)
    if not addresses:
        return Snapshot((), 0.0)
    return Snapshot(tuple(Endpoint(address) for address in sorted(addresses)), ttl)


#: The most ``nameservers`` a DNS source takes (resolv.conf's MAXNS is 3).
MAX_NAMESERVERS = 64


def _nameservers(value: object) -> list[str]:
    """``nameservers`` as a list, each item checked as it is read and at most
    :data:`MAX_NAMESERVERS` (a generator is read once; an endless one is refused)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidOption(f"nameservers must be a list of IP addresses, not {describe(value)}")
    listed: list[str] = []
    for item in bounded("nameservers", value, MAX_NAMESERVERS):
        if not isinstance(item, str):
            raise InvalidOption(
                f"nameservers must be a list of IP addresses, not {describe(value)}"
            )
        listed.append(item)
    return listed


class DNS:
    """A discovery source reading SRV or A/AAAA records (see the module docs).

    Options (keyword-only, validated at once): ``port`` (None: SRV; a port: A/AAAA),
    ``nameservers`` (IP addresses, at most 64; default resolv.conf's), ``nameserver_port``
    (default 53), ``timeout`` (seconds for a whole lookup, every query of it included; default
    2, finite, at most a day), ``ipv6`` (also AAAA, default True), ``all_priorities`` (default
    False). dnspython's own cache is off: every refresh asks the server, the TTL decides how often.
    """

    def __init__(
        self,
        name: str,
        *,
        port: int | None = None,
        nameservers: Sequence[str] | None = None,
        nameserver_port: int = 53,
        timeout: float = 2.0,
        ipv6: bool = True,
        all_priorities: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name.strip("."):
            raise InvalidOption(
                f"name must be a DNS name like '_http._tcp.backend', not {describe(name)}"
            )
        for label, value in (("port", port), ("nameserver_port", nameserver_port)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 65535
            ):
                raise InvalidOption(f"{label} must be a port number 1-65535, not {describe(value)}")
        timeout = seconds("timeout", timeout, high=LONGEST_WAIT)  # inf would block forever
        if nameservers is not None:
            nameservers = _nameservers(nameservers)
        self.name = name if name.endswith(".") else name + "."
        self.port = port
        self._timeout = timeout
        self._ipv6 = bool(ipv6)
        self._all_priorities = bool(all_priorities)
        self._sync = self._configure(dns.resolver.Resolver, nameservers, nameserver_port, timeout)
        self._async = self._configure(
            dns.asyncresolver.Resolver, nameservers, nameserver_port, timeout
        )

    @staticmethod
    def _configure(kind: Any, nameservers: Sequence[str] | None, port: int, timeout: float) -> Any:
        resolver = kind(configure=nameservers is None)
        if nameservers is not None:
            resolver.nameservers = list(nameservers)
        resolver.port = port
        resolver.timeout = float(timeout)
        resolver.lifetime = float(timeout)
        resolver.cache = None
        return resolver

    def _plan(self) -> _Plan:
        if self.port is None:
            return _srv_plan(self.name, ipv6=self._ipv6, all_priorities=self._all_priorities)
        return _address_plan(self.name, self.port, ipv6=self._ipv6)

    def _lifetime(self, deadline: float) -> float:
        """What is left of the lookup's ``timeout``; raises dnspython's Timeout when nothing is."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise dns.exception.Timeout(timeout=self._timeout)  # type: ignore[no-untyped-call]
        return left

    def resolve(self) -> Snapshot:
        """Look the name up now (blocking, at most about ``timeout`` in all)."""
        deadline = time.monotonic() + self._timeout
        plan = self._plan()
        query = next(plan)
        while True:
            try:
                answer: dns.resolver.Answer | None = self._sync.resolve(
                    query[0],
                    query[1],
                    search=False,
                    raise_on_no_answer=False,
                    lifetime=self._lifetime(deadline),
                )
            except dns.resolver.NXDOMAIN:
                answer = None
            try:
                query = plan.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def resolve_async(self) -> Snapshot:
        """Look the name up now without blocking the event loop (about ``timeout`` in all)."""
        deadline = time.monotonic() + self._timeout
        plan = self._plan()
        query = next(plan)
        while True:
            try:
                answer: dns.resolver.Answer | None = await self._async.resolve(
                    query[0],
                    query[1],
                    search=False,
                    raise_on_no_answer=False,
                    lifetime=self._lifetime(deadline),
                )
            except dns.resolver.NXDOMAIN:
                answer = None
            try:
                query = plan.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        kind = "SRV" if self.port is None else f"A/AAAA :{self.port}"
        return f"DNS({self.name!r}, {kind})"
