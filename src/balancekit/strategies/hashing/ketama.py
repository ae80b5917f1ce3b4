"""Ketama: the libketama / memcached continuum, point for point, so Python agrees with them.

Source: libketama (Richard Jones, Last.fm, 2007), ``ketama.c``: ``ketama_create_continuum`` and
``ketama_get_server``; the Python peer ``uhashring`` (``uhashring/ring_ketama.py``).
"""

from __future__ import annotations

import math
import struct
import time
from array import array
from bisect import bisect_left
from collections.abc import Collection, Iterable
from hashlib import md5
from itertools import accumulate
from typing import Any, Literal

from ..._core import Clock
from ..._endpoint import EndpointLike
from ..._errors import InvalidOption
from ..._state import EndpointState
from ._keyed import KeyedBalancer, KeyFunction, key_bytes

__all__ = ["Ketama", "ketama_hash", "ketama_point_count", "ketama_points"]

Compat = Literal["libketama", "uhashring"]

_F32 = struct.Struct("<f")
_from_le = int.from_bytes
_first_word = struct.Struct("<I").unpack_from  # the first 4 bytes, little-endian


def _f32(value: float) -> float:
    """``value`` rounded to IEEE single precision, as a C ``float`` holds it."""
    return float(_F32.unpack(_F32.pack(value))[0])


def ketama_hash(key: bytes | str) -> int:
    """libketama's ``ketama_hashi``: the first 4 bytes of MD5(key), little-endian, unsigned.

    >>> ketama_hash("test")  # libketama's python_ketama test: hashi("test") == 3446378249
    3446378249
    """
    data = key.encode() if isinstance(key, str) else key
    return _from_le(md5(data).digest()[:4], "little")


def ketama_point_count(weight: int, total: int, servers: int, compat: Compat = "libketama") -> int:
    """How many MD5 digests (4 points each) a server of ``weight`` gets among ``servers``.

    libketama computes ``floorf(pct * 40.0 * (float)numservers)`` with ``pct`` a C ``float``
    (single precision): for some pool sizes (61 equal servers is the first) that gives 39, not
    40. ``uhashring`` computes ``40 * servers * weight // total`` in integers. Both are offered.
    """
    if compat == "uhashring":
        return 40 * servers * weight // total
    pct = _f32(_f32(float(weight)) / _f32(float(total)))
    return math.floor(_f32(pct * 40.0 * _f32(float(servers))))


def ketama_points(address: str, digests: int) -> list[int]:
    """The points of a server: for k in range(digests), the four little-endian 32-bit words of
    MD5(f"{address}-{k}"), in order (``ketama_create_continuum``)."""
    points: list[int] = []
    for k in range(digests):
        digest = md5(f"{address}-{k}".encode()).digest()
        points.extend(struct.unpack("<4I", digest))
    return points


