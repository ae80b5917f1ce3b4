"""Cost of each change and each pick during a run of sequential adds and removes (issue 11).

Run from the repository root::

    python benchmarks/bench_ring_changes.py                      # N = 10,000, 1,000 changes
    python benchmarks/bench_ring_changes.py --sizes 1000 --changes 200 --only IPHash

For each subject (a fresh child process each): build N endpoints, then ``--changes`` changes
alternating ``add`` of a new endpoint and ``remove`` of a random member, each followed by
``--picks`` ``release(select(key))`` calls. Every change and every pick is timed alone (wall
clock, and the thread's CPU time, which leaves out time the scheduler gave other processes);
the garbage collector's pauses inside each are recorded too (``gc.callbacks``). Printed: median,
p99 and max per change and per pick, the mean per change (what the run cost, amortised), and
for the rings the ns per lookup with the overlay pending at the end and after ``settle`` and a
full merge. uhashring's ``add_node`` is timed in the same run (``--peer-adds`` calls) for the
ratio. Maglev uses a table of ``next_prime(100 N)`` slots.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBJECTS = ["IPHash", "Ketama", "BoundedLoadHash", "Maglev"]


def address(i: int) -> str:
    return f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}:80"


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def child(name: str, n: int, changes: int, picks: int, peer_adds: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent / "src"))
    import balancekit as bk

    rng = random.Random(11)
    members = [address(i) for i in range(n)]
    if name == "uhashring":
        from uhashring import HashRing

        ring = HashRing(nodes=members)
        adds = []
        for i in range(peer_adds):
            start = time.perf_counter()
            ring.add_node(address(n + i))
            adds.append(time.perf_counter() - start)
        return {"add_node": summary(adds)}
    if name == "Maglev":
        from balancekit.strategies.hashing.maglev import next_prime

        lb: Any = bk.Maglev(members, table_size=next_prime(100 * n))
    else:
        lb = getattr(bk, name)(members)
    pauses = [0.0]
    began = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses[0] += time.perf_counter() - began[0]

    gc.callbacks.append(on_gc)
    wall, cpu, no_gc, pick_wall, pick_cpu = [], [], [], [], []
    fresh = n
    for step in range(changes):
        pauses[0] = 0.0
        t0, c0 = time.perf_counter(), time.thread_time()
        if step % 2 == 0:
            lb.add(address(fresh))
            members.append(address(fresh))
            fresh += 1
        else:
            lb.remove(members.pop(rng.randrange(len(members))))
        t1, c1 = time.perf_counter(), time.thread_time()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
        no_gc.append(t1 - t0 - pauses[0])
        for k in range(picks):
            key = f"key-{step}-{k}"
            t0, c0 = time.perf_counter(), time.thread_time()
            lb.release(lb.select(key))
            pick_wall.append(time.perf_counter() - t0)
            pick_cpu.append(time.thread_time() - c0)
    gc.callbacks.remove(on_gc)
    out: dict[str, Any] = {
        "change": summary(wall),
        "change_cpu": summary(cpu),
        "change_no_gc": summary(no_gc),
        "pick": summary(pick_wall),
        "pick_cpu": summary(pick_cpu),
    }
    keys = [f"probe-{i}" for i in range(20_000)]

    def lookups() -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for key in keys:
                lb.lookup(key)
            best = min(best, time.perf_counter() - start)
        return best / len(keys) * 1e9

    if name != "Maglev":
        view = lb._view
        out["pending_points"] = view.pending
        out["merging"] = lb._ring.merging
        out["lookup_pending_ns"] = lookups()
        with lb._lock:
            lb._view = lb._ring.settle(now=True)
        out["lookup_merged_ns"] = lookups()
    else:
        out["building_at_end"] = lb._building is not None
        out["lookup_ns"] = lookups()
    return out


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:,.0f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--picks", type=int, default=10)
    parser.add_argument("--peer-adds", type=int, default=5)
    parser.add_argument("--only", nargs="+", default=["uhashring", *SUBJECTS])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, n = args.child.split(":")
        print(json.dumps(child(name, int(n), args.changes, args.picks, args.peer_adds)))
        return
    print(
        "| subject | N | change median | p99 | max | max w/o GC | mean (amortised) |"
        " CPU median | CPU p99 | CPU max |"
        " pick median | pick p99 | pick max | lookup pending ns | lookup merged ns |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        for name in args.only:
            command = [sys.executable, __file__, "--child", f"{name}:{n}"]
            command += ["--changes", str(args.changes), "--picks", str(args.picks)]
            command += ["--peer-adds", str(args.peer_adds)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            if name == "uhashring":
                a = r["add_node"]
                print(f"| uhashring add_node | {n:,} | {fmt(a['median'])} | | {fmt(a['max'])} |"
                      f" | {fmt(a['mean'])} | | | | | | | | |")  # fmt: skip
                continue
            c, p = r["change"], r["pick"]
            pending = f"{r['lookup_pending_ns']:,.0f}" if "lookup_pending_ns" in r else ""
            merged = f"{r.get('lookup_merged_ns', r.get('lookup_ns', 0)):,.0f}"
            print(
                f"| {name} | {n:,} | {fmt(c['median'])} | {fmt(c['p99'])} | {fmt(c['max'])} |"
                f" {fmt(r['change_no_gc']['max'])} | {fmt(c['mean'])} |"
                f" {fmt(r['change_cpu']['median'])} | {fmt(r['change_cpu']['p99'])} |"
                f" {fmt(r['change_cpu']['max'])} | {fmt(p['median'])} | {fmt(p['p99'])} |"
                f" {fmt(p['max'])} | {pending} | {merged} |",
                flush=True,
            )
            extra = {k: v for k, v in r.items() if not isinstance(v, dict)}
            print(f"<!-- {name} N={n}: {extra} -->", flush=True)


if __name__ == "__main__":
    main()
