"""Hash lookups before/after in ONE process, interleaved: rings, and Maglev/JumpHash/Rendezvous.

Run from the repository root::

    python benchmarks/bench_ring_lookups.py --before /work/main/src [-n 1000 10000]

Both trees are imported side by side (the package is loaded twice under its own name), pools
built in each (``--build-rounds`` times, interleaved; the best build is printed), then 7
rounds each time ``lookup(key)`` over 2,000 keys in every subject in turn;
the best round per subject is printed, with after/before. Maglev (65,537 slots), JumpHash and
Rendezvous changed only in how a key reaches the hash (the text policy of issue 10.1): their
ratio is the cost of that check on ASCII keys. "+10 added" rows (``--added``): the ring with
those changes pending in its overlay (merged once it holds 1/64 of the points); ", merged": the
same ring with its overlay merged into the base (``settle``), to compare pending with merged.
Interleaving in one process is what
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
PENDING = ("IPHash", "Ketama", "BoundedLoadHash")  # also measured with changes not yet merged
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
    parser.add_argument("--build-rounds", type=int, default=3, help="builds per subject and tree")
    parser.add_argument(
        "--cpu", action="store_true", help="time lookups by the thread's CPU time (busy machine)"
    )
    parser.add_argument(
        "--added",
        type=int,
        nargs="*",
        default=[10],
        help="endpoints added after the build (pending in the overlay; also measured merged)",
    )
    args = parser.parse_args()
    keys = [f"user-{i}" for i in range(2000)]
    print(
        "| subject | N (Rendezvous: 100, Maglev: 650) | before ns | after ns | after/before"
        " | build before ms | build after ms | after/before |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.n:
        addresses = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080" for i in range(n)]
        subjects: dict[tuple[str, str], Any] = {}
        built: dict[tuple[str, str], float] = {}
        modules = {
            tree: load(src) for tree, src in (("before", args.before), ("after", args.after))
        }
        for _ in range(args.build_rounds):  # builds interleaved too: best of the rounds
            for tree, bk in modules.items():
                for name in NAMES:
                    pool = addresses[: SMALL.get(name, n)]
                    start = time.perf_counter()
                    balancer = getattr(bk, name)(pool)
                    elapsed = time.perf_counter() - start
                    built[(name, tree)] = min(built.get((name, tree), elapsed), elapsed)
                    subjects[(name, tree)] = balancer.lookup
        for tree, bk in modules.items():  # the rings with endpoints added since the build
            for name in PENDING:
                for added in args.added:
                    for merged in (False, True):
                        balancer = getattr(bk, name)(addresses)
                        for i in range(added):
                            balancer.add(f"10.200.{i >> 8}.{i & 255}:8080")
                        if merged:  # the same ring, every change merged into the base
                            with balancer._lock:
                                balancer._view = balancer._ring.settle(now=True)
                        label = f"{name} +{added} added{', merged' if merged else ''}"
                        subjects[(label, tree)] = balancer.lookup
        clock = time.thread_time if args.cpu else time.perf_counter
        best: dict[tuple[str, str], float] = {}
        for _ in range(7):
            for label, lookup in subjects.items():
                start = clock()
                for key in keys:
                    lookup(key)
                elapsed = (clock() - start) / len(keys) * 1e9
                best[label] = min(best.get(label, float("inf")), elapsed)
        pending = [
            f"{name} +{added} added{merged}"
            for name in PENDING
            for added in args.added
            for merged in ("", ", merged")
        ]
        for name in [*NAMES, *pending]:
            before, after = best[(name, "before")], best[(name, "after")]
            b0, b1 = built.get((name, "before"), 0.0), built.get((name, "after"), 0.0)
            if not b0:
                row = f"{before:,.0f} | {after:,.0f} | {after / before:.2f}"
                print(f"| {name} | {n:,} | {row} | | | |")
                continue
            print(
                f"| {name} | {n:,} | {before:,.0f} | {after:,.0f} | {after / before:.2f}"
                f" | {b0 * 1e3:,.1f} | {b1 * 1e3:,.1f} | {b1 / b0:.2f} |"
            )


if __name__ == "__main__":
    main()
