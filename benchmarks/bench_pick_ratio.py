"""ns per select+release of several strategies interleaved in one process (best of 15 rounds).

Run once per tree, back to back, and compare each strategy with RoundRobin in the same run::

    PYTHONPATH=/work/main/src python benchmarks/bench_pick_ratio.py 10000 RoundRobin WeightedRandom
    PYTHONPATH=src python benchmarks/bench_pick_ratio.py 10000 RoundRobin WeightedRandom

Rounds of 2,000 calls alternate between the strategies, so machine noise hits them alike.
"""

from __future__ import annotations

import sys
import time

import balancekit as bk


def main() -> None:
    n = int(sys.argv[1])
    addresses = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080" for i in range(n)]
    balancers = {name: getattr(bk, name)(addresses) for name in sys.argv[2:]}
    best = dict.fromkeys(balancers, float("inf"))
    for _ in range(15):
        for name, lb in balancers.items():
            select, release = lb.select, lb.release
            start = time.perf_counter()
            for _ in range(2000):
                release(select())
            best[name] = min(best[name], (time.perf_counter() - start) / 2000 * 1e9)
    print(" ".join(f"{name}={ns:.0f}ns" for name, ns in best.items()))


if __name__ == "__main__":
    main()
