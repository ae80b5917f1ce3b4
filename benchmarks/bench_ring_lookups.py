"""Hash lookups before/after in ONE process, interleaved: rings, and Maglev/JumpHash/Rendezvous.

Run from the repository root::

    python benchmarks/bench_ring_lookups.py --before /work/main/src [-n 1000 10000]

Both trees are imported side by side (the package is loaded twice under its own name), pools
built in each, then 7 rounds each time ``lookup(key)`` over 2,000 keys in every subject in turn;
the best round per subject is printed, with after/before. Maglev (65,537 slots), JumpHash and
Rendezvous changed only in how a key reaches the hash (the text policy of issue 10.1): their
ratio is the cost of that check on ASCII keys. Interleaving in one process is what
makes the ratio trustworthy on a busy machine.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NAMES = ("IPHash", "Ketama", "BoundedLoadHash", "Maglev", "JumpHash", "Rendezvous")
SMALL = {"Rendezvous": 100, "Maglev": 650}  # O(N) lookups; the default table fits 655 endpoints


def load(src: str) -> Any:
    for name in [m for m in sys.modules if m == "balancekit" or m.startswith("balancekit.")]:
        del sys.modules[name]
    sys.path.insert(0, src)
    try:
        return importlib.import_module("balancekit")
    finally:
        sys.path.pop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, metavar="SRC")
    parser.add_argument("--after", metavar="SRC", default=str(HERE.parent / "src"))
    parser.add_argument("-n", nargs="*", type=int, default=[1_000, 10_000])
    args = parser.parse_args()
    keys = [f"user-{i}" for i in range(2000)]
    print("| subject | N (Rendezvous: 100, Maglev: 650) | before ns | after ns | after/before |")
    print("|---|---:|---:|---:|---:|")
    for n in args.n:
        addresses = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080" for i in range(n)]
        subjects: dict[tuple[str, str], Any] = {}
        for tree, src in (("before", args.before), ("after", args.after)):
            bk = load(src)
            for name in NAMES:
                pool = addresses[: SMALL.get(name, n)]
                subjects[(name, tree)] = getattr(bk, name)(pool).lookup
        best: dict[tuple[str, str], float] = {}
        for _ in range(7):
            for label, lookup in subjects.items():
                start = time.perf_counter()
                for key in keys:
                    lookup(key)
                elapsed = (time.perf_counter() - start) / len(keys) * 1e9
                best[label] = min(best.get(label, float("inf")), elapsed)
        for name in NAMES:
            before, after = best[(name, "before")], best[(name, "after")]
            print(f"| {name} | {n:,} | {before:,.0f} | {after:,.0f} | {after / before:.2f} |")


if __name__ == "__main__":
    main()
