"""The ring's storage: balancekit's PointRing (flat base + overlay) beside a SortedList.

Run from the repository root::

    python benchmarks/bench_ring_structures.py          # N = 10,000 endpoints x 160 points

Both hold the same 1.6M (point, owner) pairs. Timed, interleaved, best of 5: a lookup (the
owner of the first point >= a random 64-bit hash; SortedList: ``bisect_left`` on packed
``point << 24 | owner`` ints then ``sl[i]``) and inserting then deleting one endpoint's 160
points (PointRing: each published as a view, as a membership change does). Memory: tracemalloc
of building each.
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from sortedcontainers import SortedList

import balancekit as bk
from balancekit.strategies.hashing._points import PointRing
from balancekit.strategies.hashing.ring import ring_points

N, REPLICAS = 10_000, 160


def main() -> None:
    owners = bk.IPHash([f"10.0.{i >> 8}.{i & 255}:80" for i in range(N)])._eligible()
    packed = sorted(
        (point << 24) | rank
        for rank, state in enumerate(owners)
        for point in ring_points(state.endpoint.address, REPLICAS)
    )
    tracemalloc.start()
    ring = PointRing(64, len(packed))
    ring.fill(owners, packed, 24)
    ring_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracemalloc.start()
    sorted_list = SortedList(packed)
    list_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rng = random.Random(3)
    hashes = [rng.getrandbits(64) for _ in range(20_000)]
    newcomer = bk.IPHash(["10.99.0.1:80"])._eligible()[0]
    new_points = ring_points(newcomer.endpoint.address, REPLICAS)
    new_packed = [(point << 24) | 0xFFFFFF for point in new_points]

    def ring_lookups() -> None:
        owner_at = ring.owner_at
        for hashed in hashes:
            owner_at(hashed)

    def list_lookups() -> None:
        bisect, size = sorted_list.bisect_left, len(sorted_list)
        for hashed in hashes:
            index = bisect(hashed << 24)
            owners[sorted_list[index if index < size else 0] & 0xFFFFFF]

    def ring_change() -> None:
        ring.insert(newcomer, new_points, lambda a, b: a.endpoint.address < b.endpoint.address)
        assert ring.view.dirty  # published: the 160 points pending in the overlay
        ring.delete(newcomer, new_points)
        assert not ring.view.dirty

    def list_change() -> None:
        sorted_list.update(new_packed)
        for value in new_packed:
            sorted_list.remove(value)

    best: dict[str, float] = {}
    for _ in range(5):
        for name, action in (
            ("PointRing lookup", ring_lookups),
            ("SortedList lookup", list_lookups),
            ("PointRing add+remove 160 points", ring_change),
            ("SortedList add+remove 160 points", list_change),
        ):
            start = time.perf_counter()
            action()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    print(f"| {len(packed):,} points | time | memory |")
    print("|---|---:|---:|")
    print(
        f"| PointRing lookup | {best['PointRing lookup'] / len(hashes) * 1e9:,.0f} ns |"
        f" {ring_bytes / len(packed):.0f} B/point |"
    )
    print(
        f"| SortedList lookup | {best['SortedList lookup'] / len(hashes) * 1e9:,.0f} ns |"
        f" {list_bytes / len(packed):.0f} B/point (+ owner ids) |"
    )
    for name in ("PointRing add+remove 160 points", "SortedList add+remove 160 points"):
        print(f"| {name} | {best[name] * 1e6:,.0f} us | |")


if __name__ == "__main__":
    main()
