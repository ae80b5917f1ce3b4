"""IPHash: a consistent-hash ring with virtual nodes, in a sorted ``array('Q')`` searched by bisect.

Karger et al., "Consistent hashing and random trees" (STOC 1997); virtual nodes as in
Dynamo (DeCandia et al., SOSP 2007) and libketama.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections.abc import Collection, Iterable
from itertools import accumulate
from typing import Any

from ..._core import Clock
from ..._endpoint import EndpointLike
from ..._errors import InvalidOption
from ..._state import EndpointState
from ._keyed import _MASK64, KeyedBalancer, KeyFunction, _murmur128, hash64, key_bytes

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

    Lookup is O(1) expected (one MurmurHash3 and a bucket index over the ring), lock-free; a
    membership change rebuilds the ring in O(N * replicas * log) and swaps it in at once. ``avoid``
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
        self._ring = _Ring(array("Q"), ())
        self._start()

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        # Sort (point, owner) pairs packed into one int each: point in the high bits, the owner's
        # rank by address in the low bits, so equal points order by address. Sorting plain ints
        # is several times faster than sorting tuples.
        owners_by_address = sorted(eligible, key=lambda state: state.endpoint.address)
        bits = max(1, len(owners_by_address).bit_length())
        packed: list[int] = []
        for rank, state in enumerate(owners_by_address):
            points = ring_points(state.endpoint.address, self._replicas * state.weight)
            packed.extend([(point << bits) | rank for point in points])
        packed.sort()
        mask = (1 << bits) - 1
        self._ring = _Ring(
            array("Q", [value >> bits for value in packed]),
            tuple([owners_by_address[value & mask] for value in packed]),
        )

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        ring = self._ring  # one read: a concurrent rebuild cannot tear it
        key = context if self._key is None else self._key(context)
        if type(key) is not str and type(key) is not bytes:
            key = key_bytes(key, self._key is not None)
        hashed = _murmur128(key) & _MASK64
        points = ring.points
        index = ring.starts[hashed >> ring.shift]
        end = len(points)
        while index < end and points[index] < hashed:  # about one step: see _Ring
            index += 1
        if index == end:
            if not end:
                raise self._nothing_available()
            index = 0
        state = ring.owners[index]
        if avoid and state.endpoint.address in avoid:
            return self._next_not_avoided(ring.owners, index, avoid)
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
        ring = self._ring
        points = ring.points
        assert len(points) == len(ring.owners)
        assert all(points[i] <= points[i + 1] for i in range(len(points) - 1))
        eligible = self._eligible()
        assert len(points) == sum(self._replicas * s.weight for s in eligible)
        for bucket, start in enumerate(ring.starts):  # starts[b] = first point in bucket b or later
            assert start == bisect_left(points, bucket << ring.shift)


class _Ring:
    """The ring: sorted points, their owners, and a bucket index that makes lookup O(1).

    ``starts[b]`` is the index of the first point >= ``b << shift``; with at least as many
    buckets as points, a lookup jumps to its bucket's start and steps past about one point,
    where a bisect of a boxed ``array('Q')`` costs ~11 comparisons. 4-8 bytes per point.
    """

    __slots__ = ("owners", "points", "shift", "starts")

    def __init__(self, points: array[int], owners: tuple[EndpointState, ...]) -> None:
        bits = max(1, len(points).bit_length())
        self.shift = 64 - bits
        self.points = points
        self.owners = owners
        counts = [0] * ((1 << bits) + 1)  # counts[b + 1]: points in bucket b
        for point in points:
            counts[(point >> self.shift) + 1] += 1
        self.starts = array("I", accumulate(counts[:-1]))  # points in buckets before b
