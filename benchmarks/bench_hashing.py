"""Consistent hashes side by side: balance, disruption, lookup ns, build ms, memory — in ONE run.

Run from the repository root::

    python benchmarks/bench_hashing.py            # full run, ~5-10 minutes on 2 cores
    python benchmarks/bench_hashing.py --quick    # smoke run, well under a minute

Subjects: balancekit's IPHash (the core ring), Ketama, Rendezvous, Maglev, JumpHash (with the
optional C accelerator if installed, and pure Python), BoundedLoadHash; the Python peers
``uhashring`` (default md5 ring and ``hash_fn="ketama"``), ``hashring`` and
``jump-consistent-hash`` (its C ``jump.hash`` over our ``hash64`` of the key: it takes ints only).

- Balance: max over endpoints of load / expected load, over K distinct keys (1M; 100k in
  --quick), equal weights and weights 1,2,3,4 repeating. The *floor* is the same statistic for a
  perfect uniform (weighted) random assignment of K keys, simulated (median of 5). For
  BoundedLoadHash the load is K leases held at once (its guarantee is about in-flight load).
  Rendezvous (O(N) per lookup) and the two uhashring modes use fewer keys (200k), with their
  own floor.
- Disruption: fraction of 200k keys whose endpoint changes when the middle endpoint of N is
  removed, and when one is added; shown as a multiple of the ideal 1/N (1/(N+1) on add).
  JumpHash also shows removing the last endpoint (the only removal the jump peer supports).
  BoundedLoadHash is left out: with nothing in flight it maps exactly as IPHash (tested).
- Lookup: ns per ``lookup(key)`` (ours) or ``get_node(key)`` (peers), and ``release(select(key))``
  for ours, median of interleaved rounds (benchmarks/_harness.py), at N = 10 .. 10,000.
- Build: constructor ms, median of up to 3. Memory: bytes allocated by the constructor
  (tracemalloc) per endpoint at N = 1,000.

Maglev's table is 65,537 slots, or ``next_prime(100 * W / w_min)`` when that is larger
(the paper's M > 100 N, counting each endpoint as weight / smallest weight units).
uhashring's ketama mode builds with ``bisect.insort`` (quadratic): it is skipped at N = 10,000.
Peers without weights (jump) are skipped in the weighted rows.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from itertools import accumulate, cycle, islice
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(_HERE.parent / "src"))
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _harness  # noqa: E402
import jump  # noqa: E402
from hashring import HashRing as PeerHashring  # noqa: E402
from uhashring import HashRing as PeerUhashring  # noqa: E402

import balancekit as bk  # noqa: E402
from balancekit.strategies.hashing import jump as jump_module  # noqa: E402
from balancekit.strategies.hashing._keyed import hash64  # noqa: E402
from balancekit.strategies.hashing.maglev import next_prime  # noqa: E402

Lookup = Callable[[str], Any]  # key -> an address or an Endpoint


class Subject:
    """Something to measure: builds from (addresses, weights) and answers key -> endpoint."""

    def __init__(
        self,
        name: str,
        build: Callable[[list[str], list[int]], Any],
        lookup: Callable[[Any], Lookup],
        *,
        ours: bool = True,
        weighted: bool = True,
        slow: bool = False,
        max_n: int = 10_000,
        bounded: bool = False,
    ) -> None:
        self.name, self.build, self.lookup = name, build, lookup
        self.ours, self.weighted, self.slow, self.max_n = ours, weighted, slow, max_n
        self.bounded = bounded


def endpoints(addresses: list[str], weights: list[int]) -> list[bk.Endpoint]:
    return [bk.Endpoint(a, weight=w) for a, w in zip(addresses, weights, strict=True)]


def maglev_size(weights: list[int]) -> int:
    """The paper's M > 100 N, counting weight units: 100 slots per unit of the smallest weight."""
    units = -(-sum(weights) // min(weights))
    return max(65_537, next_prime(100 * units))


class PeerJump:
    """jump-consistent-hash over a name list: buckets are list positions (append/pop only)."""

    def __init__(self, addresses: list[str]) -> None:
        self.names = list(addresses)

    def get_node(self, key: str) -> str:
        return self.names[jump.hash(hash64(key), len(self.names))]


def _pure_jump(addresses: list[str], weights: list[int]) -> Any:
    return _PureJump(endpoints(addresses, weights))


class _PureJump(bk.JumpHash):
    """JumpHash with the C accelerator switched off for its picks (the pure-Python path)."""

    def _pick(self, context: Any, avoid: Any) -> Any:
        saved, jump_module._jump_c = jump_module._jump_c, None
        try:
            return super()._pick(context, avoid)
        finally:
            jump_module._jump_c = saved


def _ours(cls: Any, **options: Any) -> Callable[[list[str], list[int]], Any]:
    return lambda addresses, weights: cls(endpoints(addresses, weights), **options)


def subjects() -> list[Subject]:
    ours_lookup = lambda lb: lb.lookup  # noqa: E731
    peer_lookup = lambda ring: ring.get_node  # noqa: E731
    return [
        Subject("IPHash (ring, 160)", _ours(bk.IPHash), ours_lookup),
        Subject("Ketama", _ours(bk.Ketama), ours_lookup),
        Subject(
            "Maglev",
            lambda a, w: bk.Maglev(endpoints(a, w), table_size=maglev_size(w)),
            ours_lookup,
        ),
        Subject("JumpHash (C accel.)", _ours(bk.JumpHash), ours_lookup),
        Subject("JumpHash (pure Py)", _pure_jump, ours_lookup),
        Subject("Rendezvous", _ours(bk.Rendezvous), ours_lookup, slow=True),
        Subject("BoundedLoadHash e=.25", _ours(bk.BoundedLoadHash), ours_lookup, bounded=True),
        Subject(
            "BoundedLoadHash e=.02",
            _ours(bk.BoundedLoadHash, epsilon=0.02),
            ours_lookup,
            bounded=True,
        ),
        Subject(
            "uhashring (md5 ring)",
            lambda a, w: PeerUhashring(dict(zip(a, w, strict=True))),
            peer_lookup,
            ours=False,
            slow=True,
        ),
        Subject(
            "uhashring ketama",
            lambda a, w: PeerUhashring(dict(zip(a, w, strict=True)), hash_fn="ketama"),
            peer_lookup,
            ours=False,
            slow=True,
            max_n=1000,
        ),
        Subject(
            "hashring",
            lambda a, w: PeerHashring(a, dict(zip(a, w, strict=True))),
            peer_lookup,
            ours=False,
        ),
        Subject(
            "jump-consistent-hash (C)",
            lambda a, w: PeerJump(a),
            peer_lookup,
            ours=False,
            weighted=False,
        ),
    ]


def addresses_for(n: int) -> list[str]:
    return [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:11211" for i in range(n)]


def address_of(value: Any) -> str:
    return value if isinstance(value, str) else value.address


# -- balance ---------------------------------------------------------------------------------------


def floor_ratio(n: int, keys: int, weights: list[int], runs: int = 5) -> float:
    """max(load / expected) of a perfect weighted-uniform random assignment, median of runs."""
    total = sum(weights)
    cum = list(accumulate(weights))
    ratios = []
    for run in range(runs):
        rng = random.Random(run)
        counts = Counter(rng.choices(range(n), cum_weights=cum, k=keys))
        ratios.append(max(counts[i] * total / (keys * weights[i]) for i in range(n)))
    return statistics.median(ratios)


def balance(subject: Subject, n: int, keys: list[str], weights: list[int]) -> float:
    addresses = addresses_for(n)
    built = subject.build(addresses, weights)
    if subject.bounded:
        select = built.select
        counts = Counter(lease[0].address for lease in map(select, keys))
    else:
        counts = Counter(map(address_of, map(subject.lookup(built), keys)))
    total = sum(weights)
    return max(counts[a] * total / (len(keys) * w) for a, w in zip(addresses, weights, strict=True))


# -- disruption ------------------------------------------------------------------------------------


def disruption(subject: Subject, n: int, keys: list[str]) -> tuple[float, float, float | None]:
    """(moved on remove x N, moved on add x (N+1), moved on removing the last x N or None)."""
    addresses = addresses_for(n + 1)
    base, extra = addresses[:n], addresses[n]
    ones = [1] * n

    def mapping(built: Any) -> list[str]:
        return list(map(address_of, map(subject.lookup(built), keys)))

    def moved(before: list[str], after: list[str]) -> float:
        return sum(1 for x, y in zip(before, after, strict=True) if x != y) / len(keys)

    built = subject.build(base, ones)
    before = mapping(built)
    last: float | None = None
    if isinstance(built, PeerJump):  # the package's only removal: the last bucket
        removed = PeerJump(base[:-1])
        removal = moved(before, mapping(removed)) * n
        added = moved(before, mapping(PeerJump([*base, extra]))) * (n + 1)
        return removal, added, removal
    if subject.ours:
        victim = base[n // 2]
        built.remove(victim)
        removal = moved(before, mapping(built)) * n
        fresh = subject.build(base, ones)
        fresh.add(extra)
        added = moved(before, mapping(fresh)) * (n + 1)
        if isinstance(built, bk.JumpHash):
            tail = subject.build(base, ones)
            tail.remove(base[-1])
            last = moved(before, mapping(tail)) * n
        return removal, added, last
    victim = base[n // 2]
    removed = subject.build([a for a in base if a != victim], ones[:-1])
    removal = moved(before, mapping(removed)) * n
    added = moved(before, mapping(subject.build([*base, extra], [*ones, 1]))) * (n + 1)
    return removal, added, None


# -- speed and memory ------------------------------------------------------------------------------


def lookup_case(function: Lookup, keys: list[str]) -> _harness.Case:
    def run(count: int) -> tuple[int, int]:
        batch = list(islice(cycle(keys), count))
        start = time.perf_counter_ns()
        for key in batch:
            function(key)
        return time.perf_counter_ns() - start, count

    return run


def select_release_case(lb: Any, keys: list[str]) -> _harness.Case:
    select, release = lb.select, lb.release

    def run(count: int) -> tuple[int, int]:
        batch = list(islice(cycle(keys), count))
        start = time.perf_counter_ns()
        for key in batch:
            release(select(key))
        return time.perf_counter_ns() - start, count

    return run


def memory_per_endpoint(subject: Subject, n: int) -> float:
    addresses, weights = addresses_for(n), [1] * n
    tracemalloc.start()
    built = subject.build(addresses, weights)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del built
    return size / n


# -- the run ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer keys and sizes")
    args = parser.parse_args(argv)
    quick = args.quick
    started = time.time()
    all_subjects = subjects()
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    print("# Consistent hashing: one run of benchmarks/bench_hashing.py" + (" --quick" * quick))
    print()
    print(f"Machine: {_harness.machine()}")
    print()

    # balance
    many = 100_000 if quick else 1_000_000
    few = 20_000 if quick else 200_000
    keys_many = [f"key-{i}" for i in range(many)]
    rows = []
    for n in (100,) if quick else (100, 1000):
        for label, weights in (("equal", [1] * n), ("1,2,3,4", [1 + i % 4 for i in range(n)])):
            floors = {}
            for count in {many, few}:
                floors[count] = floor_ratio(n, count, weights, runs=3 if quick else 5)
            for subject in all_subjects:
                if (label != "equal" and not subject.weighted) or n > subject.max_n:
                    continue
                if subject.slow and n > 100 and subject.ours:
                    continue  # Rendezvous at N=1000: O(N) lookups, not its use
                count = few if subject.slow else many
                say(f"balance N={n} {label} {subject.name}")
                ratio = balance(subject, n, keys_many[:count], weights)
                rows.append(
                    [
                        n,
                        label,
                        subject.name,
                        f"{count:,}",
                        f"{ratio:.3f}",
                        f"{floors[count]:.3f}",
                        f"{(ratio / floors[count] - 1) * 100:+.1f}%",
                    ]
                )
    print("## Balance: max load / expected load (1.000 = perfect)")
    print()
    headers = ["N", "weights", "subject", "keys", "max/mean", "floor", "vs floor"]
    print(_harness.markdown_table(headers, rows))
    print()

    # disruption
    keys_few = keys_many[:few]
    rows = []
    for n in (10, 100) if quick else (10, 100, 1000):
        for subject in all_subjects:
            if n > subject.max_n or subject.bounded or (subject.slow and n > 100):
                continue
            say(f"disruption N={n} {subject.name}")
            count = few // 4 if subject.slow and n >= 100 else few
            removal, added, last = disruption(subject, n, keys_few[:count])
            rows.append(
                [
                    n,
                    subject.name,
                    f"{count:,}",
                    f"{removal:.2f}",
                    f"{added:.2f}",
                    "" if last is None else f"{last:.2f}",
                ]
            )
    print("## Disruption: keys moved, as a multiple of the ideal (1.00 = only the keys that must)")
    print()
    print(
        _harness.markdown_table(
            ["N", "subject", "keys", "remove middle", "add one", "remove last"], rows
        )
    )
    print()

    # lookup and build
    probe = [f"probe-{i}" for i in range(4096)]
    rows = []
    for n in (10, 1000) if quick else (10, 100, 1000, 10_000):
        cases: dict[str, _harness.Case] = {}
        builds: dict[str, float] = {}
        for subject in all_subjects:
            if n > subject.max_n:
                continue
            say(f"build N={n} {subject.name}")
            addresses, weights = addresses_for(n), [1 + i % 4 for i in range(n)]
            if not subject.weighted:
                weights = [1] * n
            ms, built = _harness.timed_build(
                lambda s=subject, a=addresses, w=weights: s.build(a, w),
                repeats=1 if quick else 3,
                budget=2.0,
            )
            builds[subject.name] = ms
            cases[f"{subject.name}|lookup"] = lookup_case(subject.lookup(built), probe)
            if subject.ours and not isinstance(built, _PureJump):
                cases[f"{subject.name}|select+release"] = select_release_case(built, probe)
        say(f"lookups N={n}")
        measured = _harness.interleaved(
            cases, repeats=3 if quick else 7, min_time=0.01 if quick else 0.05
        )
        peers = [
            measured[f"{s.name}|lookup"].median
            for s in all_subjects
            if not s.ours and f"{s.name}|lookup" in measured and "(C)" not in s.name
        ]
        fastest_pure_peer = min(peers)
        for subject in all_subjects:
            if subject.name not in builds:
                continue
            look = measured[f"{subject.name}|lookup"]
            pair = measured.get(f"{subject.name}|select+release")
            rows.append(
                [
                    n,
                    subject.name,
                    f"{look.median:,.0f}",
                    f"±{look.spread * 100:.0f}%",
                    f"{look.median / fastest_pure_peer:.2f}x",
                    "" if pair is None else f"{pair.median:,.0f}",
                    f"{builds[subject.name]:,.1f}",
                ]
            )
    print("## Lookup ns and build ms (weights 1,2,3,4 repeating; jump peer unweighted)")
    print()
    print(
        "`vs pure peer`: lookup time / the fastest pure-Python peer's (uhashring, hashring) at"
        " that N; below 1.00x is faster."
    )
    print()
    headers = ["N", "subject", "lookup ns", "IQR", "vs pure peer", "select+release ns", "build ms"]
    print(_harness.markdown_table(headers, rows))
    print()

    # memory
    n = 1000
    rows = []
    for subject in all_subjects:
        if n > subject.max_n:
            continue
        say(f"memory {subject.name}")
        rows.append([subject.name, f"{memory_per_endpoint(subject, n):,.0f}"])
    print(f"## Memory: bytes allocated by the constructor per endpoint (N = {n:,}, tracemalloc)")
    print()
    print(_harness.markdown_table(["subject", "bytes / endpoint"], rows))
    print()
    print(f"Total run time: {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