class Ketama(KeyedBalancer):
    """The memcached client ring (libketama): the same key goes where libketama would send it.

    Use it to share a cache fleet with memcached clients built on libketama (libmemcached in
    ketama-compatible mode, pylibmc, spymemcached's ketama locator) or to migrate from
    ``uhashring``'s ketama mode (``compat="uhashring"``). For a new deployment prefer
    :class:`Maglev` or :class:`JumpHash`, which balance better and move fewer keys.

    Layout: each server (its address string, e.g. ``"127.0.0.1:11211"``) of weight w among N
    servers of total weight W gets ``ks = floor(w / W * 40 * N)`` MD5 digests of
    ``f"{address}-{k}"``, each giving 4 points (32-bit little-endian words), so 160 points per
    server at equal weights. A key's hash is the first word of MD5(key); it belongs to the first
    point >= that hash, wrapping to the first point.

    The two modes differ only in corner cases: ``ks`` (libketama's single-precision arithmetic
    gives 39 instead of 40 at some pool sizes, e.g. 61 equal servers), a key hash exactly equal
    to a point (libketama takes that point, uhashring the next: about one key in 2^32 / points),
    and two servers on the same 32-bit point (libketama's qsort order; balancekit gives it to the
    earlier server, uhashring to the later one).

    Weights follow libketama: a change of one weight (or of N) re-divides every server's share,
    so unequal weights move more keys than the 1/N ideal. Balance is that of a 160-point ring
    (the busiest of 100 servers carries about 1.2-1.3x the mean).

    Lookup: one MD5 and a bucket index over the sorted points (O(1) expected), lock-free.
    Rebuild: O(points log points). ``avoid`` walks clockwise to the next server not avoided.

    >>> lb = Ketama(["127.0.0.1:11211", "127.0.0.1:11212"])
    >>> lb.lookup("test").address in {"127.0.0.1:11211", "127.0.0.1:11212"}
    True
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        compat: Compat = "libketama",
        key: KeyFunction | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if compat not in ("libketama", "uhashring"):
            raise InvalidOption(f"compat must be 'libketama' or 'uhashring', not {compat!r}")
        super().__init__(endpoints, key=key, clock=clock)
        self._compat: Compat = compat
        self._past_equal = compat == "uhashring"  # uhashring bisects right: skips an equal point
        self._continuum = _Continuum(array("I"), ())
        self._start()

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        total = sum(state.weight for state in eligible)
        servers = len(eligible)
        bits = max(1, servers.bit_length())
        packed: list[int] = []
        for rank, state in enumerate(eligible):
            digests = ketama_point_count(state.weight, total, servers, self._compat)
            points = ketama_points(state.endpoint.address, digests)
            packed.extend([(point << bits) | rank for point in points])
        packed.sort()
        # One owner per point: libketama's search lands on the first of equal points (the earlier
        # server here); uhashring's dict keeps the last server written.
        mask = (1 << bits) - 1
        keep_last = self._compat == "uhashring"
        points_out: list[int] = []
        owners: list[EndpointState] = []
        for value in packed:
            point, owner = value >> bits, eligible[value & mask]
            if points_out and points_out[-1] == point:
                if keep_last:
                    owners[-1] = owner
                continue
            points_out.append(point)
            owners.append(owner)
        self._continuum = _Continuum(array("I", points_out), tuple(owners))

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        continuum = self._continuum  # one read: a concurrent rebuild cannot tear it
        key = context if self._key is None else self._key(context)
        if type(key) is str:
            key = key.encode()
        elif type(key) is not bytes:
            key = key_bytes(key, self._key is not None)
        hashed: int = _first_word(md5(key).digest())[0]
        points = continuum.points
        index = continuum.starts[hashed >> continuum.shift]
        end = len(points)
        if self._past_equal:
            while index < end and points[index] <= hashed:
                index += 1
        else:
            while index < end and points[index] < hashed:
                index += 1
        if index == end:
            if not end:
                raise self._nothing_available()
            index = 0
        state = continuum.owners[index]
        if avoid and state.endpoint.address in avoid:
            owners = continuum.owners
            for step in range(1, len(owners)):
                state = owners[(index + step) % len(owners)]
                if state.endpoint.address not in avoid:
                    return state
            raise self._nothing_available(avoid)
        return state

    def continuum(self) -> list[tuple[int, str]]:
        """The ring as ``(point, address)`` pairs in point order (libketama's ``get_points``)."""
        continuum = self._continuum
        return [
            (p, s.endpoint.address) for p, s in zip(continuum.points, continuum.owners, strict=True)
        ]

    def _check_invariants(self) -> None:
        super()._check_invariants()
        continuum = self._continuum
        points = continuum.points
        assert len(points) == len(continuum.owners)
        assert all(points[i] < points[i + 1] for i in range(len(points) - 1))
        eligible = self._eligible()
        assert {id(s) for s in continuum.owners} <= {id(s) for s in eligible}
        for bucket, start in enumerate(continuum.starts):
            assert start == bisect_left(points, bucket << continuum.shift)


class _Continuum:
    """Sorted 32-bit points (``array('I')``), their owners, and a bucket index for O(1) lookup.

    ``starts[b]`` is the index of the first point >= ``b << shift``; with as many buckets as
    points a lookup jumps to its bucket and steps past about one point.
    """

    __slots__ = ("owners", "points", "shift", "starts")

    def __init__(self, points: array[int], owners: tuple[EndpointState, ...]) -> None:
        bits = max(1, len(points).bit_length())
        self.shift = 32 - min(bits, 24)
        self.points = points
        self.owners = owners
        counts = [0] * ((1 << (32 - self.shift)) + 1)
        for point in points:
            counts[(point >> self.shift) + 1] += 1
        self.starts = array("I", accumulate(counts[:-1]))
