"""Tail latency of select+release while passive health ejects endpoints of a large pool.

Run from the repository root::

    python benchmarks/bench_ejection_storm.py                          # this tree
    python benchmarks/bench_ejection_storm.py --before /work/main/src  # and another, same run

An IPHash of N = 10,000 endpoints (160 replicas) under ``with_health(PassiveHealth(
consecutive_failures=2, max_ejection_share=bad/N))``; ``--bad`` endpoints (default 1,000, 10%)
fail every request, so each is ejected after its second failure in a row, inside the
``release()`` that reports it. Sequential
``release(select(key))`` calls with random keys run until every bad endpoint is ejected (or the
time budget ends); each call is timed. Ejections change the ring, so whatever the ring costs to
change is paid by the request that ejects. Printed: calls, ejections, p50 / p99 / p99.9 / max of
one select+release. Each tree runs in its own child process. ``--strategy NAME`` storms another
balancer class instead (e.g. ``LeastConnections``: what the base and the health tracker cost
without a ring).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def storm(n: int, bad_count: int, budget: float, strategy: str = "IPHash") -> dict[str, Any]:
    import balancekit as bk

    addresses = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080" for i in range(n)]
    ejections: list[object] = []
    lb = bk.with_health(
        getattr(bk, strategy)(addresses),
        bk.PassiveHealth(consecutive_failures=2, max_ejection_share=bad_count / n),
        on_event=lambda event: (
            ejections.append(event) if type(event).__name__ == "Ejected" else None
        ),
    )
    rng = random.Random(7)
    bad = set(rng.sample(addresses, bad_count))
    clock = time.perf_counter
    samples: list[float] = []
    deadline = clock() + budget
    ejected = 0
    while ejected < bad_count and clock() < deadline and len(samples) < 5_000_000:
        key = f"user-{rng.getrandbits(48)}"
        start = clock()
        lease = lb.select(key)
        lb.release(lease, ok=lease.address not in bad)
        samples.append(clock() - start)
        ejected = len(ejections)
    samples.sort()

    def quantile(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))]

    return {
        "calls": len(samples),
        "ejected": ejected,
        "p50_us": quantile(0.5) * 1e6,
        "p99_us": quantile(0.99) * 1e6,
        "p999_us": quantile(0.999) * 1e6,
        "max_us": samples[-1] * 1e6,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        n, bad, budget = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(storm(n, bad, budget, sys.argv[5] if len(sys.argv) > 5 else "IPHash")))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="SRC", help="another tree's src/ to run first")
    parser.add_argument("--after", metavar="SRC", help="the tree to measure (default: this one)")
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--bad", type=int, default=1_000)
    parser.add_argument("--budget", type=float, default=180.0, help="seconds per tree")
    parser.add_argument(
        "--strategy", default="IPHash", help="the balancer class to storm (default IPHash)"
    )
    args = parser.parse_args()
    trees = [("after", args.after or str(HERE.parent / "src"))]
    if args.before:
        trees.insert(0, ("before", args.before))
    print("| tree | strategy | N | calls | ejected | p50 | p99 | p99.9 | max |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for tree, src in trees:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                str(args.n),
                str(args.bad),
                str(args.budget),
                args.strategy,
            ],
            env={**os.environ, "PYTHONPATH": src},
            capture_output=True,
            text=True,
            timeout=args.budget * 3 + 300,
        )
        if done.returncode:
            print(f"| {tree} | {args.strategy} | error: {done.stderr.strip().splitlines()[-1:]} |")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {tree} | {args.strategy} | {args.n:,} | {row['calls']:,} |"
            f" {row['ejected']}/{args.bad} |"
            f" {row['p50_us']:,.0f} us | {row['p99_us']:,.0f} us | {row['p999_us']:,.0f} us |"
            f" {row['max_us'] / 1e3:,.1f} ms |"
        )


if __name__ == "__main__":
    main()
