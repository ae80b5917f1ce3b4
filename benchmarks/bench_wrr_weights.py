"""Smooth WRR (NGINX order) with many distinct weights: what a membership change and a pick cost.

Run from the repository root::

    python benchmarks/bench_wrr_weights.py                          # this tree
    python benchmarks/bench_wrr_weights.py --before /work/main/src  # and another, same run

A ``WeightedRoundRobin`` of N endpoints (default 10,000) whose weights cycle through
``--distinct`` values (default 300: weights 1..300), so the NGINX cycle is long and there are
many weight classes. Timed: add / remove / set_weight / mark_down of one endpoint (medians of
``--repeats``), and ns per ``release(select())`` over 20,000 picks (best of 3). Each tree runs
in its own child process; the two trees run one after the other.
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


def measure(n: int, distinct: int, repeats: int) -> dict[str, Any]:
    import balancekit as bk

    def address(i: int) -> str:
        return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080"

    endpoints = [bk.Endpoint(address(i), weight=1 + i % distinct) for i in range(n)]
    start = time.perf_counter()
    lb = bk.WeightedRoundRobin(endpoints)
    out: dict[str, Any] = {"build": time.perf_counter() - start}
    steps: dict[str, list[float]] = {"add": [], "remove": [], "set_weight": [], "mark_down": []}
    for index in range(repeats):
        extra = bk.Endpoint(address(n + 1 + index), weight=1 + index % distinct)
        member = address(index * 7 % n)
        actions = (
            ("add", lb.add, extra),
            ("remove", lb.remove, extra.address),
            ("mark_down", lb.mark_down, member),
        )
        for name, action, argument in actions:
            start = time.perf_counter()
            action(argument)
            steps[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        lb.set_weight(member, distinct + 1)
        steps["set_weight"].append(time.perf_counter() - start)
        lb.mark_up(member)
        lb.set_weight(member, 1 + (index * 7 % n) % distinct)
    for name, values in steps.items():
        out[name] = statistics.median(values)
    select, release = lb.select, lb.release
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(20_000):
            release(select())
        best = min(best, (time.perf_counter() - start) / 20_000)
    out["pick_ns"] = best * 1e9
    return out


def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(measure(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="SRC", help="another tree's src/ to run first")
    parser.add_argument("--after", metavar="SRC", help="the tree to measure (default: this one)")
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--distinct", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trees = [("after", args.after or str(HERE.parent / "src"))]
    if args.before:
        trees.insert(0, ("before", args.before))
    print("| tree | N | distinct weights | build | add | remove | set_weight | mark_down |", end="")
    print(" pick ns |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tree, src in trees:
        command = [
            sys.executable,
            __file__,
            "--worker",
            str(args.n),
            str(args.distinct),
            str(args.repeats),
        ]
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
            f"| {tree} | {args.n:,} | {args.distinct} | {fmt(row['build'])} | {fmt(row['add'])} |"
            f" {fmt(row['remove'])} | {fmt(row['set_weight'])} | {fmt(row['mark_down'])} |"
            f" {row['pick_ns']:,.0f} |"
        )


if __name__ == "__main__":
    main()
