"""One weight change on a large ring: what it costs, and how many points it moves (counted).

Run from the repository root (prints a markdown table)::

    python benchmarks/bench_ring_weight.py                   # N = 10,000, this tree
    python benchmarks/bench_ring_weight.py -n 1000 --ketama-peer-n 300

For each subject, a ring of N endpoints of weight 1 is built, then ``set_weight(member, 2)``
and ``set_weight(member, 1)`` are timed (wall clock and the thread's CPU time) and the ring's
``(point, owner)`` pairs before and after each are compared: ``moved`` = pairs gone + pairs
new, ``owners`` = how many endpoints own a moved pair. Subjects: ``Ketama`` in both formats
(libketama, uhashring's ketama mode), ``IPHash`` and ``BoundedLoadHash`` (points per endpoint
independent of the other endpoints' weights), and the peer ``uhashring`` (its default ring,
160 x weight points per node) which has no ``set_weight``: ``remove_node`` + ``add_node`` with
the new weight, timed together, and its ``add_node`` on a present node (which, in 2.x,
replaces that node's points).

Ketama's formats give a server of weight w among N servers of total weight W
``floor(40 * N * w / W)`` digests (4 points each), so a weight change re-divides every server:
the table shows it by count. ``uhashring``'s own ketama mode (``hash_fn="ketama"``) rebuilds its
whole continuum with ``insort`` on every change (quadratic in the ring size), so it is
measured at ``--ketama-peer-n`` only, beside balancekit's ``Ketama(compat="uhashring")`` at the
same N; the two continua are compared pair for pair before and after the change.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from functools import partial
from typing import Any

Pairs = set[tuple[int, str]]


def address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080"


def timed(action: Callable[[], Any]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``action()``."""
    gc.collect()
    cpu, wall = time.thread_time(), time.perf_counter()
    action()
    return time.perf_counter() - wall, time.thread_time() - cpu


def moved(before: Pairs, after: Pairs) -> tuple[int, int, int]:
    """(pairs gone, pairs new, distinct owners of either)."""
    gone, new = before - after, after - before
    return len(gone), len(new), len({owner for _, owner in gone | new})


def ours(name: str, n: int, member: str) -> list[dict[str, Any]]:
    import balancekit as bk

    cls, _, compat = name.partition(":")
    options = {"compat": compat} if compat else {}
    lb = getattr(bk, cls)([address(i) for i in range(n)], **options)
    rows = []
    for weight in (2, 1):
        before = set(lb.continuum())
        wall, cpu = timed(partial(lb.set_weight, member, weight))
        gone, new, owners = moved(before, set(lb.continuum()))
        change = "set_weight 1 -> 2" if weight == 2 else "set_weight 2 -> 1"
        rows.append(row(name, n, change, wall, cpu, gone, new, owners, len(before)))
    return rows


def uhashring_default(n: int, member: str) -> list[dict[str, Any]]:
    from uhashring import HashRing

    ring = HashRing(nodes=[address(i) for i in range(n)])

    def pairs() -> Pairs:
        return set(ring.runtime._ring.items())

    def remove_then_add(weight: int) -> None:
        ring.remove_node(member)
        ring.add_node(member, {"weight": weight})

    rows = []
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("remove_node + add_node(w=2)", lambda: remove_then_add(2)),
        ("remove_node + add_node(w=1)", lambda: remove_then_add(1)),
        ("add_node(w=2) on the node", lambda: ring.add_node(member, {"weight": 2})),
    ]
    for change, action in cases:
        before = pairs()
        wall, cpu = timed(action)
        gone, new, owners = moved(before, pairs())
        rows.append(row("uhashring", n, change, wall, cpu, gone, new, owners, len(before)))
    return rows


def ketama_peer(n: int, member: str) -> list[dict[str, Any]]:
    """uhashring's ketama mode beside Ketama(compat="uhashring") at the same (small) N."""
    from uhashring import HashRing

    import balancekit as bk

    nodes = [address(i) for i in range(n)]
    ring = HashRing(nodes=nodes, hash_fn="ketama")
    ours_ = bk.Ketama(nodes, compat="uhashring")

    def pairs() -> Pairs:
        return set(ring.runtime._ring.items())

    before, same_before = pairs(), set(ours_.continuum())
    wall, cpu = timed(lambda: ring.add_node(member, {"weight": 2}))
    after = pairs()
    ours_.set_weight(member, 2)
    if before != same_before or after != set(ours_.continuum()):
        raise AssertionError("Ketama(compat='uhashring') differs from uhashring's ketama mode")
    gone, new, owners = moved(before, after)
    change = "add_node(w=2) on the node (= balancekit's continuum, checked)"
    return [row("uhashring ketama mode", n, change, wall, cpu, gone, new, owners, len(before))]


def row(
    name: str,
    n: int,
    change: str,
    wall: float,
    cpu: float,
    gone: int,
    new: int,
    owners: int,
    points: int,
) -> dict[str, Any]:
    return {
        "subject": name,
        "n": n,
        "change": change,
        "wall": wall,
        "cpu": cpu,
        "gone": gone,
        "new": new,
        "owners": owners,
        "points": points,
    }


SUBJECTS = ("Ketama:libketama", "Ketama:uhashring", "IPHash", "BoundedLoadHash")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="endpoints (default 10,000)")
    parser.add_argument(
        "--ketama-peer-n", type=int, default=300, help="N for uhashring's ketama mode (insort)"
    )
    parser.add_argument("--only", nargs="*", help=f"subjects among {', '.join(SUBJECTS)}")
    parser.add_argument("--no-peers", action="store_true", help="leave uhashring out")
    args = parser.parse_args(argv)
    member = address(7)
    rows: list[dict[str, Any]] = []
    for name in args.only or SUBJECTS:
        if name not in SUBJECTS:
            parser.error(f"unknown subject {name!r}; known: {', '.join(SUBJECTS)}")
        rows.extend(ours(name, args.n, member))
    if not args.no_peers:
        rows.extend(uhashring_default(args.n, member))
        rows.extend(ketama_peer(args.ketama_peer_n, member))
    print(
        "| subject | N | change | wall | CPU | points gone | points new | endpoints touched"
        " | points on the ring |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['subject']} | {r['n']:,} | {r['change']} | {r['wall'] * 1e3:,.1f} ms |"
            f" {r['cpu'] * 1e3:,.1f} ms | {r['gone']:,} | {r['new']:,} | {r['owners']:,} |"
            f" {r['points']:,} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
