"""Random subsetting with rendezvous hashing: gRPC's ``random_subsetting`` policy (gRFC A68).

Every endpoint is hashed with XXH64 (https://github.com/Cyan4973/xxHash) of its address, seeded
with the client's seed; the endpoints are sorted by hash and the first ``k`` kept; with ``n <=
k`` endpoints all are kept (gRFC A68 "Subsetting algorithm", grpc/proposal
``A68-random-subsetting.md``). Because an endpoint's hash does not depend on the others, adding
or removing one server changes at most one member of each client's subset (the rendezvous
property A68 chose it for): connection churn during a rollout stays at one connection per client
per server changed.

Clients pick independent seeds (A68 draws a random one per policy instance), so their subsets
are independent uniform samples: connections per server are binomial, close to even only when
``clients x k / servers`` is large (the SRE book's figure 20-2 shows the spread; the
:class:`~balancekit.subset.DeterministicSubset` and
:class:`~balancekit.subset.DeterministicAperture` remove it when instance ids are known).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Literal

from .._bounded import bounded
from .._endpoint import MAX_ADDRESS_LENGTH, MAX_POOL_SIZE, Endpoint, EndpointLike
from .._errors import InvalidOption
from .._options import describe, integer
from ._base import members

__all__ = ["RandomSubset"]

#: The largest subset size accepted (2**31 - 1, A68's ``subset_size`` is a uint32).
MAX_K = 2**31 - 1


def _xxh64() -> Callable[..., int]:
    try:
        import xxhash
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "RandomSubset needs XXH64 from the xxhash package: pip install 'balancekit[subset]'"
        ) from None
    function: Callable[..., int] = xxhash.xxh64_intdigest
    return function


Compat = Literal["address", "grpc-go"]


def _hash_text(address: str, compat: Compat) -> bytes:
    """What XXH64 hashes for ``address``: the address itself (gRFC A68's text), or what
    grpc-go hashes, the Go ``resolver.Address.String()`` of an address with no server name or
    attributes (``{Addr: "<address>", ServerName: "", }``; Go's ``%q`` leaves an address's
    printable ASCII as it is)."""
    if compat == "grpc-go":
        address = '{Addr: "' + address + '", ServerName: "", }'
    return address.encode()


class RandomSubset:
    """Keep the ``k`` endpoints with the lowest XXH64(address, seed) (gRFC A68).

    ``k``: the subset size (A68's ``subset_size``), at least 1. ``seed``: this client's seed,
    an int from 0 to 2**64 - 1; the default draws a random one (``secrets.randbits(64)``) as
    A68 does. Pass it to make a client's subset reproducible (e.g. derived from its instance
    id). The hash input is the endpoint's canonical address (``host:port``, IPv6 in brackets)
    as UTF-8, the text gRFC A68 names; ``compat="grpc-go"`` hashes what grpc-go's
    ``randomsubsetting`` balancer hashes instead (its ``Address.String()``), so a client given
    the same seed as a grpc-go client picks the same subset. Equal hashes (a 2**-64 event) are
    ordered by address, so the subset never depends on the order discovery listed the
    endpoints in. O(n log n) for n endpoints.

    >>> from balancekit.subset import RandomSubset
    >>> pool = [f"10.0.0.{i}:80" for i in range(1, 11)]
    >>> chosen = RandomSubset(3, seed=42).subset(pool)
    >>> len(chosen), chosen == RandomSubset(3, seed=42).subset(reversed(pool))
    (3, True)

    Sources: gRFC A68 (grpc/proposal ``A68-random-subsetting.md``, ``filter_endpoints``);
    grpc-go ``balancer/randomsubsetting/randomsubsetting.go`` (``calculateSubset``).
    """

    __slots__ = ("_hash", "compat", "k", "seed")

    def __init__(self, k: int, *, seed: int | None = None, compat: Compat = "address") -> None:
        self.k = integer("k", k, 1, MAX_K)
        if seed is None:
            seed = secrets.randbits(64)
        self.seed = integer("seed", seed, 0, 2**64 - 1)
        if compat not in ("address", "grpc-go"):
            raise InvalidOption(f"compat must be 'address' or 'grpc-go', not {describe(compat)}")
        self.compat: Compat = compat
        self._hash = _xxh64()

    def rank(self, address: str) -> int:
        """XXH64 of ``address`` (any string of at most 260 characters, e.g. ``host:port``)
        under this client's seed; lower ranks are kept first."""
        if not isinstance(address, str):
            raise InvalidOption(f"address must be a str, not {describe(address)}")
        if len(address) > MAX_ADDRESS_LENGTH:
            raise InvalidOption(
                f"an address has at most {MAX_ADDRESS_LENGTH} characters, got {len(address)}"
            )
        try:
            text = _hash_text(address, self.compat)
        except UnicodeEncodeError:
            raise InvalidOption(f"address {describe(address)} cannot be encoded as UTF-8") from None
        return self._hash(text, self.seed)

    def order(self, addresses: Iterable[str]) -> list[str]:
        """``addresses`` (distinct strings) sorted by :meth:`rank`, ties by the string: the
        order A68 keeps endpoints in. ``subset`` is the first ``k`` of it when n > k."""
        listed = list(bounded("addresses", addresses, MAX_POOL_SIZE))
        if len(set(listed)) != len(listed):
            raise InvalidOption("addresses must be distinct")
        ranks = {address: self.rank(address) for address in listed}
        return sorted(listed, key=lambda address: (ranks[address], address))

    def subset(self, endpoints: Iterable[EndpointLike]) -> tuple[Endpoint, ...]:
        """The ``k`` endpoints of lowest hash, in hash order (all of them, sorted by address,
        when ``n <= k``)."""
        listed = members(endpoints)
        if len(listed) <= self.k:
            return tuple(listed)
        by_address = {endpoint.address: endpoint for endpoint in listed}
        return tuple(by_address[a] for a in self.order(by_address)[: self.k])

    def __repr__(self) -> str:
        compat = "" if self.compat == "address" else f", compat={self.compat!r}"
        return f"RandomSubset({self.k}, seed={self.seed}{compat})"
