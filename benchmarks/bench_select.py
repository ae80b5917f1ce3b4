"""ns per select+release of every strategy at N = 10 .. 10,000, beside a no-op call and the peers.

Run from the repository root::

    python benchmarks/bench_select.py                  # full run, a few minutes
    python benchmarks/bench_select.py --quick          # smoke run, well under 30 s
    python benchmarks/bench_select.py --sizes 10 10000 --strategies RoundRobin IPHash
    python benchmarks/bench_select.py --format json    # machine-readable

What is measured, per size N, in ONE interleaved run (see ``_harness``):

- ``no-op call``: a loop calling a bound no-op method — the floor on this machine;
- every strategy found on :mod:`balancekit` by name (the five of the core issue and any later
  one in :data:`STRATEGIES`): ``release(select())`` in a loop, bound methods, the default clock;
  hash strategies get pre-generated distinct keys, ``release(select(key))``;
- hash strategies' ``lookup(key)`` (no lease: what ``uhashring.get_node`` does);
- the Python peers: ``roundrobin.basic`` and ``roundrobin.smooth`` (one ``get()``), ``uhashring``'s
  and ``hashring``'s ``HashRing.get_node(key)``;
- at the smallest and largest N, each strategy with an *external* lock around select and around
  release (what a ``locked(balancer)`` wrapper would cost), and the bare ``RLock`` pair.

Endpoints have mixed weights (1, 2, 3, 4, 5, 1, ...), the same for every strategy and peer.
Figures are medians of interleaved rounds, in ns per operation and as ratios to the no-op call
and to the peer. Build (constructor) time is measured too. The issue's targets are checked and
printed PASS / MISS. Benchmarks never run as tests; tests/test_bench_smoke.py only smoke-runs this.
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from itertools import repeat
from pathlib import Path
from time import perf_counter_ns
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(_HERE.parent / "src"))
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _harness  # noqa: E402
from _harness import Case, Measurement  # noqa: E402
from _select_report import (  # noqa: E402
    Report,
    Row,
    check_targets,
    render_json,
    render_markdown,
)

import balancekit as bk  # noqa: E402

__all__ = ["STRATEGIES", "main"]

#: Strategy classes looked up on ``balancekit`` by name; those not (yet) defined are skipped.
STRATEGIES = (
    "RoundRobin",
    "WeightedRoundRobin",
    "IPHash",
    "LeastConnections",
    "LeastResponseTime",
    "Random",
    "WeightedRandom",
    "PowerOfTwoChoices",
    "PeakEWMA",
    "LoadReportWeightedRoundRobin",
    "Ketama",
    "Maglev",
    "JumpHash",
    "Rendezvous",
    "BoundedLoadHash",
)
#: Strategies whose select takes a key (also any subclass of the keyed base class).
KEYED = frozenset({"IPHash", "Ketama", "Maglev", "JumpHash", "Rendezvous", "BoundedLoadHash"})
#: The peer each strategy is compared with.
PEER_OF = {
    "RoundRobin": "roundrobin.basic",
    "WeightedRoundRobin": "roundrobin.smooth",
    "LoadReportWeightedRoundRobin": "roundrobin.smooth",
}
HASH_PEER = "uhashring.get_node"

SIZES = (10, 100, 1_000, 10_000)
NOOP = "no-op call"
FLOOR = "lease bookkeeping, inline"
LOCK_PAIR = "RLock acquire+release"
KEY_COUNT = 4096


# -- inputs ---------------------------------------------------------------------------------------


def make_endpoints(n: int) -> list[bk.Endpoint]:
    """``n`` distinct addresses with weights cycling 1..5."""
    return [
        bk.Endpoint(f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080", weight=1 + i % 5)
        for i in range(n)
    ]


def make_keys(count: int, seed: int = 2026) -> list[str]:
    """Distinct client-IP-like keys, the same on every run."""
    rng = random.Random(seed)
    keys: set[str] = set()
    while len(keys) < count:
        keys.add(".".join(str(rng.randrange(256)) for _ in range(4)))
    return sorted(keys, key=lambda _: rng.random())


def _is_keyed(name: str, balancer: object) -> bool:
    try:
        from balancekit.strategies.hashing._keyed import KeyedBalancer
    except ImportError:  # pragma: no cover - layout changed
        return name in KEYED
    return name in KEYED or isinstance(balancer, KeyedBalancer)


def _reported(cls: Callable[..., Any], endpoints: list[bk.Endpoint]) -> Any:
    """LoadReportWeightedRoundRobin with a report per endpoint, so it runs its own scheduler."""
    balancer = cls(endpoints, blackout_period=0)
    for endpoint in endpoints:
        report = bk.LoadReport(cpu_utilization=0.5, qps=10.0 * endpoint.weight)
        balancer.report(endpoint.address, report)
    return balancer


def _maglev(cls: Callable[..., Any], endpoints: list[bk.Endpoint]) -> Any:
    """Maglev with its default table, or the smallest prime >= 100 x N when that is too small."""
    size = 100 * len(endpoints)
    if size <= 65_537:
        return cls(endpoints)
    while any(size % d == 0 for d in range(2, int(size**0.5) + 1)):
        size += 1
    return cls(endpoints, table_size=size)


#: Strategies that need more than their defaults to show their real hot path (or to build).
SPECIAL_BUILDS: dict[str, Callable[[Callable[..., Any], list[bk.Endpoint]], Any]] = {
    "LoadReportWeightedRoundRobin": _reported,
    "Maglev": _maglev,
}


def build_strategy(name: str, endpoints: list[bk.Endpoint]) -> Any:
    """Construct with defaults; a strategy that refuses weights gets the same addresses at 1."""
    cls = getattr(bk, name)
    if name in SPECIAL_BUILDS:
        return SPECIAL_BUILDS[name](cls, endpoints)
    try:
        return cls(endpoints)
    except (ValueError, TypeError):
        return cls([endpoint.address for endpoint in endpoints])


# -- cases ----------------------------------------------------------------------------------------


def select_release(balancer: Any, keys: list[str] | None) -> Case:
    """``release(select())`` (or ``release(select(key))`` over the keys) in a loop."""
    select, release = balancer.select, balancer.release
    if keys is None:

        def run(n: int) -> tuple[int, int]:
            start = perf_counter_ns()
            for _ in repeat(None, n):
                release(select())
            return perf_counter_ns() - start, n

        return run

    def run_keyed(n: int) -> tuple[int, int]:
        passes, chunk = _passes(keys, n)
        start = perf_counter_ns()
        for _ in repeat(None, passes):
            for key in chunk:
                release(select(key))
        return perf_counter_ns() - start, passes * len(chunk)

    return run_keyed


def _passes(keys: list[str], n: int) -> tuple[int, list[str]]:
    """About ``n`` operations over the keys: whole passes, or a prefix when n is smaller (slow
    cases, e.g. an O(n) pick at N=10,000, calibrate to a few operations per batch)."""
    if n >= len(keys):
        return n // len(keys), keys
    return 1, keys[: max(1, n)]


def per_key(call: Callable[[str], object], keys: list[str]) -> Case:
    """``call(key)`` over the keys in a loop (a lookup, a peer's ``get_node``)."""

    def run(n: int) -> tuple[int, int]:
        passes, chunk = _passes(keys, n)
        start = perf_counter_ns()
        for _ in repeat(None, passes):
            for key in chunk:
                call(key)
        return perf_counter_ns() - start, passes * len(chunk)

    return run


def zero_arg(call: Callable[[], object]) -> Case:
    def run(n: int) -> tuple[int, int]:
        start = perf_counter_ns()
        for _ in repeat(None, n):
            call()
        return perf_counter_ns() - start, n

    return run


def externally_locked(balancer: Any, keys: list[str] | None) -> Case:
    """select and release each under an outside ``RLock``: the cost of a locked() wrapper."""
    select, release = balancer.select, balancer.release
    lock = threading.RLock()
    take, give = lock.acquire, lock.release
    if keys is None:

        def run(n: int) -> tuple[int, int]:
            start = perf_counter_ns()
            for _ in repeat(None, n):
                take()
                try:
                    lease = select()
                finally:
                    give()
                take()
                try:
                    release(lease)
                finally:
                    give()
            return perf_counter_ns() - start, n

        return run

    def run_keyed(n: int) -> tuple[int, int]:
        passes, chunk = _passes(keys, n)
        start = perf_counter_ns()
        for _ in repeat(None, passes):
            for key in chunk:
                take()
                try:
                    lease = select(key)
                finally:
                    give()
                take()
                try:
                    release(lease)
                finally:
                    give()
        return perf_counter_ns() - start, passes * len(chunk)

    return run_keyed


def contract_floor() -> Case:
    """What any select+release under the Lease contract costs here, written inline: a token,
    the endpoint's two counters, the outstanding-lease store and pop, a clock reading and the
    Lease itself -- no strategy, no function call. The gap between a strategy and this is what
    its own code (and the two method calls) cost."""
    from balancekit._lease import Lease

    endpoint = bk.Endpoint("10.0.0.1:8080")
    tokens, selected, released = itertools.count(1), itertools.count(), itertools.count()
    outstanding: dict[int, bk.Endpoint] = {}
    new, clock = tuple.__new__, time.monotonic

    def run_tuple(n: int) -> tuple[int, int]:  # a tree from before issue 15's native Lease
        start = perf_counter_ns()
        for _ in repeat(None, n):
            token = next(tokens)
            next(selected)
            outstanding[token] = endpoint
            lease = new(Lease, (endpoint, token, clock()))
            outstanding.pop(lease[1], None)
            next(released)
        return perf_counter_ns() - start, n

    def run(n: int) -> tuple[int, int]:  # the Lease class, built as the pure select builds it
        start = perf_counter_ns()
        for _ in repeat(None, n):
            token = next(tokens)
            next(selected)
            outstanding[token] = endpoint
            lease = object.__new__(Lease)
            lease._endpoint = endpoint
            lease._token = token
            lease._started = clock()
            outstanding.pop(lease._token, None)
            next(released)
        return perf_counter_ns() - start, n

    return run_tuple if issubclass(Lease, tuple) else run


def lock_pair() -> Case:
    lock = threading.RLock()
    take, give = lock.acquire, lock.release

    def run(n: int) -> tuple[int, int]:
        start = perf_counter_ns()
        for _ in repeat(None, n):
            take()
            give()
        return perf_counter_ns() - start, n

    return run


def peer_builders(endpoints: list[bk.Endpoint]) -> dict[str, Callable[[], Any]]:
    """The installed peers, each a builder of its picker (skipped if the package is missing)."""
    pairs = [(endpoint.address, endpoint.weight) for endpoint in endpoints]
    builders: dict[str, Callable[[], Any]] = {}
    try:
        import roundrobin

        builders["roundrobin.basic"] = lambda: roundrobin.basic([a for a, _ in pairs])
        builders["roundrobin.smooth"] = lambda: roundrobin.smooth(pairs)
    except ImportError:
        pass
    try:
        import uhashring

        builders[HASH_PEER] = lambda: uhashring.HashRing(dict(pairs))
    except ImportError:
        pass
    try:
        import hashring

        builders["hashring.get_node"] = lambda: hashring.HashRing(
            [a for a, _ in pairs], weights=dict(pairs)
        )
    except ImportError:
        pass
    return builders


# -- the run --------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, report: Report, log: Callable[[str], None]) -> None:
    names = [name for name in args.strategies if hasattr(bk, name)]
    for name in args.strategies:
        if not hasattr(bk, name):
            report.skipped[name] = "not defined on balancekit (yet)"
    keys = make_keys(args.keys)
    locked_sizes = {min(args.sizes), max(args.sizes)} if args.locked else set()
    for n in args.sizes:
        endpoints = make_endpoints(n)
        cases: dict[str, Case] = {NOOP: _harness.method_call_floor(), FLOOR: contract_floor()}
        kinds: dict[str, str] = {NOOP: "floor", FLOOR: "floor"}
        peers: dict[str, str] = {}
        keep: list[Any] = []  # the built objects, alive until this size is measured
        for name in names:
            log(f"N={n}: building {name}")
            try:
                build_ms, balancer = _harness.timed_build(
                    functools.partial(build_strategy, name, endpoints),
                    repeats=args.build_repeats,
                    budget=args.build_budget,
                )
            except Exception as error:  # a later strategy with required options
                report.skipped[name] = f"could not build at N={n}: {error!r}"
                continue
            report.builds.setdefault(name, {})[n] = build_ms
            keep.append(balancer)
            keyed = _is_keyed(name, balancer)
            case_keys = keys if keyed else None
            cases[name] = select_release(balancer, case_keys)
            kinds[name] = "strategy"
            peer = HASH_PEER if keyed else PEER_OF.get(name)
            if peer:
                peers[name] = peer
            if keyed and hasattr(balancer, "lookup"):
                cases[f"{name}.lookup"] = per_key(balancer.lookup, keys)
                kinds[f"{name}.lookup"] = "lookup"
                peers[f"{name}.lookup"] = HASH_PEER
            if n in locked_sizes:
                cases[f"{name} + external lock"] = externally_locked(balancer, case_keys)
                kinds[f"{name} + external lock"] = "locked"
        if n in locked_sizes:
            cases[LOCK_PAIR] = lock_pair()
            kinds[LOCK_PAIR] = "locked"
        if args.peers:
            for peer, builder in peer_builders(endpoints).items():
                log(f"N={n}: building peer {peer}")
                build_ms, picker = _harness.timed_build(
                    builder, repeats=args.build_repeats, budget=args.build_budget
                )
                report.builds.setdefault(peer, {})[n] = build_ms
                keep.append(picker)
                if peer.startswith("roundrobin."):
                    cases[peer] = zero_arg(picker)
                else:
                    cases[peer] = per_key(picker.get_node, keys)
                kinds[peer] = "peer"
        log(f"N={n}: measuring {len(cases)} cases, {args.repeats} interleaved rounds")
        gc.collect()
        results = _harness.interleaved(
            cases,
            repeats=args.repeats,
            min_time=args.min_time,
            progress=functools.partial(_progress, log, n) if args.verbose else None,
        )
        floor = results[NOOP].median
        for name, measured in results.items():
            peer = peers.get(name)
            peer_ns = results[peer].median if peer in results else None
            report.rows.append(_row(name, kinds[name], n, measured, floor, peer, peer_ns))
        del keep, cases, results
        gc.collect()


def _progress(log: Callable[[str], None], n: int, message: str) -> None:
    log(f"N={n}: {message}")


def _row(
    name: str,
    kind: str,
    n: int,
    m: Measurement,
    floor: float,
    peer: str | None,
    peer_ns: float | None,
) -> Row:
    return Row(
        name=name,
        kind=kind,
        n=n,
        ns=m.median,
        q1=m.q1,
        q3=m.q3,
        rounds=m.rounds,
        batch=m.batch,
        x_noop=m.median / floor,
        peer=peer if peer_ns is not None else None,
        x_peer=m.median / peer_ns if peer_ns else None,
    )


# -- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_select",
        description="ns per select+release per strategy and N, beside a no-op call and the peers.",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 30 s)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="endpoint counts (default 10 100 1000 10000)"
    )
    parser.add_argument(
        "--strategies", nargs="+", help=f"class names (default: all of {STRATEGIES})"
    )
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument("--repeats", type=int, help="interleaved rounds per case (default 25)")
    parser.add_argument("--min-time", type=float, help="seconds per batch (default 0.02)")
    parser.add_argument("--build-repeats", type=int, help="builds per strategy and N (default 5)")
    parser.add_argument(
        "--build-budget", type=float, default=2.0, help="seconds of builds per case"
    )
    parser.add_argument("--keys", type=int, default=KEY_COUNT, help="distinct keys for hash cases")
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="skip the peers")
    parser.add_argument("--no-locked", dest="locked", action="store_false", help="skip lock rows")
    parser.add_argument("--check", action="store_true", help="exit 1 if any target is missed")
    parser.add_argument("--verbose", action="store_true", help="progress per round on stderr")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([10, 1_000] if quick else list(SIZES))
    args.strategies = args.strategies or list(STRATEGIES)
    args.repeats = args.repeats or (5 if quick else 25)
    args.min_time = args.min_time if args.min_time is not None else (0.004 if quick else 0.02)
    args.build_repeats = args.build_repeats or (1 if quick else 5)
    if min(args.sizes) < 1 or args.repeats < 1 or args.min_time < 0 or args.keys < 1:
        parser.error("sizes, repeats and keys must be positive, min-time not negative")
    unknown = [name for name in args.strategies if name not in STRATEGIES and not hasattr(bk, name)]
    if unknown:
        parser.error(f"unknown strategies: {', '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print markdown or JSON on stdout. Returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(arguments)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    report = Report(
        machine=_harness.machine(),
        command=" ".join(["python benchmarks/bench_select.py", *arguments]),
        settings={
            "sizes": args.sizes,
            "repeats": args.repeats,
            "min_time_s": args.min_time,
            "build_repeats": args.build_repeats,
            "keys": args.keys,
        },
    )
    measure(args, report, log)
    report.targets = check_targets(report)
    print(render_json(report) if args.format == "json" else render_markdown(report))
    if args.check and any(t.status == "MISS" for t in report.targets):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
