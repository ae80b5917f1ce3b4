"""bench_membership.py's report: the markdown table and the issue 11 targets, from the rows."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from _membership_worker import HASHING, KINDS, PEERS, median

RINGS = ("IPHash", "Ketama", "BoundedLoadHash")
LIMIT_NON_HASH = 2e-3  # seconds per change at N = 10,000
COLUMNS = ("build", "add", "pick", "remove", "set_weight", "mark_down", "churn")


def fmt_time(seconds: float | None, unit_of: float | None = None) -> str:
    """``1.2 ms``; with ``unit_of``, the number alone in the unit ``unit_of`` would be shown in."""
    if seconds is None:
        return "-"
    scale = seconds if unit_of is None else unit_of
    if scale >= 1:
        number, unit = f"{seconds:.2f}", "s"
    elif scale >= 1e-3:
        number, unit = f"{seconds * 1e3:.1f}", "ms"
    else:
        number, unit = f"{seconds * 1e6:.0f}", "us"
    return number if unit_of is not None else f"{number} {unit}"


def cell(row: dict[str, Any], kind: str) -> str:
    """``wall (cpu)`` medians, the CPU time in the wall time's unit; ``†`` = one sample."""
    samples = row.get(kind)
    if not samples:
        return "skipped" if kind in row.get("skipped", ()) else "-"
    wall, cpu = median(samples), median(samples, "cpu")
    single = "†" if len(samples["wall"]) == 1 and kind != "build" else ""
    return f"{fmt_time(wall)} ({fmt_time(cpu, wall)}){single}"


def _ns(lookup: dict[str, float] | None) -> str:
    return "-" if not lookup else f"{lookup['wall']:,.0f} ({lookup['cpu']:,.0f})"


def _bytes(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(rows: Iterable[dict[str, Any]]) -> str:
    lines = [
        "| subject | N | tree | load | build | add | 1st pick after add | remove | set_weight |"
        " mark_down | churn 1% |"
        " lookup ns | lookup ns after changes | traced B/endpoint | RSS B/endpoint |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        head = f"| {row['name']} | {row['n']:,} | {row['tree']} | {row.get('load', 0):.1f} |"
        if "error" in row and "build" not in row:
            lines.append(f"{head} {row['error']} |" + " |" * 10)
            continue
        looked = " | ".join(_ns(row.get(field)) for field in ("lookup", "lookup_changed"))
        lines.append(
            f"{head} {' | '.join(cell(row, kind) for kind in COLUMNS)} | {looked} |"
            f" {_bytes(row.get('traced'))} | {_bytes(row.get('rss'))} |"
            + (f" {row['error']}" if "error" in row else "")
        )
    return "\n".join(lines)


def worst_change(row: dict[str, Any], field: str = "wall") -> tuple[float, str] | None:
    """The costliest of add/remove/set_weight/mark_down (medians) and its kind."""
    found = [(median(row.get(kind), field), kind) for kind in KINDS]
    timed = [(value, kind) for value, kind in found if value is not None]
    return max(timed) if timed else None


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets checked on these rows (PASS / MISS / INFO lines), judged on the
    thread's CPU time (the wall time, shown beside it, counts the other processes' load)."""
    out: list[str] = []
    by = {(row["name"], row["n"], row["tree"]): row for row in rows}
    sizes = sorted({row["n"] for row in rows})
    trees = [t for t in ("before", "after") if any(row["tree"] == t for row in rows)]
    for n in sizes:
        peer = by.get(("uhashring", n, "peer"))
        add_node = median(peer.get("add"), "cpu") if peer else None
        add_wall = median(peer.get("add")) if peer else None
        for tree in trees:
            for name in HASHING:
                row = by.get((name, n, tree))
                worst = worst_change(row, "cpu") if row else None
                if row is None or worst is None or add_node is None:
                    continue
                ratio = add_node / worst[0]
                status = ("PASS" if ratio >= 100 else "MISS") if name in RINGS else "INFO"
                partial = " (some changes skipped)" if row.get("skipped") else ""
                share = f"1/{ratio:,.0f} of" if ratio >= 1 else f"{1 / ratio:,.1f}x"
                wall = median(row.get(worst[1]))
                out.append(
                    f"{status} {name} N={n:,} {tree}: worst change ({worst[1]})"
                    f" {fmt_time(worst[0])} CPU = {share} uhashring add_node"
                    f" {fmt_time(add_node)} CPU (wall {fmt_time(wall)} and {fmt_time(add_wall)};"
                    f" target <= 1/100 for rings){partial}"
                )
    for n in sizes:
        for tree in trees:
            for row in rows:
                if row["n"] != n or row["tree"] != tree or row["name"] in HASHING + PEERS:
                    continue
                cpu = worst_change(row, "cpu")
                if cpu is None:
                    continue
                status = "PASS" if cpu[0] <= LIMIT_NON_HASH else "MISS"
                if n != 10_000:
                    status = "INFO"
                out.append(
                    f"{status} {row['name']} N={n:,} {tree}: worst change ({cpu[1]})"
                    f" {fmt_time(cpu[0])} CPU, {fmt_time(median(row.get(cpu[1])))} wall"
                    " (target <= 2 ms at N=10,000)"
                )
    out.extend(growth(rows, sizes, trees))
    return out


def growth(rows: list[dict[str, Any]], sizes: list[int], trees: list[str]) -> list[str]:
    """Changes whose CPU time grows with N like O(N): >= half of N's growth between two sizes."""
    by = {(row["name"], row["n"], row["tree"]): row for row in rows}
    out: list[str] = []
    for small, large in pairwise(sizes):
        for tree in trees:
            for name in sorted({row["name"] for row in rows}):
                a, b = by.get((name, small, tree)), by.get((name, large, tree))
                if not a or not b:
                    continue
                grown = []
                for kind in KINDS:
                    x, y = median(a.get(kind), "cpu"), median(b.get(kind), "cpu")
                    if x and y and y / x >= 0.5 * large / small and y >= 1e-4:
                        grown.append(f"{kind} x{y / x:.0f}")
                if grown:
                    out.append(
                        f"GROWTH {name} {tree} N={small:,}->{large:,} (N x{large // small}):"
                        f" CPU per change {', '.join(grown)}: O(N)-like"
                    )
    return out
