"""Ketama: the libketama / memcached continuum, point for point, so Python agrees with them.

Source: libketama (Richard Jones, Last.fm, 2007), ``ketama.c``: ``ketama_create_continuum`` and
``ketama_get_server``; the Python peer ``uhashring`` (``uhashring/ring_ketama.py``).
"""

from __future__ import annotations

import math
import struct
import time
from array import array
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
from ._points import PICK_STEP, PointRing, RingView
from ._tombs import Tombs

#: Final aliases of what picks call: the compiled build reads a module's Final from a C static,
#: where a name imported from another module is a dict lookup on every call (issue 15).
_md5: Final = _keyed.md5  # picks; building points calls md5 (tests count its calls)


__all__ = ["Ketama", "ketama_hash", "ketama_point_count", "ketama_points"]

Compat = Literal["libketama", "uhashring"]

_F32: Final = struct.Struct("<f")
_from_le: Final = int.from_bytes
_first_word: Final = struct.Struct("<I").unpack_from  # the first 4 bytes, little-endian
#: Dead points (tombstones of digests past their server's count) are dropped once they pass
#: 1/DEAD of the live ring: a lookup steps over at most a few on average.
DEAD: Final = 8


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
    change of N, with unequal weights) re-divides every server's share: counted at N = 10,000
    equal servers, one set to weight 2, the 9,999 others drop from 40 digests to 39 and that one
    gains 39 (``benchmarks/bench_ring_weight.py``). Unequal weights also move more keys than the
    1/N ideal. Balance is that of a 160-point ring (the busiest of 100 servers carries about
    1.2-1.3x the mean). Since digest k of a server is the same at any count, a server whose
    count drops keeps its points past the count on the ring as tombstones (:mod:`._tombs`): a
    point is live iff its digest index is below the count its owner's weight gives now, and
    lookups, ``avoid`` and :meth:`continuum` see live points only, exactly libketama's /
    uhashring's continuum. So the change above inserts that server's 156 new points and moves
    no other (~1 ms instead of ~0.35 s), and a change back revives the tails in place.

    Lookup: one MD5, a bucket index and about one step in a flat sorted array (O(1)
    expected), lock-free; while dead points exist, the landed point's test against its
    server's dead tail (one subscript and one set test, no call) and, for the few that land
    on a dead point, a step on through the base per dead point. A membership or weight
    change inserts or deletes only the changed servers' points (O(1) each, in an overlay
    merged at 1/64 of the ring), plus O(k) for the counts of the k distinct weights: 1 -> 2
    among 10,000 equal servers touches that server's new digests, not the 9,999 others'
    last one; a count that grows past what servers stored adds those digests (O(N)), and
    dead points are dropped through the same overlay once they pass 1/DEAD of the ring
    (O(N) plus them).
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
        # state -> its points on the ring in digest order, 4 a digest (live and dead ones)
        self._pts: dict[EndpointState, array[int]] = {}
        self._stored: dict[int, int] = {}  # weight -> points its servers have on the ring
        self._covered: dict[int, int] = {}  # weight -> digests each of its servers has, at least
        self._tombs: Tombs | None = None  # the dead points, while there are any
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
        """Every server to exactly its digest count (dead points dropped), by the changed points
        only, or laid out from scratch when the ring more than doubles."""
        total = sum(state.weight for state in eligible)
        servers = len(eligible)
        counts: dict[int, int] = {}  # weight -> digests: one computation per distinct weight
        for weight in {state.weight for state in eligible}:
            counts[weight] = ketama_point_count(weight, total, servers, self._compat)
        wanted = {state: counts[state.weight] for state in eligible}
        self._eligible_now, self._ranks = eligible, None
        self._digests = counts
        if self._ring.needs_relayout(4 * sum(wanted.values())):
            self._layout(eligible, wanted)
            return
        ring = self._ring
        pts = dict(self._pts)  # a new dict: readers of older views keep theirs
        self._pts = pts
        for state in [state for state in pts if state not in wanted]:
            ring.delete(state, list(pts.pop(state)))
        for state, digests in wanted.items():
            self._shrink(state, digests)
            self._grow(state, digests)
        self._recount(eligible)

    def _recount(self, eligible: list[EndpointState]) -> None:
        """Servers and stored points per weight from scratch (every server at its count)."""
        weights: dict[int, int] = {}
        stored: dict[int, int] = {}
        pts = self._pts
        for state in eligible:
            weights[state.weight] = weights.get(state.weight, 0) + 1
            owned = pts.get(state)
            stored[state.weight] = stored.get(state.weight, 0) + (len(owned) if owned else 0)
        self._weight_counts, self._stored = weights, stored
        self._covered = dict(self._digests)
        self._tombs = None
        self._publish()

    def _grow(self, state: EndpointState, want: int) -> None:
        """Store digests up to ``want`` for ``state`` (only those beyond what it stores)."""
        owned = self._pts.get(state)
        have = len(owned) // 4 if owned is not None else 0
        if want <= have:
            return
        points = ketama_points(state.endpoint.address, want, have)  # k = have .. want - 1
        self._ring.insert(state, points, self._first)
        tail = array("I", points)
        self._pts[state] = owned + tail if owned is not None else tail  # a new array
        self._stored[state.weight] = self._stored.get(state.weight, 0) + len(points)

    def _shrink(self, state: EndpointState, keep: int) -> None:
        """Drop ``state``'s digests from ``keep`` on off the ring (its dead tail)."""
        owned = self._pts.get(state)
        if owned is None or len(owned) <= 4 * keep:
            return
        self._ring.delete(state, list(owned[4 * keep :]))
        self._pts[state] = owned[: 4 * keep]
        self._stored[state.weight] = self._stored.get(state.weight, 0) - (len(owned) - 4 * keep)

    def _leave(self, weight: int) -> None:
        counts = self._weight_counts
        counts[weight] -= 1
        if not counts[weight]:
            del counts[weight]
            self._stored.pop(weight, None)
            self._covered.pop(weight, None)

    def _apply(self, delta: Delta) -> None:
        """Only the changed servers' points (issue 11): the others keep theirs. A count that
        drops leaves its digests on the ring as tombstones (:mod:`._tombs`), revived if it
        grows back; a count that grows past what some server stores adds those digests.
        O(k) counts for k distinct weights plus the changed points; dead points are dropped
        (O(N) plus them) once they pass 1/DEAD of the ring."""
        if delta.full:
            self._rebuild(list(self._eligible_list))
            return
        counts, stored, pts, ring = self._weight_counts, self._stored, self._pts, self._ring
        for state in delta.removed:
            weight = delta.before[id(state)]
            owned = pts.pop(state, None)
            if owned:
                ring.delete(state, list(owned))
                stored[weight] = stored.get(weight, 0) - len(owned)
            self._leave(weight)
        for state in delta.reweighted:  # its stored points move to its new weight's group
            weight = delta.before[id(state)]
            stored[weight] = stored.get(weight, 0) - len(pts.get(state, ()))
            self._leave(weight)
        for state in delta.reweighted:  # (after every group left: one may empty and refill)
            stored[state.weight] = stored.get(state.weight, 0) + len(pts.get(state, ()))
        for state in [*delta.reweighted, *delta.added]:
            counts[state.weight] = counts.get(state.weight, 0) + 1
        eligible = self._eligible_list
        total = sum(weight * count for weight, count in counts.items())
        digests = {
            weight: ketama_point_count(weight, total, len(eligible), self._compat)
            for weight in counts
        }
        live = 4 * sum(digests[weight] * count for weight, count in counts.items())
        if ring.needs_relayout(live):
            self._rebuild(list(eligible))
            return
        self._digests = digests
        # A copy (O(n) in C): lock-free readers may rank ties from it while the base changes
        # its own list in place.
        self._eligible_now, self._ranks = list(eligible), None
        covered = self._covered  # weight -> digests every server of that weight stores, at least
        for state in [*delta.reweighted, *delta.added]:
            self._grow(state, digests[state.weight])
            have = len(pts.get(state, ())) // 4
            covered[state.weight] = min(covered.get(state.weight, have), have)
        for weight, want in digests.items():
            if want > covered.get(weight, 0):  # a count grew past what some server stores: O(N)
                for state in eligible:
                    if state.weight == weight:
                        self._grow(state, want)
                covered[weight] = want
        dead = sum(stored.get(weight, 0) for weight in counts) - live
        if dead * DEAD > live:  # drop the dead points (through the ring's chunked merge)
            self._pts = dict(pts)  # a new dict: readers of older views keep theirs
            for state in eligible:
                self._shrink(state, digests[state.weight])
            self._recount(list(eligible))
            return
        self._tombs = Tombs(digests, pts) if dead else None
        self._publish()

    def _publish(self) -> None:
        """Publish the ring's view with the tombstones of this state (one assignment)."""
        view = self._ring.view
        view.tombs = self._tombs
        self._view = view

    def _layout(self, eligible: list[EndpointState], wanted: dict[EndpointState, int]) -> None:
        """Build the continuum from scratch (first build, or a size far from the last layout)."""
        bits = max(1, len(eligible).bit_length())
        top = len(eligible) - 1
        flip = self._past_equal  # equal points: uhashring serves the later server first
        packed: list[int] = []
        pts: dict[EndpointState, array[int]] = {}
        for rank, state in enumerate(eligible):
            tie = top - rank if flip else rank
            points = ketama_points(state.endpoint.address, wanted[state])
            if points:
                pts[state] = array("I", points)
            packed.extend([(point << bits) | tie for point in points])
        packed.sort()
        owners = eligible[::-1] if flip else list(eligible)  # indexed by the tie bits
        ring = PointRing(32, len(packed), past_equal=self._past_equal)
        ring.fill(owners, packed, bits)
        self._pts = pts
        self._ring = ring
        self._recount(eligible)  # publishes: readers see the old continuum or the new one

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
                if view.tombs is None and not (avoid and resolved.endpoint.address in avoid):
                    return resolved
                return self._walk(view, hashed, avoid)  # no base position to test
            state: EndpointState = view.table[view.ids[index]]
        else:  # index < size here: a base point's owner, never the sentinel
            state = view.table[view.ids[index]]
        tombs = view.tombs
        if tombs is None:
            if avoid and state.endpoint.address in avoid:
                return self._walk(view, hashed, avoid)
            return state
        # Dead points on the ring (a weight change's): the landed point is live unless it is
        # in its server's dead tail (Tombs.live's first test, inlined; Tombs fills it).
        if not avoid:
            landed: Any = points  # compiled: the point stays a Python int (no unbox and rebox)
            if landed[index] not in tombs[state]:
                return state
            found = tombs.walk(view, index)  # on through the base (None: the overlay's)
            if found is not None:
                return found
        return self._walk(view, hashed, avoid)

    def _walk(self, view: RingView, hashed: int, avoid: Collection[str]) -> EndpointState:
        """The general walk clockwise from ``hashed``: the first live point of a server not in
        ``avoid`` (through the overlay and past the top)."""
        tombs = view.tombs
        if tombs is None:
            found = view.find(hashed, lambda other: other.endpoint.address not in avoid)
        else:
            found = view.find_live(hashed, tombs.accept(avoid))
        if found is None:
            raise self._nothing_available(avoid)
        return found

    def continuum(self) -> list[tuple[int, str]]:
        """The ring as ``(point, address)`` pairs in point order (libketama's ``get_points``),
        one pair per distinct point: the server a lookup lands on."""
        out: list[tuple[int, str]] = []
        for point, state in self._live_items():
            if not out or out[-1][0] != point:
                out.append((point, state.endpoint.address))
        return out

    def _live_items(self) -> list[tuple[int, EndpointState]]:
        """The ring's live points in order (what a ring built from scratch holds)."""
        view = self._view
        items = view.items()
        return items if view.tombs is None else view.tombs.live_items(items)

    def _settle(self) -> None:
        self._ring.settle()
        self._publish()

    def _step(self) -> None:
        self._ring.advance(PICK_STEP)
        self._publish()

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            ring, pts = self._ring, self._pts
            items = ring.items()
            assert len(items) == ring.count == sum(len(owned) for owned in pts.values())
            assert all(items[i][0] <= items[i + 1][0] for i in range(len(items) - 1))
            assert self._view is ring.view and self._view.tombs is self._tombs  # published
            ring.check()
            eligible = self._eligible()
            assert set(pts) <= set(eligible) and {state for _, state in items} <= set(pts)
            total = sum(state.weight for state in eligible)
            stored: dict[int, int] = {}
            for state in eligible:
                digests = ketama_point_count(state.weight, total, len(eligible), self._compat)
                owned = pts.get(state, array("I"))
                assert digests == self._digests[state.weight]
                assert list(owned) == ketama_points(state.endpoint.address, len(owned) // 4)
                assert len(owned) >= 4 * max(digests, self._covered[state.weight])
                stored[state.weight] = stored.get(state.weight, 0) + len(owned)
            assert {w: n for w, n in self._stored.items() if n} == {
                w: n for w, n in stored.items() if n
            }
            live = 4 * sum(self._digests[state.weight] for state in eligible)
            dead = sum(stored.values()) - live
            assert (self._tombs is None) == (dead == 0) and dead * DEAD <= live
            assert len(self._live_items()) == live
