"""Maglev's table fill: ns per slot in this tree beside another, same tables, same process.

Run from the repository root (the other tree, e.g. ``git archive 600a798 src | tar -x -C
/tmp/before``)::

    python benchmarks/bench_maglev_fill.py --before /tmp/before/src

For N endpoints and M = next_prime(100 N) slots (1,000 / 100,003 and 10,000 / 1,000,003), equal
weights and weights 1..4, fills the same permutations with both trees' ``maglev_table`` (and,
if xxhash is installed, both trees' ``envoy_maglev_table``): rounds interleaved (before, after,
before, ...), best of ``--rounds``, CPU time of this process (``time.process_time``: the
machine may be shared), and checks that both trees give the same table slot for slot. Then the
whole rebuild at N = 10,000: ``Maglev(pool, table_size=1,000,003)`` and a ``remove`` +
``settle()`` (permutations cached), each tree's class. Prints the load average before and after.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load(src: str, name: str, alias: str) -> Any:
    """The other tree's ``strategies/hashing/<name>.py`` as a module beside this tree's package
    (its relative imports resolve to this tree's modules, which the fill does not use)."""
    path = Path(src) / "balancekit" / "strategies" / "hashing" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"balancekit.strategies.hashing.{alias}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_of(rounds: int, runs: dict[str, Callable[[], Any]]) -> tuple[dict[str, float], dict]:
    """Best CPU seconds of each run over ``rounds`` interleaved rounds, and each one's result."""
    best = dict.fromkeys(runs, float("inf"))
    results: dict[str, Any] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.process_time()
            results[name] = run()
            best[name] = min(best[name], time.process_time() - start)
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, metavar="SRC")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    import balancekit as bk
    from balancekit.strategies.hashing import maglev as after
    from balancekit.strategies.hashing.maglev import maglev_permutation, next_prime

    before = load(args.before, "maglev", "_maglev_before")
    fills = [("paper", before.maglev_table, after.maglev_table)]
    try:
        import xxhash  # noqa: F401

        from balancekit.strategies.hashing import maglev_envoy as envoy_after

        envoy_before = load(args.before, "maglev_envoy", "_maglev_envoy_before")
        fills.append(("envoy", envoy_before.envoy_maglev_table, envoy_after.envoy_maglev_table))
    except ImportError:
        print("(xxhash not installed: Envoy's fill not measured)")
    print(f"load average before: {os.getloadavg()}")
    print("| fill | N | M | weights | before ns/slot | after ns/slot | before / after |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for n, m in ((1_000, 100_003), (10_000, next_prime(1_000_000))):
        perms = [maglev_permutation(f"10.0.{i >> 8}.{i & 255}:80", m) for i in range(n)]
        for label, weights in (("equal", [1] * n), ("1..4", [1 + i % 4 for i in range(n)])):
            for kind, old, new in fills:
                best, tables = best_of(
                    args.rounds,
                    {
                        "before": lambda f=old, p=perms, w=weights, m=m: f(p, w, m),
                        "after": lambda f=new, p=perms, w=weights, m=m: f(p, w, m),
                    },
                )
                assert tables["before"] == tables["after"], "the trees' tables differ"
                b, a = best["before"] / m * 1e9, best["after"] / m * 1e9
                print(f"| {kind} | {n:,} | {m:,} | {label} | {b:,.0f} | {a:,.0f} | {b / a:.2f}x |")
                sys.stdout.flush()
    n, m = 10_000, next_prime(1_000_000)
    pool = [f"10.0.{i >> 8}.{i & 255}:80" for i in range(n)]
    print()
    print(f"Whole rebuild, N = {n:,}, M = {m:,} (CPU s, best of {args.rounds})")
    print("| tree | Maglev(pool) | remove + settle() |")
    print("|---|---:|---:|")
    built: dict[str, Any] = {}

    def build(cls: Any, name: str) -> Any:
        built[name] = cls(pool, table_size=m)
        return [built[name]._table[1][i].endpoint.address for i in built[name]._table[0]]

    classes = {"before": before.Maglev, "after": bk.Maglev}
    build_time, tables = best_of(
        args.rounds, {name: lambda c=c, k=name: build(c, k) for name, c in classes.items()}
    )
    assert tables["before"] == tables["after"]
    change_time = dict.fromkeys(classes, float("inf"))
    for _ in range(args.rounds):  # interleaved by hand: the add-back is not timed
        for name in classes:
            start = time.process_time()
            lb = built[name]
            lb.remove(pool[0])
            lb.settle()
            change_time[name] = min(change_time[name], time.process_time() - start)
            tables[name] = [lb._table[1][i].endpoint.address for i in lb._table[0]]
            lb.add(pool[0])
            lb.settle()
    assert tables["before"] == tables["after"]
    for name in classes:
        print(f"| {name} | {build_time[name]:.2f} s | {change_time[name]:.2f} s |")
    print(
        f"| before / after | {build_time['before'] / build_time['after']:.2f}x"
        f" | {change_time['before'] / change_time['after']:.2f}x |"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
