"""IPHash: a consistent-hash ring with virtual nodes, in a sorted ``array('Q')`` searched by bisect.

Karger et al., "Consistent hashing and random trees" (STOC 1997); virtual nodes as in
Dynamo (DeCandia et al., SOSP 2007) and libketama.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections.abc import Collection, Iterable
from typing import Any

from ..._core import Clock
from ..._endpoint import EndpointLike
from ..._errors import InvalidOption
from ..._state import EndpointState
from ._keyed import KeyedBalancer, KeyFunction, hash64

__all__ = ["IPHash", "ring_points"]


def ring_points(address: str, count: int) -> list[int]:
    """The ring positions of an endpoint: ``hash64(f"{address}#{i}")`` for i in range(count).

    ``hash64`` is the low 64 bits of MurmurHash3_x64_128 with seed 0 over the UTF-8 bytes, so
    anyone can rebuild the ring: an endpoint of weight w owns ``replicas * w`` points, and a key
    belongs to the owner of the first point at or after ``hash64(key)``, wrapping past the top.
    Equal points (a 64-bit collision) are ordered by address.
    """
    return [hash64(f"{address}#{index}") for index in range(count)]


class IPHash(KeyedBalancer):
    """Consistent hashing on a key (a client IP, a session id): the same key, the same endpoint.

    Each endpoint owns ``replicas * weight`` points on a 64-bit ring (see :func:`ring_points`);
    a key goes to the first point clockwise from its hash. Removing or marking down an endpoint
    moves only the keys it owned; adding one of N moves about 1/N of the keys. The mapping depends
    only on the addresses, weights and keys, so it is the same in every process and on every
    machine. With 160 replicas the busiest of N endpoints carries about 1.2-1.3x the mean load.

    Lookup is O(log(N * replicas)) (one MurmurHash3 and a bisect), lock-free; a membership change
    rebuilds the ring in O(N * replicas * log) and swaps it in with one assignment. ``avoid``
    walks clockwise to the next endpoint not avoided.

    >>> lb = IPHash(["a:1", "b:1", "c:1"])
    >>> lb.select("203.0.113.7").address == lb.select("203.0.113.7").address
    True
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        key: KeyFunction | None = None,
        replicas: int = 160,
        clock: Clock = time.monotonic,
    ) -> None:
        if (
            isinstance(replicas, bool)
            or not isinstance(replicas, int)
            or not 1 <= replicas <= 10_000
        ):
            raise InvalidOption(f"replicas must be an int from 1 to 10000, not {replicas!r}")
        super().__init__(endpoints, key=key, clock=clock)
        self._replicas = replicas
        self._ring: tuple[array[int], tuple[EndpointState, ...]] = (array("Q"), ())
        self._start()

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        entries: list[tuple[int, str, EndpointState]] = []
        for state in eligible:
            address = state.endpoint.address
            for point in ring_points(address, self._replicas * state.weight):
                entries.append((point, address, state))
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        self._ring = (array("Q", [entry[0] for entry in entries]), tuple(e[2] for e in entries))

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        points, owners = self._ring  # one read: a concurrent rebuild cannot tear it
        if not owners:
            raise self._nothing_available()
        index = bisect_left(points, self._hash_of(context))
        if index == len(points):
            index = 0
        state = owners[index]
        if avoid and state.endpoint.address in avoid:
            return self._next_not_avoided(owners, index, avoid)
        return state

    def _next_not_avoided(
        self, owners: tuple[EndpointState, ...], start: int, avoid: Collection[str]
    ) -> EndpointState:
        for step in range(1, len(owners)):
            state = owners[(start + step) % len(owners)]
            if state.endpoint.address not in avoid:
                return state
        raise self._nothing_available(avoid)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        points, owners = self._ring
        assert len(points) == len(owners)
        assert all(points[i] <= points[i + 1] for i in range(len(points) - 1))
        eligible = self._eligible()
        assert len(points) == sum(self._replicas * s.weight for s in eligible)
