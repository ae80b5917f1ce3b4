"""Instructions per pick, counted by callgrind: load-independent (issues 11 and 15).

Each subject runs in its own process under ``valgrind --tool=callgrind``, with instrumentation
off while the pool is built (``--instr-atstart=no``; a 100,000-endpoint ring builds in minutes
even so) and switched on (``callgrind_control -i on``) once it is. Only what runs inside one
``functools.reduce`` over 4,096 keys is counted (``--toggle-collect=functools_reduce``), after a
warm-up pass over the same keys; the count of an empty step is subtracted, so a figure is the
instructions of one ``lookup(key)``, one ``select(key)`` + ``release(lease, ok=True,
elapsed=0.001)`` of any strategy, one peer call (``uhashring`` ``get_node``, ``clandestined``
``find_node``), ``noop``: the bound no-op method call bench_speed's ratios divide by, or
``floor`` / ``floor_compiled``: the lease contract's floor (``_minimal_lease_rr``) in pure
Python / compiled by mypyc (built once in the temporary directory), select + release.

``--tombs merged`` (Ketama): count after ``set_weight`` of the first endpoint to its weight + 1,
so other servers keep a dead digest or so on the ring as tombstones (issue 11), with the
change's points merged into the base (the ring's private ``settle(now=True)``: no public call
merges an overlay under 1/64 of the ring), so only the tombstones differ from a plain count;
``--tombs pending``: the same change left in the overlay, as a caller sees it after one change;
``--tombs added``: the baseline of ``pending``, an endpoint of weight 1 added instead (pending,
no tombstones: run it with ``HP_WEIGHTED=0``, equal weights, where counts do not move)::

    python benchmarks/bench_callgrind.py --tree before=/tmp/bk_c644/src --tree after=src \\
        --strategies IPHash Ketama BoundedLoadHash Maglev --sizes 1000 10000 --modes lookup

Trees are ``NAME=PATH`` (put first on ``sys.path``; ``NAME=PATH:pure`` sets
``BALANCEKIT_PURE=1``). Maglev gets ``table_size`` = a prime >= 100 x N (the trees before
issue 11 had no automatic size). Endpoints have weights 1..5 cycling (``HP_WEIGHTED=0``: all 1),
as ``bench_speed``; ``PYTHONHASHSEED=0``. Unkeyed strategies in mode ``select`` first make two
cycles of picks (the pool's total weight, at most 100,000) uncounted, as ``bench_speed`` warms
them: the steady state (``HP_WARM=0``: none, e.g. WeightedRoundRobin's first cycle online).
Benchmarks never run as tests.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KEYS = 4096
PEERS = ("uhashring", "clandestined", "noop")
#: The lease contract's floor (``_minimal_lease_rr``): pure Python, and compiled by mypyc.
FLOORS = ("floor", "floor_compiled")
FLOOR_DIR = Path(tempfile.gettempdir()) / "balancekit-floor-native"


def _prime_at_least(value: int) -> int:
    def prime(n: int) -> bool:
        return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))

    while not prime(value):
        value += 1
    return value


def child(name: str, n: int, mode: str, go: str, tombs: str = "") -> None:
    """Build the subject, wait for ``go`` (instrumentation on), then run the counted loop."""
    import balancekit as bk

    rng = random.Random(2026)
    keys: set[str] = set()
    while len(keys) < KEYS:
        keys.add(".".join(str(rng.randrange(256)) for _ in range(4)))
    ordered = sorted(keys, key=lambda _: rng.random())
    weighted = os.environ.get("HP_WEIGHTED", "1") == "1"
    endpoints = [
        bk.Endpoint(
            f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080",
            weight=(1 + i % 5) if weighted else 1,
        )
        for i in range(n)
    ]
    started = time.perf_counter()
    call: Any
    if name == "noop":  # the floor bench_speed divides by: a bound no-op method call

        class Floor:
            def noop(self, key: object) -> None:
                return None

        call = Floor().noop
    elif name in FLOORS:  # the contract's floor, select + release (mode "select")
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _minimal_lease_rr import NATIVE_NAME, MinimalLeaseRoundRobin

        floor: Any = __import__(NATIVE_NAME) if name == "floor_compiled" else None
        kind = floor.NativeLeaseRoundRobin if floor is not None else MinimalLeaseRoundRobin
        balancer = kind([e.address for e in endpoints])
        call = balancer.select
    elif name == "uhashring":
        import uhashring

        call = uhashring.HashRing({e.address: e.weight for e in endpoints}).get_node
    elif name == "clandestined":
        from clandestined import RendezvousHash

        call = RendezvousHash([e.address for e in endpoints]).find_node
    else:
        options = {"table_size": _prime_at_least(100 * n)} if name == "Maglev" else {}
        balancer = getattr(bk, name)(endpoints, **options)
        if hasattr(balancer, "settle"):
            balancer.settle()
        if tombs == "added":  # pending without tombstones (equal weights)
            balancer.add(bk.Endpoint("10.255.255.255:8080"))
            assert balancer._view.tombs is None and balancer._view.dirty
        elif tombs:  # one weight change: the other servers' counts drop (dead points stay)
            balancer.set_weight(endpoints[0].address, endpoints[0].weight + 1)
            if tombs == "merged":
                balancer._ring.settle(now=True)
                balancer._publish()
            assert balancer._view.tombs is not None and balancer._view.dirty == (tombs != "merged")
        call = getattr(balancer, "lookup", balancer.select)  # (no lookup: not a hash)
        if mode == "select" and not hasattr(balancer, "lookup"):  # the steady state, as
            # bench_speed: two cycles of picks first (a large WeightedRoundRobin steps NGINX's
            # loop online for a whole cycle after a change; HP_WARM=0 counts that cycle)
            cycles = float(os.environ.get("HP_WARM", "2"))
            for _ in range(min(100_000, int(cycles * sum(e.weight for e in endpoints)))):
                balancer.release(balancer.select(), ok=True, elapsed=0.001)
    print(f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    Path(go + ".ready").write_text(str(os.getpid()))
    while not os.path.exists(go):
        time.sleep(0.05)

    def step(_: object, key: str) -> None:
        call(key)

    if mode == "empty":

        def step(_: object, key: str) -> None:
            return None

    elif mode == "select" and (name not in PEERS or name in FLOORS):
        select, release = balancer.select, balancer.release

        def step(_: object, key: str) -> None:
            release(select(key), ok=True, elapsed=0.001)

    for key in ordered:  # warm: not counted (outside functools.reduce)
        step(None, key)
    functools.reduce(step, ordered, None)


def count(path: str, pure: bool, name: str, n: int, mode: str, tombs: str = "") -> float:
    """Instructions per step of ``name`` at ``n`` in the tree at ``path`` (empty step included)."""
    with tempfile.TemporaryDirectory() as scratch:
        go, out = os.path.join(scratch, "go"), os.path.join(scratch, "callgrind.out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        env.pop("BALANCEKIT_PURE", None)
        if pure:
            env["BALANCEKIT_PURE"] = "1"
        env["PYTHONPATH"] = os.pathsep.join([str(Path(path).resolve()), str(FLOOR_DIR)])
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--toggle-collect=functools_reduce",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            str(n),
            mode,
            go,
            tombs,
        ]
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 3600
            while not os.path.exists(go + ".ready"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} N={n} in {path} failed:\n{process.stderr.read()}")
                time.sleep(0.2)
            pid = Path(go + ".ready").read_text()
            subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=True)
            Path(go).touch()
            process.wait(timeout=3600)
        finally:
            if process.poll() is None:
                process.kill()
        for line in Path(out).read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1]) / KEYS
    raise SystemExit(f"no totals in callgrind's output for {name} N={n}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH[:pure]")
    parser.add_argument("--strategies", nargs="+", default=["IPHash", "BoundedLoadHash"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10])
    parser.add_argument("--modes", nargs="+", default=["lookup"], choices=["lookup", "select"])
    parser.add_argument(
        "--tombs",
        choices=["merged", "pending", "added"],
        default="",
        help="Ketama: count with tombstones (see the docstring)",
    )
    args = parser.parse_args()
    trees = [tree.partition("=")[::2] for tree in args.tree] or [("this", "src")]
    if "floor_compiled" in args.strategies:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _minimal_lease_rr import build_native

        build_native(FLOOR_DIR)
    print(f"| subject | N | mode | {' | '.join(f'{t} Ir' for t, _ in trees)} | ratio |")
    print(f"|---|--:|---|{'--:|' * len(trees)}--:|")
    empty = {}  # an empty step's count per tree (the loop's own cost: no subject, any N)
    for _, spec in trees:
        path, _, flag = spec.partition(":")
        empty[spec] = count(path, flag == "pure", "IPHash", 10, "empty")
    for n in args.sizes:
        for name in args.strategies:
            modes = ["lookup"] if name in PEERS else ["select"] if name in FLOORS else args.modes
            for mode in modes:
                figures = []
                for _, spec in trees:
                    path, _, flag = spec.partition(":")
                    figures.append(
                        count(path, flag == "pure", name, n, mode, args.tombs) - empty[spec]
                    )
                shown = " | ".join(f"{f:,.0f}" for f in figures)
                ratio = f"{figures[-1] / figures[0]:.2f}" if len(figures) > 1 else ""
                print(f"| {name} | {n:,} | {mode} | {shown} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
