"""Membership changes at scale: build, add, remove, set_weight, mark_down, 1% churn, lookup, memory.

Run from the repository root (prints a markdown report: command, machine, table, targets)::

    python benchmarks/bench_membership.py --before /tmp/old/src --sizes 1000 10000
    python benchmarks/bench_membership.py --before /tmp/old/src --sizes 100000 --budget 90
    python benchmarks/bench_membership.py --quick                  # N = 1,000 / 10,000, this tree

Subjects: every strategy in the tree's ``balancekit.strategies.registry``, two options whose
change path differs (``WeightedRoundRobin(order="envoy")``; ``LoadReportWeightedRoundRobin``
once every endpoint has reported, ``blackout_period=0``), and the peers:
``uhashring`` (``add_node``/``remove_node``; set_weight = ``add_node`` with a weight; mark_down
= ``remove_node``, it has no health state; churn = a new ``HashRing`` from the new list) and
``roundrobin``, which has no membership change: ``basic``/``smooth`` build a new picker from
the new list for every change; ``smooth_stateful`` has ``set()`` and ``disable()``.

Each (subject, N, tree) runs in its own child process (fresh heap), the two trees back to back
per subject so they share the machine's state; ``_membership_worker.py`` measures. Times are
medians of up to ``--repeats`` samples, wall clock and (in brackets) the thread's CPU time:
add = ``add(new)``, remove = removing it again, set_weight = 1 -> 2 of a member, mark_down = of a
member (the restore is untimed), churn = ``update()`` with 1% of the members replaced; "1st
pick after add" = the lookup or select+release right after an add (what a change leaves to
the request path). Lookup:
ns per ``lookup(key)`` (hashing) or ``release(select(key))``, best of up to 5 x 2,000 keys.
Memory: bytes per endpoint, RSS growth over the timed build at every N, and tracemalloc of a
second build at N <= ``--traced-up-to`` (tracemalloc slows a build ~5x).

Bounded in time: ``--budget`` seconds per (subject, N, tree) after its build; the first change
is always timed, later samples only while the budget covers them (see the worker), so a tree
whose changes take minutes (the old rings at N = 100,000) reports ONE timed change (``†``) and
``skipped`` for the rest. A child that overruns ``4 x budget + 600`` s is stopped and reports
what it had measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _membership_report import table, targets  # noqa: E402
from _membership_worker import PEERS, VARIANTS  # noqa: E402
from _membership_worker import main as worker_main  # noqa: E402


def registered(src: str) -> list[str]:
    """The class names in ``src``'s strategy registry, in registration order."""
    code = (
        "import json; from balancekit.strategies import registry;"
        "print(json.dumps([c.__name__ for c in registry.strategies().values()]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    names: list[str] = json.loads(done.stdout)
    return names


def run_child(
    src: str, name: str, n: int, repeats: int, budget: float, traced_up_to: int
) -> dict[str, Any]:
    """One subject at one N in a child process; its last complete JSON line is the result."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        str(n),
        str(repeats),
        str(budget),
        str(traced_up_to),
    ]
    child = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONPATH": src},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timed_out = False
    try:
        stdout, stderr = child.communicate(timeout=budget * 4 + 600)
    except subprocess.TimeoutExpired:
        timed_out = True
        child.kill()  # this child only, by its own pid
        stdout, stderr = child.communicate()
    result: dict[str, Any] = {"name": name, "n": n}
    for line in stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
    if timed_out:
        result["error"] = f"stopped after {budget * 4 + 600:.0f} s"
    elif child.returncode != 0:
        result["error"] = (stderr.strip().splitlines() or [f"exit {child.returncode}"])[-1]
    return result


def load_rows(path: str) -> list[dict[str, Any]]:
    """The rows in a --json file (a list) or a run's stderr (one JSON object a line)."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        rows: list[dict[str, Any]] = json.loads(text)
        return rows
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def header(argv: list[str], trees: list[tuple[str, str]], started: str) -> list[str]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        "```",
        "python benchmarks/bench_membership.py " + " ".join(shlex.quote(a) for a in argv),
        "```",
        "",
        f"- {started} -> {time.strftime('%H:%M:%S UTC', time.gmtime())};"
        f" load average at the end (1/5/15 min): {load}; {os.cpu_count()} CPUs ({cpu});"
        f" Python {platform.python_version()}",
        *(f"- {tree}: `{src}`" for tree, src in trees),
        "- cells: median wall time (median CPU time of the thread, same unit); `†` one sample"
        " (the budget allowed no more); `skipped`: not timed within the budget; load = 1-min"
        " load average when the row started",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 and 10,000, 3 repeats")
    parser.add_argument("--before", metavar="SRC", help="another tree's src/ to run beside")
    parser.add_argument("--after", metavar="SRC", help="the tree to measure (default: this one)")
    parser.add_argument("--only", nargs="*", help="subjects (default: the registry and peers)")
    parser.add_argument("--sizes", nargs="*", type=int, help="pool sizes (default 1k 10k 100k)")
    parser.add_argument("--repeats", type=int, help="samples per change (default 7; 3 at 100k)")
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds per subject, N and tree after the build (default 20; 60 at 100k)",
    )
    parser.add_argument("--peers-up-to", type=int, default=10_000, help="largest N for peers")
    parser.add_argument("--no-peers", action="store_true", help="leave the peers out")
    parser.add_argument(
        "--traced-up-to", type=int, default=1_000, help="largest N measured by tracemalloc"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="also write the report to PATH")
    parser.add_argument(
        "--rows",
        nargs="+",
        metavar="PATH",
        help="measure nothing: report the rows of earlier runs (their --json files, or the"
        " JSON lines they printed on stderr), in the order given",
    )
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if args.rows:
        rows = [row for path in args.rows for row in load_rows(path)]
        report = "\n".join([table(rows), "", "Targets:", "", "```", *targets(rows), "```"])
        print(report)
        if args.markdown:
            Path(args.markdown).write_text(report + "\n", encoding="utf-8")
        return 0
    after = args.after or str(HERE.parent / "src")
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    known = [*registered(after), *VARIANTS, *([] if args.no_peers else PEERS)]
    names = args.only or known
    unknown = sorted(set(names) - set(known) - set(PEERS))
    if unknown:
        parser.error(f"unknown subjects {unknown}; known: {known}")
    trees = [("after", after)]
    if args.before:
        trees.insert(0, ("before", args.before))
    rows: list[dict[str, Any]] = []
    for n in sizes:
        repeats = args.repeats or (3 if args.quick or n >= 100_000 else 7)
        budget = args.budget or (20.0 if n < 100_000 else 60.0)
        for name in names:
            if name in PEERS and n > args.peers_up_to:
                continue
            for tree, src in trees[-1:] if name in PEERS else trees:
                row = run_child(src, name, n, repeats, budget, args.traced_up_to)
                row["tree"] = "peer" if name in PEERS else tree
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    report = "\n".join(
        [*header(argv, trees, started), table(rows), "", "Targets:", "", "```",
         *targets(rows), "```"]
    )  # fmt: skip
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
