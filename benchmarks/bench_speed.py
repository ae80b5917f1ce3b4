"""Issue 15: select + release(lease, ok=True, elapsed=0.001) of every strategy, per build.

Each *tree* (a source or build directory holding ``balancekit``) runs in a child process that
measures, in ONE interleaved run (``_harness.interleaved``) per N:

- ``no-op call``: a bound no-op method call, the floor every ``x no-op`` ratio divides by;
- ``minimal lease RR``: the issue's floor for the lease contract, a round robin in pure Python
  with a counter, a token, a dict store and a dict pop, called as two methods like a balancer
  (``_minimal_lease_rr.py``); with ``--compiled-floor DIR``, also ``minimal lease RR, compiled``:
  the same contract written for mypyc (``NativeLeaseRoundRobin``, compiled in DIR once), the
  compiled build's floor;
- every strategy, after a warm-up of ``--warm`` cycles of picks (a cycle = the pool's total
  weight, at most 100,000 picks), so each is timed as it runs between membership changes: a
  large WeightedRoundRobin steps NGINX's loop online for a whole cycle after a change before
  its picks become a lookup (issue 15), and that first cycle is timed on its own as
  ``WeightedRoundRobin, first cycle``: each batch follows a change (``set_weight`` there and
  back, untimed) and times at most one cycle of picks;
- every strategy: ``lease = select()`` (``select(key)`` over 4,096 distinct keys for the hash
  strategies), then ``release(lease, ok=True, elapsed=0.001)``, as a caller reporting a latency;
- the peers' bare picks: ``roundrobin.smooth`` (one ``get()``), ``uhashring.HashRing.get_node``,
  ``jump.py_hash`` (jump-consistent-hash's pure-Python path, given a precomputed 64-bit key, so
  the peer's figure leaves out the key hashing that JumpHash's includes); Rendezvous's HRW peers
  ``clandestined.RendezvousHash.find_node`` (unweighted: every node's MurmurHash3_32 of
  ``"node-key"``, its C extension) and ``hrw.choose(key, ids, k=1)`` (SHA-256 of key + id per
  replica, then a sort); both are O(n) per pick, like Rendezvous.

The parent alternates the children (``--passes`` times each, A B C A B C ...) and keeps, per
case, the median of the passes' ratios; ratios are always to the floor of the same child run.
A tree is given as ``NAME=PATH`` (PATH is put first on ``sys.path``); ``NAME=PATH:pure`` sets
``BALANCEKIT_PURE=1`` in that child, so a compiled build can be measured both ways::

    python benchmarks/bench_speed.py --tree before=/tmp/before/src --tree after=src
    python benchmarks/bench_speed.py --tree pure=build/lib:pure --tree compiled=build/lib
    python benchmarks/bench_speed.py --quick     # this checkout only, N = 10, a few seconds

Benchmarks never run as tests; tests/test_bench_smoke.py only smoke-runs the scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from itertools import repeat
from pathlib import Path
from time import perf_counter_ns
from typing import Any

_HERE = Path(__file__).resolve().parent

#: (class name, keyed?, peer) in table order.
STRATEGIES: tuple[tuple[str, bool, str | None], ...] = (
    ("RoundRobin", False, None),
    ("WeightedRoundRobin", False, "roundrobin.smooth"),
    ("Random", False, None),
    ("WeightedRandom", False, None),
    ("LeastConnections", False, None),
    ("LeastResponseTime", False, None),
    ("PowerOfTwoChoices", False, None),
    ("PeakEWMA", False, None),
    ("IPHash", True, "uhashring.get_node"),
    ("Ketama", True, "uhashring.get_node"),
    ("Maglev", True, "uhashring.get_node"),
    ("JumpHash", True, "jump.py_hash"),
    ("Rendezvous", True, "clandestined.find_node"),
    ("BoundedLoadHash", True, "uhashring.get_node"),
)
#: Further peers a strategy must beat too (issue 15): Rendezvous beside every pure-Python HRW
#: library on PyPI that runs on Python 3 (proxenos needs six and siphash: not measured).
MORE_PEERS: dict[str, tuple[str, ...]] = {"Rendezvous": ("hrw.choose",)}
NOOP = "no-op call"
FLOOR = "minimal lease RR"
NATIVE_FLOOR = "minimal lease RR, compiled"
#: The issue's targets: select+release <= this many no-op calls.
TARGETS = {
    "RoundRobin": 20.0,
    "WeightedRoundRobin": 20.0,
    "LeastConnections": 40.0,
    "LeastResponseTime": 40.0,
    "PowerOfTwoChoices": 40.0,
    "PeakEWMA": 40.0,
}
#: The compiled build's targets (issue 15 item 2): <= 5x for RR/WRR, <= 15x for LC/LRT.
COMPILED_TARGETS = {
    "RoundRobin": 5.0,
    "WeightedRoundRobin": 5.0,
    "LeastConnections": 15.0,
    "LeastResponseTime": 15.0,
}


# -- the child: one tree, one process ---------------------------------------------------------


def _select_release(balancer: Any, keys: list[str] | None) -> Callable[[int], tuple[int, int]]:
    select, release = balancer.select, balancer.release
    if keys is None:

        def run(n: int) -> tuple[int, int]:
            start = perf_counter_ns()
            for _ in repeat(None, n):
                release(select(), ok=True, elapsed=0.001)
            return perf_counter_ns() - start, n

        return run

    def run_keyed(n: int) -> tuple[int, int]:
        passes, chunk = (n // len(keys), keys) if n >= len(keys) else (1, keys[: max(1, n)])
        start = perf_counter_ns()
        for _ in repeat(None, passes):
            for key in chunk:
                release(select(key), ok=True, elapsed=0.001)
        return perf_counter_ns() - start, passes * len(chunk)

    return run_keyed


def _first_cycle(balancer: Any, endpoints: Sequence[Any]) -> Callable[[int], tuple[int, int]]:
    """Picks right after a change, at most one cycle of them per batch (see the docstring)."""
    select, release = balancer.select, balancer.release
    first = endpoints[0]
    cycle = sum(endpoint.weight for endpoint in endpoints)

    def run(n: int) -> tuple[int, int]:
        balancer.set_weight(first.address, first.weight + 1)  # untimed: the change
        balancer.set_weight(first.address, first.weight)
        n = min(n, cycle)
        start = perf_counter_ns()
        for _ in repeat(None, n):
            release(select(), ok=True, elapsed=0.001)
        return perf_counter_ns() - start, n

    return run


def _warm(case: Callable[[int], tuple[int, int]], picks: int) -> None:
    """Run ``picks`` picks of ``case`` before anything is timed (the steady state)."""
    if picks > 0:
        case(picks)


def _per_key(call: Callable[[Any], object], keys: Sequence[Any]) -> Callable[[int], Any]:
    def run(n: int) -> tuple[int, int]:
        passes, chunk = (n // len(keys), keys) if n >= len(keys) else (1, keys[: max(1, n)])
        start = perf_counter_ns()
        for _ in repeat(None, passes):
            for key in chunk:
                call(key)
        return perf_counter_ns() - start, passes * len(chunk)

    return run


def child(
    sizes: Sequence[int], names: Sequence[str], repeats: int, min_time: float, warm: float
) -> None:
    """Measure this process's ``balancekit`` and print one JSON object on stdout."""
    # balancekit first, from this child's PYTHONPATH (the --tree): bench_select puts the
    # checkout's own src first on sys.path when imported, and every tree measured that one.
    import balancekit as bk

    sys.path.insert(1, str(_HERE))
    import _harness
    from _minimal_lease_rr import NATIVE_NAME, MinimalLeaseRoundRobin
    from bench_select import build_strategy, make_endpoints, make_keys

    try:
        native_floor: Any = __import__(NATIVE_NAME)
    except ImportError:
        native_floor = None

    keys = make_keys(4096)
    bkeys = [key.encode() for key in keys]  # hrw takes bytes
    result: dict[str, Any] = {
        "file": bk.__file__,
        "compiled": bool(getattr(bk, "compiled", False)),
        "sizes": {},
    }
    for n in sizes:
        endpoints = make_endpoints(n)
        cases: dict[str, Callable[[int], tuple[int, int]]] = {
            NOOP: _harness.method_call_floor(),
            FLOOR: _select_release(MinimalLeaseRoundRobin(endpoints), None),
        }
        if native_floor is not None:  # --compiled-floor: the same file compiled with mypyc
            cases[NATIVE_FLOOR] = _select_release(
                native_floor.NativeLeaseRoundRobin(endpoints), None
            )
        keep: list[Any] = []
        for name, keyed, _peer in STRATEGIES:
            if name in names and hasattr(bk, name):
                balancer = build_strategy(name, endpoints)
                keep.append(balancer)
                cases[name] = _select_release(balancer, keys if keyed else None)
                total = sum(endpoint.weight for endpoint in endpoints)
                _warm(cases[name], min(100_000, int(warm * total)))
                if name == "WeightedRoundRobin":
                    cold = build_strategy(name, endpoints)
                    keep.append(cold)
                    cases[name + ", first cycle"] = _first_cycle(cold, endpoints)
        pairs = [(e.address, e.weight) for e in endpoints]
        try:
            import roundrobin

            get = roundrobin.smooth(pairs)
            cases["roundrobin.smooth"] = lambda k, get=get: _count(get, k)
        except ImportError:
            pass
        try:
            import uhashring

            cases["uhashring.get_node"] = _per_key(uhashring.HashRing(dict(pairs)).get_node, keys)
        except ImportError:
            pass
        try:
            from clandestined import RendezvousHash

            find = RendezvousHash([address for address, _ in pairs]).find_node
            cases["clandestined.find_node"] = _per_key(find, keys)
        except ImportError:
            pass
        try:
            import hrw

            ids = [address.encode() for address, _ in pairs]
            cases["hrw.choose"] = _per_key(
                lambda key, ids=ids, choose=hrw.choose: choose(key, ids, k=1), bkeys
            )
        except ImportError:
            pass
        try:
            import mmh3
            from jump import py_hash

            ints = [mmh3.hash64(key.encode(), signed=False)[0] for key in keys]
            cases["jump.py_hash"] = _per_key(lambda key, n=n: py_hash(key, n), ints)
        except ImportError:
            pass
        measured = _harness.interleaved(cases, repeats=repeats, min_time=min_time)
        result["sizes"][str(n)] = {name: m.median for name, m in measured.items()}
        del keep
    print(json.dumps(result))


