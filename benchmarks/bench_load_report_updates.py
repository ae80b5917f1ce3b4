"""LoadReportWeightedRoundRobin with reports streaming: a report, the periodic update, a pick.

Run from the repository root::

    python benchmarks/bench_load_report_updates.py                          # this tree
    python benchmarks/bench_load_report_updates.py --before /tmp/bk_cab/src # and another

N endpoints (default 10,000), each with its own report (weights ~200-2,200). Timed, each tree
in its own child process, one after the other: ns per ``report`` (a lease, a weight in the
same A78 bucket as before); the periodic weight update (``weight_update_period`` elapsed) after
``--reported`` of the endpoints reported since the last one (default 100 %, median of 7); and
ns per ``select`` + ``release`` + ``report`` with an update every N picks (best of 3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def measure(n: int, reported: float) -> dict[str, Any]:
    import balancekit as bk

    now = [0.0]
    addresses = [f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}:80" for i in range(n)]
    lb = bk.LoadReportWeightedRoundRobin(addresses, blackout_period=0, clock=lambda: now[0])
    mine = {
        address: [
            bk.LoadReport(cpu_utilization=0.5 + j * 0.001, qps=100.0 + (i * 7919) % 1000)
            for j in range(8)
        ]
        for i, address in enumerate(addresses)
    }
    for address in addresses:
        lb.report(address, mine[address][0])
    now[0] += 1.0
    lb.release(lb.select())  # the first update reads every report
    out: dict[str, Any] = {}
    leases = [lb.select() for _ in range(n)]
    for lease in leases:
        lb.release(lease)
    best = float("inf")
    for round_ in range(3):
        start = time.process_time()
        for lease in leases:
            lb.report(lease, mine[lease.address][round_ + 1])
        best = min(best, (time.process_time() - start) / n)
    out["report_ns"] = best * 1e9
    samples = []
    count = int(n * reported)
    for round_ in range(7):
        for address in addresses[:count]:
            lb.report(address, mine[address][round_ & 7])
        now[0] += 1.0
        start = time.process_time()
        lb._reweigh(scaled=True) if hasattr(lb, "_book") else lb._reweigh()
        samples.append(time.process_time() - start)
    out["update"] = statistics.median(samples)
    select, release, report = lb.select, lb.release, lb.report
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for k in range(4 * n):
            if k % n == 0:
                now[0] += 1.0
            lease = select()
            release(lease)
            report(lease, mine[lease.address][k & 7])
        best = min(best, (time.process_time() - start) / (4 * n))
    out["mixed_ns"] = best * 1e9
    return out


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(measure(int(sys.argv[2]), float(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="SRC", help="another tree's src/ to run first")
    parser.add_argument("--after", metavar="SRC", help="the tree to measure (default: this one)")
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--reported", type=float, default=1.0, help="fraction reporting")
    args = parser.parse_args()
    trees = [("after", args.after or str(HERE.parent / "src"))]
    if args.before:
        trees.insert(0, ("before", args.before))
    print("| tree | N | reported | report ns | periodic update (CPU) | select+release+report ns |")
    print("|---|---:|---:|---:|---:|---:|")
    for tree, src in trees:
        command = [sys.executable, __file__, "--worker", str(args.n), str(args.reported)]
        done = subprocess.run(
            command,
            env={**os.environ, "PYTHONPATH": src},
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if done.returncode:
            print(f"| {tree} | error: {done.stderr.strip().splitlines()[-1:]} |")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {tree} | {args.n:,} | {args.reported:.0%} | {row['report_ns']:,.0f} |"
            f" {fmt(row['update'])} | {row['mixed_ns']:,.0f} |"
        )


if __name__ == "__main__":
    main()
