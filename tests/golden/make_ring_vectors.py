"""Regenerate tests/golden/data/ring_vectors.json from the layout documented in docs/hashing.md.

Written independently of balancekit's ring code: plain mmh3 and a sorted list.
Run: python tests/golden/make_ring_vectors.py
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import mmh3

NODES = [("10.0.0.1:11211", 1), ("10.0.0.2:11211", 2), ("10.0.0.3:11211", 1), ("cache-4:11211", 3)]
REPLICAS = 160


def h64(data: str) -> int:
    return mmh3.hash64(data.encode(), seed=0, x64arch=True, signed=False)[0]


def ring_lookup(keys: list[str]) -> dict[str, str]:
    ring = sorted(
        (h64(f"{address}#{i}"), address)
        for address, weight in NODES
        for i in range(REPLICAS * weight)
    )
    points = [p for p, _ in ring]
    out = {}
    for key in keys:
        index = bisect.bisect_left(points, h64(key)) % len(ring)
        out[key] = ring[index][1]
    return out


def main() -> None:
    keys = [f"203.0.113.{i}" for i in range(64)] + ["", "session=abc", "ü-unicode"]
    data = {
        "source": "docs/hashing.md layout: point i of A = low 64 bits of MurmurHash3_x64_128"
        " (seed 0) of UTF-8 f'{A}#{i}'; key -> owner of first point >= hash, wrapping",
        "replicas": REPLICAS,
        "nodes": NODES,
        "hash64": {s: h64(s) for s in ["", "abc", "10.0.0.1:11211#0"]},
        "lookups": ring_lookup(keys),
    }
    path = Path(__file__).parent / "data" / "ring_vectors.json"
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
