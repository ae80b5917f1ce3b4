"""Regenerate tests/golden/data/{ketama_uhashring,jump}_vectors.json from the peers themselves.

Run by hand (``python -m tests.golden.make_hashing_vectors``); never by the test suite. It uses
no balancekit code: ketama vectors are uhashring's ``HashRing(nodes, hash_fn="ketama")`` answers,
jump vectors the ``jump-consistent-hash`` package's C ``jump.hash`` (a transcription of Lamping &
Veach's Figure 1).
"""

from __future__ import annotations

import json
import random
from importlib.metadata import version
from pathlib import Path

import jump
from uhashring import HashRing

DATA = Path(__file__).parent / "data"


def ketama_vectors() -> dict[str, object]:
    rng = random.Random(20140605)
    pools = [
        [["127.0.0.1:11211", 600], ["127.0.0.1:11212", 400]],
        [[f"10.0.0.{i}:11211", 1] for i in range(1, 6)],
        [[f"cache-{i}.example:11211", rng.randint(1, 9)] for i in range(12)],
        [[f"10.1.{i // 250}.{i % 250}:11211", 1] for i in range(61)],  # libketama floorf -> 39
    ]
    cases = []
    for nodes in pools:
        ring = HashRing({address: weight for address, weight in nodes}, hash_fn="ketama")
        keys = [f"key-{rng.getrandbits(40):x}" for _ in range(200)] + ["test", "", "ü-utf8"]
        cases.append(
            {
                "nodes": nodes,
                "points": len(ring.runtime._keys),
                "lookups": {key: ring.get_node(key) for key in keys},
            }
        )
    return {
        "source": f"uhashring {version('uhashring')}, HashRing(nodes, hash_fn='ketama')",
        "cases": cases,
    }


def jump_vectors() -> dict[str, object]:
    rng = random.Random(1406_2294)
    keys = [0, 1, 2**63, 2**64 - 1] + [rng.getrandbits(64) for _ in range(200)]
    buckets = [1, 2, 3, 10, 100, 1000, 65_536, 2**31 - 1]
    return {
        "source": f"jump-consistent-hash {version('jump-consistent-hash')}, jump.hash (C)",
        "keys": keys,
        "buckets": buckets,
        "results": [[jump.hash(key, n) for n in buckets] for key in keys],
    }


if __name__ == "__main__":
    (DATA / "ketama_uhashring_vectors.json").write_text(json.dumps(ketama_vectors(), indent=1))
    (DATA / "jump_vectors.json").write_text(json.dumps(jump_vectors()))
