"""Maglev's table fill: ns per slot of ``maglev_table`` in this tree beside another, same run.

Run from the repository root::

    python benchmarks/bench_maglev_fill.py --before /work/main/src

Builds the same permutations (this tree's ``maglev_permutation``) and fills tables of M slots
for N endpoints, equal weights and weights 1..4, three interleaved rounds, best of three; checks
both trees produce the same table slot for slot.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load(src: str, alias: str) -> Any:
    path = Path(src) / "balancekit" / "strategies" / "hashing" / "maglev.py"
    sys.path.insert(0, src)
    spec = importlib.util.spec_from_file_location(f"balancekit.strategies.hashing.{alias}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path.pop(0)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, metavar="SRC")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    from balancekit.strategies.hashing import maglev as after
    from balancekit.strategies.hashing.maglev import maglev_permutation, next_prime

    before = load(args.before, "_maglev_before")
    print("| N | M | weights | before ns/slot | after ns/slot | ratio |")
    print("|---:|---:|---|---:|---:|---:|")
    for n, m in ((1_000, 100_003), (10_000, next_prime(1_000_000))):
        perms = [maglev_permutation(f"10.0.{i >> 8}.{i & 255}:80", m) for i in range(n)]
        for label, weights in (("equal", [1] * n), ("1..4", [1 + i % 4 for i in range(n)])):
            best = {"before": float("inf"), "after": float("inf")}
            tables = {}
            for _ in range(3):
                for name, module in (("before", before), ("after", after)):
                    start = time.perf_counter()
                    tables[name] = module.maglev_table(perms, weights, m)
                    best[name] = min(best[name], time.perf_counter() - start)
            assert tables["before"] == tables["after"]
            b, a = best["before"] / m * 1e9, best["after"] / m * 1e9
            print(f"| {n:,} | {m:,} | {label} | {b:,.0f} | {a:,.0f} | {b / a:.1f}x |")


if __name__ == "__main__":
    main()
