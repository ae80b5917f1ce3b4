"""IPHash: a consistent-hash ring with virtual nodes, changed point by point as members change.

Karger et al., "Consistent hashing and random trees" (STOC 1997); virtual nodes as in
Dynamo (DeCandia et al., SOSP 2007) and libketama; the bound on ring size follows Envoy's
ring hash (``source/extensions/load_balancing_policies/ring_hash/ring_hash_lb.cc``:
``minimum_ring_size``/``maximum_ring_size``, weights scale the points within them).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ..._core import Clock, Delta
from ..._endpoint import Endpoint, EndpointLike
from ..._errors import InvalidOption
from ..._options import describe
from ..._state import EndpointState
from . import _keyed
from ._keyed import KeyedBalancer, KeyFunction, key_bytes, utf8
from ._points import PICK_STEP, PointRing, RingView

#: Final aliases of what picks call: the compiled build reads a module's Final from a C static,
#: where a name imported from another module is a dict lookup on every call (issue 15).
_murmur128: Final = _keyed._murmur128
_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF


__all__ = ["MAX_POINTS_PER_ENDPOINT", "IPHash", "point_divisor", "ring_points"]

#: The most points one endpoint may own (a weight above ``65,536 / replicas`` scales down).
MAX_POINTS_PER_ENDPOINT = 65_536
#: Envoy's default ``maximum_ring_size`` (8M points); IPHash's default ``max_ring_size``.
DEFAULT_MAX_RING_SIZE = 8 * 1024 * 1024


def ring_points(address: str, count: int, start: int = 0) -> list[int]:
    """The ring positions of an endpoint: ``hash64(f"{address}#{i}")`` for i in range(count)
    (from ``start``: the tail a weight change adds or drops).

    ``hash64`` is the low 64 bits of MurmurHash3_x64_128 with seed 0 over the UTF-8 bytes, so
    anyone can rebuild the ring: an endpoint of weight w owns ``replicas * w // d`` points
    (at least one; ``d`` from :func:`point_divisor`, 1 unless the ring would be too big), and a
    key belongs to the owner of the first point at or after ``hash64(key)``, wrapping past the
    top. Equal points (a 64-bit collision) are ordered by address. The points of a count are the
    first ``count`` of the sequence, so a weight change adds or drops only the tail.
    """
    prefix = utf8(address) + b"#"
    return [_murmur128(prefix + b"%d" % index) & _MASK64 for index in range(start, count)]


def _pow2_at_least(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()


def point_divisor(weights: list[int], replicas: int, max_ring_size: int) -> int:
    """The ``d`` that weights are divided by: 1 while ``replicas * w`` fits, else a power of two.

    ``d = 1`` when every endpoint's ``replicas * weight`` is at most
    :data:`MAX_POINTS_PER_ENDPOINT` and the ring (``replicas * sum(weights)``) at most
    ``max_ring_size``: the layout is exactly ``replicas * weight`` points. Otherwise ``d`` is the
    largest of: the greatest power of two <= the smallest weight (so equal huge weights, e.g. DNS
    SRV weights of 65,535, get under ``2 * replicas`` points each), and the smallest powers
    of two bringing the heaviest endpoint under the per-endpoint bound and the ring under
    ``max_ring_size``. Weights keep their ratios within a point (Envoy scales the same way,
    within its minimum and maximum ring size).

    >>> point_divisor([1, 2, 3], 160, 8 << 20), point_divisor([65535] * 3, 160, 8 << 20)
    (1, 32768)
    """
    if not weights:
        return 1
    return _divisor(min(weights), max(weights), sum(weights), replicas, max_ring_size)


def _divisor(lightest: int, heaviest: int, weight_sum: int, replicas: int, limit: int) -> int:
    """:func:`point_divisor` from the three figures it depends on (the smallest and largest
    weight and their sum), so a change can compute it from per-weight counts in O(k distinct
    weights), without a pass over the endpoints."""
    total = replicas * weight_sum
    if replicas * heaviest <= MAX_POINTS_PER_ENDPOINT and total <= limit:
        return 1
    by_lightest = 1 << (lightest.bit_length() - 1)
    by_heaviest = _pow2_at_least(-(-replicas * heaviest // MAX_POINTS_PER_ENDPOINT))
    by_ring = _pow2_at_least(-(-total // limit))
    return max(by_lightest, by_heaviest, by_ring)


@mypyc_attr(allow_interpreted_subclasses=True)
class IPHash(KeyedBalancer):
    """Consistent hashing on a key (a client IP, a session id): the same key, the same endpoint.

    Each endpoint owns ``replicas * weight`` points on a 64-bit ring (see :func:`ring_points`;
    weights so large that an endpoint would own more than 65,536 points, or the ring more than
    ``max_ring_size``, are scaled down by :func:`point_divisor`); a key goes to the first point
    clockwise from its hash. Removing or marking down an endpoint moves only the keys it owned;
    adding one of N moves about 1/N of the keys. The mapping depends only on the addresses,
    weights and keys, so it is the same in every process and on every machine. With 160
    replicas the busiest of N endpoints carries about 1.2-1.3x the mean load.

    Lookup is O(1) expected (one MurmurHash3, a bucket index and about one step in a flat
    sorted array), lock-free. A membership change inserts or deletes only the points that
    change (an endpoint's own, a weight change only the difference) in an overlay (O(log) a
    point) merged into the flat ring, once it holds 1/64 of it, a bounded chunk per later
    change or pick (no change pays a whole merge). That holds past the bounds too: with a
    divisor above 1 (e.g. 100,000 endpoints of equal weight under the 8M-point default
    ``max_ring_size``: d = 2) a changed endpoint gets ``max(1, replicas * weight // d)``
    points, the divisor recomputed from per-weight counts (O(distinct weights)); the ring is
    laid out afresh only when the divisor changes (a power of two: at thresholds) or the ring
    more than doubles (see ``_points``). ``avoid`` walks clockwise to the next endpoint not
    avoided.

    >>> lb = IPHash(["a:1", "b:1", "c:1"])
    >>> lb.select("203.0.113.7").address == lb.select("203.0.113.7").address
    True
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        key: KeyFunction | None = None,
        replicas: int | Any = 160,
        max_ring_size: int | Any = DEFAULT_MAX_RING_SIZE,
        clock: Clock = time.monotonic,
    ) -> None:
        if (
            isinstance(replicas, bool)
            or not isinstance(replicas, int)
            or not 1 <= replicas <= 10_000
        ):
            raise InvalidOption(
                f"replicas must be an int from 1 to 10000, not {describe(replicas)}"
            )
        if (
            isinstance(max_ring_size, bool)
            or not isinstance(max_ring_size, int)
            or not 1024 <= max_ring_size <= 1 << 26
        ):
            raise InvalidOption(
                f"max_ring_size must be an int from 1024 to {1 << 26}, not"
                f" {describe(max_ring_size)}"
            )
        super().__init__(endpoints, key=key, clock=clock)
        self._replicas: int = replicas
        self._max_ring_size: int = max_ring_size
        self._ring = PointRing(64)
        self._view = self._ring.view  # what lookups read (lock-free)
        self._divisor = 1
        self._placed: dict[EndpointState, int] = {}  # state -> points it owns on the ring
        self._weight_counts: dict[int, int] = {}  # weight -> eligible endpoints (for the divisor)
        self._start()

    @staticmethod
    def _first(a: EndpointState, b: EndpointState) -> bool:
        return a.endpoint.address < b.endpoint.address

    def _counts(self, eligible: list[EndpointState]) -> dict[EndpointState, int]:
        weights = [state.weight for state in eligible]
        divisor = point_divisor(weights, self._replicas, self._max_ring_size)
        self._divisor = divisor
        replicas = self._replicas
        if divisor == 1:
            return {state: replicas * state.weight for state in eligible}
        return {state: max(1, replicas * state.weight // divisor) for state in eligible}

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        divisor = self._divisor
        wanted = self._counts(eligible)
        total = sum(wanted.values())
        ring = self._ring
        if divisor != self._divisor or ring.needs_relayout(total):
            self._layout(wanted, total)
            return
        self._change(ring, wanted)
        self._view = ring.view  # one assignment: readers see before or after the change

    def _apply(self, delta: Delta) -> None:
        """Only the changed endpoints' points (issue 11), at any divisor: the divisor the new
        membership needs is computed from the per-weight counts (O(k distinct weights), no pass
        over the eligible set); while it stays what the ring was laid out with, each changed
        endpoint goes to ``max(1, replicas * weight // d)`` points, O(points changed). Only a
        new divisor (a power of two: it moves at thresholds) or a ring that more than doubles
        is laid out from scratch (:meth:`_rebuild`)."""
        counts, ring, replicas = self._weight_counts, self._ring, self._replicas
        if not delta.full:
            for state in [*delta.removed, *delta.reweighted]:
                weight = delta.before[id(state)]
                counts[weight] -= 1
                if not counts[weight]:
                    del counts[weight]
            for state in [*delta.reweighted, *delta.added]:
                counts[state.weight] = counts.get(state.weight, 0) + 1
        divisor = 1
        if counts:  # O(k) for k distinct weights
            weight_sum = sum(weight * count for weight, count in counts.items())
            divisor = _divisor(min(counts), max(counts), weight_sum, replicas, self._max_ring_size)
        total = sum(max(1, replicas * weight // divisor) * n for weight, n in counts.items())
        if delta.full or divisor != self._divisor or ring.needs_relayout(total):
            self._rebuild(list(self._eligible_list))
            counts.clear()
            for state in self._eligible_list:
                counts[state.weight] = counts.get(state.weight, 0) + 1
            return
        placed, first = self._placed, self._first
        for state in delta.removed:
            ring.delete(state, ring_points(state.endpoint.address, placed.pop(state)))
        grown: list[tuple[EndpointState, int, int]] = []
        for state in delta.reweighted:  # a weight change adds or drops only the tail
            have, want = placed[state], max(1, replicas * state.weight // divisor)
            if want < have:
                ring.delete(state, ring_points(state.endpoint.address, have, want))
            elif want > have:
                grown.append((state, have, want))
            placed[state] = want
        for state, have, want in grown:  # after every drop: a point may move between owners
            ring.insert(state, ring_points(state.endpoint.address, want, have), first)
        for state in delta.added:
            want = placed[state] = max(1, replicas * state.weight // divisor)
            ring.insert(state, ring_points(state.endpoint.address, want), first)
        self._view = ring.view  # one assignment: readers see before or after the change

    def _change(self, ring: PointRing, wanted: dict[EndpointState, int]) -> None:
        placed = self._placed
        # gone or owning another count now; new or owning another count (a set difference of
        # the items views built 2 x N tuples: ~8 ms a change at N = 10,000)
        wanted_items, placed_items = wanted.items(), placed.items()
        drop = [pair for pair in placed_items if pair not in wanted_items]
        grow = [pair for pair in wanted_items if pair not in placed_items]
        first = self._first
        for state, count in drop:
            keep = wanted.get(state, 0)
            if keep < count:
                ring.delete(state, ring_points(state.endpoint.address, count, keep))
            if state not in wanted:
                del placed[state]
            elif keep < count:
                placed[state] = keep  # it shrank (a grown one is handled below)
        for state, count in grow:
            have = placed.get(state, 0)
            if have < count:
                ring.insert(state, ring_points(state.endpoint.address, count, have), first)
            placed[state] = count

    def _layout(self, wanted: dict[EndpointState, int], total: int) -> None:
        """Build the ring from scratch (first build, a new divisor, or a size far from the last)."""
        # Sort (point, owner) pairs packed into one int each: point in the high bits, the owner's
        # rank by address in the low bits, so equal points order by address. Sorting plain ints
        # is several times faster than sorting tuples.
        owners = sorted(wanted, key=lambda state: state.endpoint.address)
        bits = max(1, len(owners).bit_length())
        packed: list[int] = []
        for rank, state in enumerate(owners):
            packed.extend(
                [
                    (point << bits) | rank
                    for point in ring_points(state.endpoint.address, wanted[state])
                ]
            )
        packed.sort()
        ring = PointRing(64, total)
        ring.fill(owners, packed, bits)
        self._placed = dict(wanted)
        self._ring = ring
        self._view = ring.view  # one assignment: readers see the old ring or the new one

    def lookup(self, context: Any = None) -> Endpoint:
        """The endpoint ``select(context)`` would choose, without a lease or any counting.

        A clean ring's lookup inlined (issue 11: the ``_pick`` call was ~10 % of a lookup, and
        the text policy's ``isascii`` and the owner ids of the incremental rings had made
        lookups ~1 % slower than before them); pending changes take ``_pick``."""
        view = self._view  # one read: every change publishes a new view
        if view.dirty:  # changes not merged into the base yet, or an empty ring
            return self._pick(context, ()).endpoint
        key = context if self._key is None else self._key(context)
        if type(key) is str:
            if not key.isascii():  # O(1); mmh3 must never see a lone surrogate (see _keyed)
                key = key_bytes(key, self._key is not None)
        elif type(key) is not bytes:
            key = key_bytes(key, self._key is not None)  # the text policy: see _keyed
        hashed = _murmur128(key) & _MASK64
        points = view.points  # RingView.base_at, inlined: the sentinel ends it
        index = view.starts[hashed >> view.shift]
        while points[index] < hashed:
            index += 1
        return view.table[view.ids[index]].endpoint  # type: ignore[no-any-return]

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        view = self._view  # one read: every change publishes a new view
        key = context if self._key is None else self._key(context)
        if type(key) is str:
            if not key.isascii():  # O(1); mmh3 must never see a lone surrogate (see _keyed)
                key = key_bytes(key, self._key is not None)
        elif type(key) is not bytes:
            key = key_bytes(key, self._key is not None)  # the text policy: see _keyed
        hashed = _murmur128(key) & _MASK64
        points = view.points  # RingView.base_at, inlined (every pick): the sentinel ends it
        index = view.starts[hashed >> view.shift]
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
            return self._next_not_avoided(view, hashed, avoid)
        return state

    def _next_not_avoided(
        self, view: RingView, hashed: int, avoid: Collection[str]
    ) -> EndpointState:
        found = view.find(hashed, lambda state: state.endpoint.address not in avoid)
        if found is None:
            raise self._nothing_available(avoid)
        return found

    def continuum(self) -> list[tuple[int, str]]:
        """The ring as ``(point, address)`` pairs in point order (equal points by address)."""
        return [(point, state.endpoint.address) for point, state in self._ring.items()]

    def _settle(self) -> None:
        self._view = self._ring.settle()

    def _step(self) -> None:
        self._view = self._ring.advance(PICK_STEP)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            ring = self._ring
            items = ring.items()
            assert len(items) == ring.count == sum(self._placed.values())
            assert all(items[i][0] <= items[i + 1][0] for i in range(len(items) - 1))
            assert self._view is ring.view  # every change published
            ring.check()
            eligible = self._eligible()
            assert set(self._placed) == set(eligible) == {state for _, state in items}
            divisor = point_divisor(
                [s.weight for s in eligible], self._replicas, self._max_ring_size
            )
            assert divisor == self._divisor
            for state in eligible:
                assert self._placed[state] == max(1, self._replicas * state.weight // divisor)