def _count(call: Callable[[], object], n: int) -> tuple[int, int]:
    start = perf_counter_ns()
    for _ in repeat(None, n):
        call()
    return perf_counter_ns() - start, n


# -- the parent: alternate the trees, render ratios -------------------------------------------


def _run_child(path: str, pure: bool, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("BALANCEKIT_PURE", None)
    if pure:
        env["BALANCEKIT_PURE"] = "1"
    paths = [str(Path(path).resolve()), str(_HERE)]
    if args.compiled_floor:
        paths.append(str(args.compiled_floor))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    command = [sys.executable, str(Path(__file__).resolve()), "--child"]
    command += ["--sizes", *map(str, args.sizes), "--strategies", *args.strategies]
    command += ["--repeats", str(args.repeats), "--min-time", str(args.min_time)]
    command += ["--warm", str(args.warm)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"child for {path} failed:\n{done.stderr}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def render(trees: list[str], runs: dict[str, list[dict[str, Any]]], sizes: Sequence[int]) -> str:
    """One table per N: per case, ns and x no-op for each tree, and x peer for each tree."""
    peer_of = {name: peer for name, _, peer in STRATEGIES}
    lines: list[str] = []
    for tree in trees:
        first = runs[tree][0]
        kind = "compiled (mypyc)" if first["compiled"] else "pure Python"
        lines.append(f"- `{tree}`: {kind}, {first['file']}")
    for n in sizes:
        key = str(n)
        names: list[str] = []
        for tree in trees:
            for name in runs[tree][0]["sizes"][key]:
                if name not in names:
                    names.append(name)
        header = ["case", *(f"{t} ns" for t in trees), *(f"{t} x no-op" for t in trees)]
        header += ["peer", *(f"{t} x peer" for t in trees)]
        lines += ["", f"N = {n:,}", "", "| " + " | ".join(header) + " |"]
        text_columns = (0, 1 + 2 * len(trees))
        rule = ("---" if i in text_columns else "--:" for i in range(len(header)))
        lines.append("|" + "|".join(rule) + "|")
        for name in names:
            row = [name]
            ns_cells, ratio_cells, peer_cells = [], [], []
            for tree in trees:
                ns, ratio, vs_peer = _figures(runs[tree], key, name, peer_of.get(name))
                ns_cells.append(f"{ns:,.0f}" if ns else "")
                ratio_cells.append(f"{ratio:.1f}" if ratio else "")
                peer_cells.append(f"{vs_peer:.2f}" if vs_peer else "")
            row += ns_cells + ratio_cells + [peer_of.get(name) or ""] + peer_cells
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _figures(
    passes: list[dict[str, Any]], key: str, name: str, peer: str | None
) -> tuple[float, float, float]:
    ns, ratio, vs_peer = [], [], []
    for data in passes:
        cases = data["sizes"][key]
        if name not in cases:
            continue
        ns.append(cases[name])
        ratio.append(cases[name] / cases[NOOP])
        if peer and peer in cases:
            vs_peer.append(cases[name] / cases[peer])
    median = statistics.median
    return (
        median(ns) if ns else 0.0,
        median(ratio) if ratio else 0.0,
        median(vs_peer) if vs_peer else 0.0,
    )


def targets(trees: list[str], runs: dict[str, list[dict[str, Any]]], sizes: Sequence[int]) -> str:
    lines = []
    for tree in trees:
        goals = COMPILED_TARGETS if runs[tree][0]["compiled"] else TARGETS
        for n in sizes:
            for name, _, peer in STRATEGIES:
                ns, ratio, vs_peer = _figures(runs[tree], str(n), name, peer)
                if not ns:
                    continue
                if name in goals:
                    verdict = "PASS" if ratio <= goals[name] else "MISS"
                    lines.append(
                        f"- {verdict} {tree} {name} N={n}: {ratio:.1f}x no-op"
                        f" (target <= {goals[name]:.0f}x)"
                    )
                for other in (peer, *MORE_PEERS.get(name, ())):
                    vs_other = (
                        vs_peer if other == peer else _figures(runs[tree], str(n), name, other)[2]
                    )
                    if other and vs_other:
                        verdict = "PASS" if vs_other < 1.0 else "MISS"
                        lines.append(f"- {verdict} {tree} {name} N={n}: {vs_other:.2f}x {other}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH[:pure]")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--strategies", nargs="+", default=[s[0] for s in STRATEGIES])
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds per child")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per batch")
    parser.add_argument("--passes", type=int, default=1, help="child runs per tree, alternated")
    parser.add_argument(
        "--warm", type=float, default=2.0, help="cycles of picks before timing (0: none)"
    )
    parser.add_argument("--quick", action="store_true", help="this checkout, N = 10, one pass")
    parser.add_argument(
        "--compiled-floor",
        metavar="DIR",
        type=Path,
        help="also time the minimal lease RR compiled by mypyc (built in DIR once)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compiled_floor and not args.child:
        sys.path.insert(0, str(_HERE))
        from _minimal_lease_rr import build_native

        build_native(args.compiled_floor)
    if args.child:
        child(args.sizes, args.strategies, args.repeats, args.min_time, args.warm)
        return 0
    if args.quick:
        args.tree = args.tree or [f"this={_HERE.parent / 'src'}"]
        args.sizes, args.passes, args.repeats, args.min_time = [10], 1, 3, 0.005
    trees: list[str] = []
    specs: dict[str, tuple[str, bool]] = {}
    for spec in args.tree or [f"this={_HERE.parent / 'src'}"]:
        name, _, path = spec.partition("=")
        pure = path.endswith(":pure")
        specs[name] = (path.removesuffix(":pure"), pure)
        trees.append(name)
    runs: dict[str, list[dict[str, Any]]] = {tree: [] for tree in trees}
    for number in range(args.passes):
        for tree in trees:
            print(f"pass {number + 1}/{args.passes}: {tree}", file=sys.stderr, flush=True)
            runs[tree].append(_run_child(*specs[tree], args))
    command = "python benchmarks/bench_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"`{command.strip()}`\n")
    print(render(trees, runs, args.sizes))
    print("\nTargets (issue 15):\n")
    print(targets(trees, runs, args.sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
