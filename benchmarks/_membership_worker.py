"""One (subject, N, tree) of bench_membership.py, measured in its own process within a budget.

The parent runs ``python bench_membership.py --worker NAME N REPEATS BUDGET TRACED_UP_TO`` with
``PYTHONPATH`` set to the tree under test. After every measurement the worker prints the whole
result so far as one JSON line, so a child stopped at its timeout still reports what it measured.

A result holds, per measurement, the samples' wall-clock and CPU (``time.thread_time``) seconds:
``{"add": {"wall": [...], "cpu": [...]}, ...}``, lookups as ns per call (best round), memory as
bytes per endpoint (``rss``: growth of the resident set over the build; ``traced``: what
tracemalloc saw the constructor keep, only at N <= TRACED_UP_TO: it slows a build ~5x).

Budget: the build always runs and the budget starts when it ends; the first change (``add``)
is always timed; every other sample is taken only if the budget left covers it, judged by the
costliest change seen so far (twice that when an untimed restore follows). So a tree whose
every change rebuilds a 16M-point ring (minutes) reports one timed change and ``skipped`` for
the rest, instead of running for an hour.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

PEERS = ("uhashring", "roundrobin.basic", "roundrobin.smooth", "roundrobin.smooth_stateful")
#: Options whose change path differs from the default's: Envoy's EDF order (restarted on every
#: change, as Envoy does), and A58's weights once every endpoint has reported (recomputed on
#: every change, as gRPC does); the reports are made after the timed build.
VARIANTS = ("WeightedRoundRobin(order=envoy)", "LoadReportWeightedRoundRobin(reported)")
HASHING = ("IPHash", "Ketama", "BoundedLoadHash", "Maglev", "JumpHash", "Rendezvous")
KINDS = ("add", "remove", "set_weight", "mark_down")
KEYS = [f"user-{i}" for i in range(2000)]
_PAGE = os.sysconf("SC_PAGE_SIZE")


def address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:8080"


def rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE


class Run:
    """The result being built, printed whole after each measurement."""

    def __init__(self, name: str, n: int, budget: float) -> None:
        self.out: dict[str, Any] = {"name": name, "n": n, "skipped": [], "load": os.getloadavg()[0]}
        self.budget = budget
        self.deadline = time.perf_counter() + budget  # from the end of the build (see build)
        self.worst = 0.0  # the costliest change timed so far (wall seconds)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def emit(self) -> None:
        print(json.dumps(self.out), flush=True)

    def time(self, kind: str, action: Callable[[], Any]) -> float:
        cpu, wall = time.thread_time(), time.perf_counter()
        action()
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        sample = self.out.setdefault(kind, {"wall": [], "cpu": []})
        sample["wall"].append(wall)
        sample["cpu"].append(cpu)
        if kind in KINDS:
            self.worst = max(self.worst, wall)
        self.emit()
        return wall

    def affordable(self, kind: str, factor: float = 1.0) -> bool:
        """True if the budget covers one more sample of ``kind`` (else record it as skipped)."""
        if self.left() >= self.worst * factor:
            return True
        if kind not in self.out and kind not in self.out["skipped"]:
            self.out["skipped"].append(kind)
            self.emit()
        return False

    def build(self, make: Callable[[], Any], n: int) -> Any:
        gc.collect()
        before = rss()
        built: list[Any] = []
        self.time("build", lambda: built.append(make()))
        self.deadline = time.perf_counter() + self.budget  # the build is not budgeted
        gc.collect()
        self.out["rss"] = (rss() - before) / n
        self.emit()
        return built[0]

    def traced(self, make: Callable[[], Any], n: int) -> None:
        gc.collect()
        tracemalloc.start()
        kept = make()  # kept alive while measured
        self.out["traced"] = tracemalloc.get_traced_memory()[0] / n
        tracemalloc.stop()
        del kept
        self.emit()

    def lookups(self, call: Callable[[str], Any], field: str = "lookup") -> None:
        """ns per call: the best of up to 5 rounds of 2,000 keys; one round of 100 at least."""
        best: float | None = None
        best_cpu = 0.0
        for round_ in range(6):
            keys = KEYS[:100] if round_ == 0 else KEYS
            if round_ and (best is None or self.left() < best * len(keys) * 1e-9 * 1.5):
                break
            cpu, wall = time.thread_time(), time.perf_counter()
            for key in keys:
                call(key)
            wall = (time.perf_counter() - wall) / len(keys) * 1e9
            cpu = (time.thread_time() - cpu) / len(keys) * 1e9
            if best is None or wall < best or round_ == 1:
                best, best_cpu = wall, cpu
        self.out[field] = {"wall": best, "cpu": best_cpu}
        self.emit()


def churned(members: list[str], n: int, round_: int) -> list[str]:
    """``members`` with 1% of them (every 100th) replaced by addresses never used before.

    (Before the ringscale branch the step was ``n // 100``: every run replaced 100 members,
    10 % at N = 1,000 and 0.1 % at N = 100,000; earlier "churn 1%" figures at those N are
    that.)"""
    step = 100
    fresh = [address(10 * n + round_ * n + i) for i in range(len(members[::step]))]
    return [a for i, a in enumerate(members) if i % step] + fresh


def ours(run: Run, name: str, n: int, repeats: int, traced_up_to: int) -> None:
    import balancekit as bk

    cls = name.split("(")[0]
    if not hasattr(bk, cls):
        run.out["error"] = "not in this tree"
        return

    def make() -> Any:
        addresses = [address(i) for i in range(n)]
        if name == "Maglev":
            from balancekit.strategies.hashing.maglev import next_prime

            return bk.Maglev(addresses, table_size=max(65_537, next_prime(100 * n)))
        if name == "WeightedRoundRobin(order=envoy)":
            return bk.WeightedRoundRobin(addresses, order="envoy")
        if name == "LoadReportWeightedRoundRobin(reported)":
            return bk.LoadReportWeightedRoundRobin(addresses, blackout_period=0)
        return getattr(bk, cls)(addresses)

    lb = run.build(make, n)
    if name == "LoadReportWeightedRoundRobin(reported)":
        for i, reporter in enumerate(lb.endpoints):
            lb.report(reporter.address, bk.LoadReport(cpu_utilization=0.5, qps=100 + i % 7))
    if name in HASHING:
        lookup: Callable[[str], Any] = lb.lookup
    else:
        select, release = lb.select, lb.release

        def lookup(key: str) -> Any:
            return release(select(key))

    run.lookups(lookup)
    members = [endpoint.address for endpoint in lb.endpoints]
    for index in range(repeats):
        extra, member = address(n + 1 + index), address(index * 7 % n)
        if index and not run.affordable("add", 2):
            break
        run.time("add", partial(lb.add, extra))
        run.time("pick", partial(lookup, KEYS[index]))  # what a change left to the next pick
        if not run.affordable("remove"):
            break
        run.time("remove", partial(lb.remove, extra))
        if run.affordable("set_weight", 2):
            run.time("set_weight", partial(lb.set_weight, member, 2))
            lb.set_weight(member, 1)
        if run.affordable("mark_down", 2):
            run.time("mark_down", partial(lb.mark_down, member))
            lb.mark_up(member)
    for round_ in range(min(repeats, 3)):
        if not run.affordable("churn", 2):
            break
        wanted = churned(members, n, round_)
        run.time("churn", partial(lb.update, wanted))
        lb.update(members)
    run.lookups(lookup, "lookup_changed")
    del lb, lookup  # freed before the traced build
    if n <= traced_up_to:
        run.traced(make, n)


def peer(run: Run, name: str, n: int, repeats: int, traced_up_to: int) -> None:
    """The peers' equivalents: uhashring's add_node/remove_node; roundrobin builds a new picker
    from the new list (it has no membership change), except smooth_stateful's set()/disable()."""
    nodes = [address(i) for i in range(n)]
    pairs = [(a, 1) for a in nodes]
    if name == "uhashring":
        from uhashring import HashRing

        def make() -> Any:  # its own list, as ours build theirs: the strings count in memory
            return HashRing(nodes=[address(i) for i in range(n)])

        ring = run.build(make, n)
        for index in range(repeats):
            extra, member = address(n + 1 + index), address(index * 7 % n)
            if index and not run.affordable("add", 2):
                break
            run.time("add", partial(ring.add_node, extra))
            if not run.affordable("remove"):
                break
            run.time("remove", partial(ring.remove_node, extra))
            if run.affordable("set_weight", 2):
                run.time("set_weight", partial(ring.add_node, member, {"weight": 2}))
                ring.add_node(member, {"weight": 1})
            if run.affordable("mark_down", 2):  # no health state: taking it out of the ring
                run.time("mark_down", partial(ring.remove_node, member))
                ring.add_node(member)
        if run.affordable("churn"):  # a new ring from the new list: cheaper than 2% x add_node
            wanted = churned(nodes, n, 0)
            run.time("churn", lambda: HashRing(nodes=wanted))
        run.lookups(ring.get_node)
        del ring
    else:
        import roundrobin

        kind = name.split(".")[1]
        factory = getattr(roundrobin, kind)
        data: list[Any] = nodes if kind == "basic" else pairs

        def make() -> Any:
            fresh = [address(i) for i in range(n)]
            return factory(fresh if kind == "basic" else [(a, 1) for a in fresh])

        def add_one(new: Any) -> Any:
            return factory([*data, new])

        def without(items: list[Any], gone: Any) -> Any:
            return factory([d for d in items if d != gone])

        def reweighted(member: str) -> Any:
            return factory([(a, 2) if a == member else (a, w) for a, w in data])

        pick = run.build(make, n)
        for index in range(repeats):
            extra, member = address(n + 1 + index), address(index * 7 % n)
            new = extra if kind == "basic" else (extra, 1)
            grown = [*data, new]
            if index and not run.affordable("add"):
                break
            run.time("add", partial(add_one, new))
            run.time("remove", partial(without, grown, new))
            if kind == "smooth_stateful":
                run.time("set_weight", partial(pick.set, member, weight=2))
                pick.set(member, weight=1)
                run.time("mark_down", partial(pick.disable, member))
                pick.enable(member)
            else:
                if kind != "basic":
                    run.time("set_weight", partial(reweighted, member))
                gone = member if kind == "basic" else (member, 1)
                run.time("mark_down", partial(without, data, gone))
        wanted = churned(nodes, n, 0)
        run.time("churn", lambda: factory(wanted if kind == "basic" else [(a, 1) for a in wanted]))
        run.lookups(lambda _key: pick())
        del pick
    if n <= traced_up_to:
        run.traced(make, n)


def main(argv: list[str]) -> None:
    name, n, repeats, budget, traced_up_to = (
        argv[0],
        int(argv[1]),
        int(argv[2]),
        float(argv[3]),
        int(argv[4]),
    )
    run = Run(name, n, budget)
    (peer if name in PEERS else ours)(run, name, n, repeats, traced_up_to)
    run.out["done"] = True
    run.emit()


def median(samples: dict[str, list[float]] | None, field: str = "wall") -> float | None:
    """The median of a measurement's samples (None if it was not taken)."""
    if not samples or not samples.get(field):
        return None
    return statistics.median(samples[field])


if __name__ == "__main__":
    main(sys.argv[1:])
