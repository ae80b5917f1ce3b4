"""Membership changes at scale: build, add, remove, set_weight, mark_down, 1% churn, lookup, memory.

Run from the repository root::

    python benchmarks/bench_membership.py                        # N = 1,000 / 10,000 / 100,000
    python benchmarks/bench_membership.py --quick                # N = 1,000 / 10,000, fewer repeats
    python benchmarks/bench_membership.py --before /work/main/src  # beside another tree

Every strategy in ``balancekit`` (all subclasses of ``BalancerBase``) and the peers:
``uhashring`` (``add_node``/``remove_node``, and its constructor) and ``roundrobin`` (it has no
membership change: its equivalent is building a new ``smooth`` schedule from the new list).

Each (subject, N, tree) runs in its own child process (fresh heap, no cross-talk), and rows for
the two trees are run one after the other for each N, so "before" and "after" share the machine's
state. Times are medians: add = ``add(new)`` of an endpoint not in the pool, remove = removing it
again, set_weight = 1 -> 2 of a member, mark_down = ``mark_down`` of a member (its ``mark_up``
is not timed), churn = ``update()`` with 1% of the members replaced. Lookup is ns per
``lookup(key)`` for the hashing strategies and per ``release(select())`` for the others, over
2,000 keys. Memory is the bytes the constructor allocated (tracemalloc), per endpoint, measured
at every N in a separate build.

Peers run up to N = 10,000 unless ``--peers-up-to`` says more (uhashring's ring of 100,000
nodes is ~16M dict entries). Maglev's table is ``next_prime(100 * N)`` slots (its documented
rule), at least 65,537.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBJECTS = [
    "IPHash",
    "Ketama",
    "BoundedLoadHash",
    "Maglev",
    "JumpHash",
    "Rendezvous",
    "RoundRobin",
    "WeightedRoundRobin",
    "Random",
    "WeightedRandom",
    "LeastConnections",
    "LeastResponseTime",
    "PeakEWMA",
    "PowerOfTwoChoices",
    "LoadReportWeightedRoundRobin",
    "uhashring",
    "roundrobin.smooth",
]
HASHING = {"IPHash", "Ketama", "BoundedLoadHash", "Maglev", "JumpHash", "Rendezvous"}
PEERS = {"uhashring", "roundrobin.smooth"}


def address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080"


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def build_ours(name: str, n: int) -> Any:
    import balancekit as bk
    from balancekit.strategies.hashing.maglev import next_prime

    addresses = [address(i) for i in range(n)]
    if name == "Maglev":
        return bk.Maglev(addresses, table_size=max(65_537, next_prime(100 * n)))
    return getattr(bk, name)(addresses)


def worker(name: str, n: int, repeats: int, budget: float) -> dict[str, Any]:
    """Measure one subject at one N in this process; returns seconds (ns for lookup)."""
    out: dict[str, Any] = {"name": name, "n": n}
    deadline = time.perf_counter() + budget
    newcomer = [address(n + 1 + i) for i in range(repeats)]
    keys = [f"user-{i}" for i in range(2000)]
    if name == "uhashring":
        from uhashring import HashRing

        nodes = [address(i) for i in range(n)]
        out["build"] = timed(lambda: HashRing(nodes=nodes))
        ring = HashRing(nodes=nodes)
        adds, removes = [], []
        for extra in newcomer:
            adds.append(timed(lambda extra=extra: ring.add_node(extra)))
            removes.append(timed(lambda extra=extra: ring.remove_node(extra)))
            if time.perf_counter() > deadline:
                break
        out["add"], out["remove"] = statistics.median(adds), statistics.median(removes)
        get = ring.get_node
        out["lookup"] = _per_call(lambda: [get(k) for k in keys], len(keys))
        tracemalloc.start()
        kept = HashRing(nodes=nodes)  # kept alive while measured (a discarded one measured ~0)
        out["memory"] = tracemalloc.get_traced_memory()[0] / n
        tracemalloc.stop()
        del kept
        return out
    if name == "roundrobin.smooth":
        import roundrobin

        pairs = [(address(i), 1) for i in range(n)]
        out["build"] = timed(lambda: roundrobin.smooth(pairs))
        out["add"] = statistics.median(
            timed(lambda extra=extra: roundrobin.smooth([*pairs, (extra, 1)])) for extra in newcomer
        )
        out["remove"] = statistics.median(
            timed(lambda: roundrobin.smooth(pairs[1:])) for _ in newcomer
        )
        pick = roundrobin.smooth(pairs)
        out["lookup"] = _per_call(lambda: [pick() for _ in keys], len(keys))
        return out
    out["build"] = timed(lambda: build_ours(name, n))
    lb = build_ours(name, n)
    steps: dict[str, list[float]] = {"add": [], "remove": [], "set_weight": [], "mark_down": []}
    churn: list[float] = []
    for index, extra in enumerate(newcomer):
        steps["add"].append(timed(lambda extra=extra: lb.add(extra)))
        steps["remove"].append(timed(lambda extra=extra: lb.remove(extra)))
        member = address(index * 7 % n)
        steps["set_weight"].append(timed(lambda member=member: lb.set_weight(member, 2)))
        lb.set_weight(member, 1)
        steps["mark_down"].append(timed(lambda member=member: lb.mark_down(member)))
        lb.mark_up(member)
        if time.perf_counter() > deadline:
            break
    for key, values in steps.items():
        out[key] = statistics.median(values)
    members = [endpoint.address for endpoint in lb.endpoints]
    step = max(1, n // 100)
    for round_ in range(min(repeats, 3)):  # replace 1% of the members, then put them back
        fresh = [address(10 * n + round_ * n + i) for i in range(len(members[::step]))]
        wanted = [a for i, a in enumerate(members) if i % step] + fresh
        churn.append(timed(lambda wanted=wanted: lb.update(wanted)))
        lb.update(members)
        if time.perf_counter() > deadline:
            break
    out["churn"] = statistics.median(churn)
    if name in HASHING:
        lookup = lb.lookup
        out["lookup"] = _per_call(lambda: [lookup(k) for k in keys], len(keys))
    else:
        select, release = lb.select, lb.release
        out["lookup"] = _per_call(lambda: [release(select(k)) for k in keys], len(keys))
    lb = None
    tracemalloc.start()
    kept = build_ours(name, n)
    out["memory"] = tracemalloc.get_traced_memory()[0] / n
    tracemalloc.stop()
    del kept
    return out


def _per_call(action: Callable[[], Any], calls: int) -> float:
    best = min(timed(action) for _ in range(5))
    return best / calls * 1e9


def run_child(src: str, name: str, n: int, repeats: int, budget: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": src}
    command = [sys.executable, __file__, "--worker", name, str(n), str(repeats), str(budget)]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=budget * 4 + 600
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "n": n, "error": "timeout"}
    if done.returncode != 0:
        return {"name": name, "n": n, "error": done.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| subject | N | tree | build | add | remove | set_weight | mark_down | churn 1% |"
        " lookup ns | bytes/endpoint |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['name']} | {row['n']:,} | {row['tree']} | {row['error']} |")
            continue
        memory = f"{row['memory']:,.0f}" if "memory" in row else "-"
        lines.append(
            f"| {row['name']} | {row['n']:,} | {row['tree']} | {fmt_time(row.get('build'))} |"
            f" {fmt_time(row.get('add'))} | {fmt_time(row.get('remove'))} |"
            f" {fmt_time(row.get('set_weight'))} | {fmt_time(row.get('mark_down'))} |"
            f" {fmt_time(row.get('churn'))} | {row.get('lookup', 0):,.0f} | {memory} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        name, n, repeats, budget = (
            sys.argv[2],
            int(sys.argv[3]),
            int(sys.argv[4]),
            float(sys.argv[5]),
        )
        print(json.dumps(worker(name, n, repeats, budget)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 and 10,000; fewer repeats")
    parser.add_argument(
        "--before", metavar="SRC", help="another tree's src/ to run beside this one"
    )
    parser.add_argument("--after", metavar="SRC", help="the tree to measure (default: this one)")
    parser.add_argument("--only", nargs="*", help="subjects to run (default: all)")
    parser.add_argument("--sizes", nargs="*", type=int, help="pool sizes (default 1k 10k 100k)")
    parser.add_argument(
        "--peers-up-to", type=int, default=10_000, help="largest N the peers run at (default 10k)"
    )
    args = parser.parse_args()
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    names = args.only or SUBJECTS
    trees = [("after", args.after or str(HERE.parent / "src"))]
    if args.before:
        trees.insert(0, ("before", args.before))
    rows: list[dict[str, Any]] = []
    for n in sizes:
        repeats = 3 if args.quick or n >= 100_000 else 7
        budget = 60.0 if n < 100_000 else 300.0
        for name in names:
            if name in PEERS and n > args.peers_up_to:
                continue
            for tree, src in trees if name not in PEERS else trees[-1:]:
                row = run_child(src, name, n, repeats, budget)
                row["tree"] = tree if name not in PEERS else "peer"
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(render(rows))


if __name__ == "__main__":
    main()
