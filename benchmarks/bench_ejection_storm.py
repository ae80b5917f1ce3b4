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
one select+release, the p99.9 / max of the ``select()`` alone, and the p99.9 / max of the
thread's CPU time per select+release (the work done in the call, without the time the
scheduler gave other processes: read it on a loaded machine). Each (tree, strategy) runs in
its own child process. ``--strategy NAME ...`` storms other balancer classes (e.g. ``Maglev
BoundedLoadHash``, or ``LeastConnections``: what the base and the health tracker cost without a
ring); Maglev gets ``table_size=next_prime(100 * N)`` (the paper's rule; the default 65,537 is
below 10 x N). ``--churn-every K`` also changes the membership, untimed, every K calls (a
spare endpoint added, then removed again): what a change leaves to the requests after it, e.g.
the chunks of Maglev's table fill that its first picks after a change pay.
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


def storm(
    n: int,
    bad_count: int,
    budget: float,
    strategy: str = "IPHash",
    churn_every: int = 0,
    cpu_budget: bool = False,
) -> dict[str, Any]:
    import balancekit as bk

    addresses = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080" for i in range(n)]
    options: dict[str, Any] = {}
    if strategy == "Maglev":
        from balancekit.strategies.hashing.maglev import next_prime

        options["table_size"] = next_prime(100 * n)
    ejections: list[object] = []
    built = time.thread_time()
    lb = bk.with_health(
        getattr(bk, strategy)(addresses, **options),
        bk.PassiveHealth(consecutive_failures=2, max_ejection_share=bad_count / n),
        on_event=lambda event: (
            ejections.append(event) if type(event).__name__ == "Ejected" else None
        ),
    )
    built = time.thread_time() - built
    rng = random.Random(7)
    bad = set(rng.sample(addresses, bad_count))
    spare = "10.255.255.254:8080"  # the endpoint --churn-every adds and removes
    clock = time.perf_counter
    samples: list[float] = []
    selects: list[float] = []
    cpus: list[float] = []  # the thread's CPU time per call: the work, without preemption
    cpu_clock = time.thread_time
    budget_clock = time.thread_time if cpu_budget else clock
    deadline = budget_clock() + budget
    ejected = changes = 0
    while ejected < bad_count and budget_clock() < deadline and len(samples) < 5_000_000:
        if churn_every and len(samples) % churn_every == churn_every - 1:
            (lb.remove if changes % 2 else lb.add)(spare)  # untimed: the change itself
            changes += 1
        key = f"user-{rng.getrandbits(48)}"
        cpu = cpu_clock()
        start = clock()
        lease = lb.select(key)
        picked = clock()
        lb.release(lease, ok=lease.address not in bad)
        done = clock()
        cpus.append(cpu_clock() - cpu)
        samples.append(done - start)
        selects.append(picked - start)
        ejected = len(ejections)
    samples.sort()
    selects.sort()
    cpus.sort()

    def quantile(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return {
        "calls": len(samples),
        "ejected": ejected,
        "changes": changes,
        "build_cpu_s": built,
        "p50_us": quantile(samples, 0.5) * 1e6,
        "p99_us": quantile(samples, 0.99) * 1e6,
        "p999_us": quantile(samples, 0.999) * 1e6,
        "max_us": samples[-1] * 1e6,
        "select_p999_us": quantile(selects, 0.999) * 1e6,
        "select_max_us": selects[-1] * 1e6,
        "cpu_p999_us": quantile(cpus, 0.999) * 1e6,
        "cpu_max_us": cpus[-1] * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        n, bad, budget, strategy, churn, cpu = argv[1:7]
        row = storm(int(n), int(bad), float(budget), strategy, int(churn), cpu == "cpu")
        print(json.dumps(row))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", metavar="SRC", help="another tree's src/ to run first")
    parser.add_argument("--after", metavar="SRC", help="the tree to measure (default: this one)")
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--bad", type=int, default=1_000)
    parser.add_argument("--budget", type=float, default=180.0, help="seconds per tree and strategy")
    parser.add_argument(
        "--cpu-budget",
        action="store_true",
        help="count --budget in the storming thread's CPU seconds, not wall-clock seconds (on a"
        " loaded machine: the same calls as a quiet machine makes in that time)",
    )
    parser.add_argument(
        "--strategy",
        nargs="+",
        default=["IPHash"],
        help="the balancer classes to storm, one after the other (default IPHash)",
    )
    parser.add_argument(
        "--churn-every",
        type=int,
        default=0,
        metavar="K",
        help="also add or remove a spare endpoint (untimed) every K calls (default: never)",
    )
    args = parser.parse_args(argv)
    trees = [("after", args.after or str(HERE.parent / "src"))]
    if args.before:
        trees.insert(0, ("before", args.before))
    print(
        "| tree | strategy | N | calls | ejected | changes | p50 | p99 | p99.9 | max"
        " | select p99.9 | select max | CPU p99.9 | CPU max |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for strategy in args.strategy:
        for tree, src in trees:
            done = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--worker",
                    str(args.n),
                    str(args.bad),
                    str(args.budget),
                    strategy,
                    str(args.churn_every),
                    "cpu" if args.cpu_budget else "wall",
                ],
                env={**os.environ, "PYTHONPATH": src},
                capture_output=True,
                text=True,
                timeout=args.budget * (30 if args.cpu_budget else 3) + 600,
            )
            if done.returncode:
                error = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                print(f"| {tree} | {strategy} | error: {error} |")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"| {tree} | {strategy} | {args.n:,} | {row['calls']:,} |"
                f" {row['ejected']}/{args.bad} | {row['changes']:,} |"
                f" {row['p50_us']:,.0f} us | {row['p99_us']:,.0f} us |"
                f" {row['p999_us']:,.0f} us | {row['max_us'] / 1e3:,.1f} ms |"
                f" {row['select_p999_us']:,.0f} us | {row['select_max_us'] / 1e3:,.1f} ms |"
                f" {row['cpu_p999_us']:,.0f} us | {row['cpu_max_us'] / 1e3:,.1f} ms |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
