"""Ketama: the libketama / memcached continuum, point for point, so Python agrees with them.

Source: libketama (Richard Jones, Last.fm, 2007), ``ketama.c``: ``ketama_create_continuum`` and
``ketama_get_server``; the Python peer ``uhashring`` (``uhashring/ring_ketama.py``).
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Collection, Iterable
from typing import Any, Final, Literal

from mypy_extensions import mypyc_attr

from ..._core import Clock, Delta
from ..._endpoint import EndpointLike
from ..._errors import InvalidOption
from ..._options import describe
from ..._state import EndpointState
from . import _keyed
from ._keyed import KeyedBalancer, KeyFunction, key_bytes, md5, utf8
from ._points import PICK_STEP, PointRing

#: Final aliases of what picks call: the compiled build reads a module's Final from a C static,
#: where a name imported from another module is a dict lookup on every call (issue 15).
_md5: Final = _keyed.md5  # picks; building points calls md5 (tests count its calls)


__all__ = ["Ketama", "ketama_hash", "ketama_point_count", "ketama_points"]

Compat = Literal["libketama", "uhashring"]

_F32: Final = struct.Struct("<f")
_from_le: Final = int.from_bytes
_first_word: Final = struct.Struct("<I").unpack_from  # the first 4 bytes, little-endian


def _f32(value: float) -> float:
    """``value`` rounded to IEEE single precision, as a C ``float`` holds it."""
    return float(_F32.unpack(_F32.pack(value))[0])


def ketama_hash(key: bytes | str) -> int:
    """libketama's ``ketama_hashi``: the first 4 bytes of MD5(key), little-endian, unsigned.

    >>> ketama_hash("test")  # libketama's python_ketama test: hashi("test") == 3446378249
    3446378249
    """
    data = key_bytes(key)
    return _from_le(_md5(data).digest()[:4], "little")


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


def ketama_points(address: str, digests: int, start: int = 0) -> list[int]:
    """The points of a server: for k in range(start, digests), the four little-endian 32-bit
    words of MD5(f"{address}-{k}"), in order (``ketama_create_continuum``)."""
    points: list[int] = []
    for k in range(start, digests):
        digest = md5(utf8(f"{address}-{k}")).digest()
        points.extend(struct.unpack("<4I", digest))
    return points


@mypyc_attr(allow_interpreted_subclasses=True)
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

    Weights follow libketama: ``ks`` is a function of w / W in both formats (libketama's
    ``ketama_create_continuum``, uhashring's ``ring_ketama.py``), so one weight change (or a
    change of N, with unequal weights) re-divides every server's share. That is the format's
    definition, not this implementation's: counted at N = 10,000 equal servers, one set to
    weight 2, the 9,999 others drop from 40 digests to 39 (39,996 points leave the ring) and
    that one gains 39 (156 points); applying exactly those costs ~0.35 s of CPU, about 1/5 of
    uhashring's ``remove_node`` + ``add_node`` for the same change and ~300x IPHash's
    ``set_weight`` (``benchmarks/bench_ring_weight.py``; docs/benchmarks.md, "Issue 11: proof
    on cab1f07"). Where weights change often and memcached compatibility is not needed, use
    :class:`IPHash` or :class:`BoundedLoadHash`: an endpoint's points do not depend on the
    others' weights, so the same change moves only its own 160 points. Unequal weights also
    move more keys than the 1/N ideal. Balance is that of a 160-point ring (the busiest of 100
    servers carries about 1.2-1.3x the mean).

    Lookup: one MD5, a bucket index and about one step in a flat sorted array (O(1)
    expected), lock-free. A membership change inserts or deletes only the points whose digest
    count changed (O(1) each, in an overlay merged at 1/64 of the ring; with equal
    weights that is the one server added or removed, except at the pool sizes where libketama's
    single-precision ``ks`` changes for every server), O(k) for the counts of the k distinct
    weights; a change that moves any other server's count compares all counts, O(N).
    ``avoid`` walks clockwise to the next server not avoided.

    >>> lb = Ketama(["127.0.0.1:11211", "127.0.0.1:11212"])
    >>> lb.lookup("test").address in {"127.0.0.1:11211", "127.0.0.1:11212"}
    True
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        compat: Compat | Any = "libketama",
        key: KeyFunction | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if compat not in ("libketama", "uhashring"):
            raise InvalidOption(
                f"compat must be 'libketama' or 'uhashring', not {describe(compat)}"
            )
        super().__init__(endpoints, key=key, clock=clock)
        self._compat: Compat = compat
        self._past_equal = compat == "uhashring"  # uhashring bisects right: skips an equal point
        self._ring = PointRing(32, past_equal=self._past_equal)
        self._view = self._ring.view  # what lookups read (lock-free)
        self._placed: dict[EndpointState, int] = {}  # state -> MD5 digests it has on the ring
        self._ranks: dict[EndpointState, int] | None = None  # join order, computed on a tie
        self._eligible_now: list[EndpointState] = []
        self._weight_counts: dict[int, int] = {}  # weight -> eligible servers
        self._digests: dict[int, int] = {}  # weight -> digests per server, as last applied
        self._start()

    def _first(self, a: EndpointState, b: EndpointState) -> bool:
        """On an equal point: libketama serves the earlier server, uhashring the later one."""
        ranks = self._ranks
        if ranks is None:  # only on a 32-bit collision: the join order of the eligible servers
            ranks = self._ranks = {state: rank for rank, state in enumerate(self._eligible_now)}
        # .get: a lock-free reader of an older view may ask about a server gone since.
        return (ranks.get(a, -1) < ranks.get(b, -1)) != self._past_equal

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        total = sum(state.weight for state in eligible)
        servers = len(eligible)
        counts: dict[int, int] = {}  # weight -> digests: one computation per distinct weight
        for weight in {state.weight for state in eligible}:
            counts[weight] = ketama_point_count(weight, total, servers, self._compat)
        wanted = {state: counts[state.weight] for state in eligible}
        self._eligible_now, self._ranks = eligible, None
        placed, ring = self._placed, self._ring
        if ring.needs_relayout(4 * sum(wanted.values())):
            self._layout(eligible, wanted)
            return
        first = self._first
        wanted_items, placed_items = wanted.items(), placed.items()  # not a set difference:
        drop = [pair for pair in placed_items if pair not in wanted_items]  # no 2 x N tuples
        grow = [pair for pair in wanted_items if pair not in placed_items]
        for state, digests in drop:
            keep = wanted.get(state, 0)
            if keep < digests:
                ring.delete(state, ketama_points(state.endpoint.address, digests, keep))
            if state not in wanted:
                del placed[state]
            elif keep < digests:
                placed[state] = keep  # it shrank (a grown one is handled below)
        for state, digests in grow:
            have = placed.get(state, 0)
            if have < digests:  # only the new digests' points: k = have .. digests - 1
                points = ketama_points(state.endpoint.address, digests, have)
                ring.insert(state, points, first)
            placed[state] = digests
        self._view = ring.view  # one assignment: readers see before or after the change

    def _apply(self, delta: Delta) -> None:
        """Only the changed servers' digests (issue 11) while every other server keeps its
        digest count (equal weights, except at the pool sizes where libketama's
        single-precision count changes for all): O(k) counts for k distinct weights plus the
        changed points; otherwise the whole continuum is compared, as before."""
        counts = self._weight_counts
        if not delta.full:
            for state in [*delta.removed, *delta.reweighted]:
                weight = delta.before[id(state)]
                counts[weight] -= 1
                if not counts[weight]:
                    del counts[weight]
            for state in [*delta.reweighted, *delta.added]:
                counts[state.weight] = counts.get(state.weight, 0) + 1
        eligible = self._eligible_list
        total = sum(weight * count for weight, count in counts.items())
        digests = {
            weight: ketama_point_count(weight, total, len(eligible), self._compat)
            for weight in counts
        }
        points = 4 * sum(digests[weight] * count for weight, count in counts.items())
        if (
            delta.full
            or any(self._digests.get(w, digests[w]) != digests[w] for w in counts)
            or self._ring.needs_relayout(points)
        ):
            self._rebuild(list(eligible))
            counts.clear()
            for state in eligible:
                counts[state.weight] = counts.get(state.weight, 0) + 1
            total = sum(weight * count for weight, count in counts.items())
            self._digests = {
                weight: ketama_point_count(weight, total, len(eligible), self._compat)
                for weight in counts
            }
            return
        self._digests = digests
        # A copy (O(n) in C): lock-free readers may rank ties from it while the base changes
        # its own list in place.
        self._eligible_now, self._ranks = list(eligible), None
        ring, placed, first = self._ring, self._placed, self._first
        for state in delta.removed:
            have = placed.pop(state, 0)
            if have:
                ring.delete(state, ketama_points(state.endpoint.address, have))
        for state in delta.reweighted:  # digest k is the same at any count: only the tail
            have, want = placed.get(state, 0), digests[state.weight]
            if want < have:
                ring.delete(state, ketama_points(state.endpoint.address, have, want))
            placed[state] = min(have, want)
        for state in [*delta.reweighted, *delta.added]:
            have, want = placed.get(state, 0), digests[state.weight]
            if want > have:
                tail = ketama_points(state.endpoint.address, want, have)
                ring.insert(state, tail, first)
            placed[state] = want
        self._view = ring.view  # one assignment: readers see before or after the change

    def _layout(self, eligible: list[EndpointState], wanted: dict[EndpointState, int]) -> None:
        """Build the continuum from scratch (first build, or a size far from the last layout)."""
        bits = max(1, len(eligible).bit_length())
        top = len(eligible) - 1
        flip = self._past_equal  # equal points: uhashring serves the later server first
        packed: list[int] = []
        for rank, state in enumerate(eligible):
            tie = top - rank if flip else rank
            points = ketama_points(state.endpoint.address, wanted[state])
            packed.extend([(point << bits) | tie for point in points])
        packed.sort()
        owners = eligible[::-1] if flip else list(eligible)  # indexed by the tie bits
        ring = PointRing(32, len(packed), past_equal=self._past_equal)
        ring.fill(owners, packed, bits)
        self._placed = dict(wanted)
        self._ring = ring
        self._view = ring.view  # one assignment: readers see the old continuum or the new one

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        view = self._view  # one read: every change publishes a new view
        key = context if self._key is None else self._key(context)
        if type(key) is str:
            try:  # valid text: its UTF-8, as the policy gives (a try costs nothing on 3.11)
                key = key.encode()
            except UnicodeEncodeError:  # a lone surrogate: the policy's bytes (see _keyed)
                key = key_bytes(key, self._key is not None)
        elif type(key) is not bytes:  # anything else: the policy refuses it (see _keyed)
            key = key_bytes(key, self._key is not None)
        hashed: int = _first_word(_md5(key).digest())[0]
        points = view.points  # RingView.base_at, inlined: the sentinel (2**32) ends it
        index = view.starts[hashed >> view.shift]
        if self._past_equal:
            while points[index] <= hashed:
                index += 1
        else:
            while points[index] < hashed:
                index += 1
        if view.dirty:  # changes not merged into the base yet, or an empty ring
            if self._ring.merging:
                self._tick()  # one pick in PICK_EVERY merges a chunk
            shift, marks = view.shift, view.marks  # RingView.clean, inlined
            bucket, top = hashed >> shift, points[index] >> shift
            if (
                marks[bucket]
                or index >= view.size
                or (
                    top != bucket
                    and (marks[top] or (top > bucket + 1 and view.marked(bucket + 1, top)))
                )
            ):
                resolved = view.resolve(hashed, index)
                if resolved is None:
                    raise self._nothing_available()
                state = resolved
            else:
                state = view.table[view.ids[index]]
        else:  # index < size here: a base point's owner, never the sentinel
            state = view.table[view.ids[index]]
        if avoid and state.endpoint.address in avoid:
            found = view.find(hashed, lambda other: other.endpoint.address not in avoid)
            if found is None:
                raise self._nothing_available(avoid)
            return found
        return state

    def continuum(self) -> list[tuple[int, str]]:
        """The ring as ``(point, address)`` pairs in point order (libketama's ``get_points``),
        one pair per distinct point: the server a lookup lands on."""
        out: list[tuple[int, str]] = []
        for point, state in self._ring.items():
            if not out or out[-1][0] != point:
                out.append((point, state.endpoint.address))
        return out

    def _settle(self) -> None:
        self._view = self._ring.settle()

    def _step(self) -> None:
        self._view = self._ring.advance(PICK_STEP)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            ring = self._ring
            items = ring.items()
            assert len(items) == ring.count == 4 * sum(self._placed.values())
            assert all(items[i][0] <= items[i + 1][0] for i in range(len(items) - 1))
            assert self._view is ring.view  # every change published
            ring.check()
            eligible = self._eligible()
            assert {state for _, state in items} <= set(eligible)
            total = sum(state.weight for state in eligible)
            for state in eligible:
                digests = ketama_point_count(state.weight, total, len(eligible), self._compat)
                assert self._placed.get(state, 0) == digests
