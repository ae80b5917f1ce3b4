"""Plain-text and JSON reports of simulation results, readable in 100 columns."""

from __future__ import annotations

import itertools
import json
import textwrap
from collections.abc import Mapping, Sequence

from .engine import Result
from .scenario import Scenario

__all__ = ["WIDTH", "json_report", "text_report"]

#: The report fits this many columns.
WIDTH = 100


def _ms(seconds: float) -> str:
    """Milliseconds, with precision that suits the magnitude, e.g. ``12.3`` or ``4512``."""
    milliseconds = seconds * 1000
    return f"{milliseconds:.1f}" if milliseconds < 1000 else f"{milliseconds:.0f}"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def header(scenario: Scenario, seed: int) -> str:
    """The scenario's description and parameters."""
    lines = textwrap.wrap(f"scenario {scenario.name!r}: {scenario.description}", width=WIDTH)
    lines += textwrap.wrap(
        f"{scenario.requests} requests, Poisson at {scenario.rate:g}/s"
        f" ({scenario.rate / scenario.capacity:.0%} of capacity {scenario.capacity:.0f}/s)"
        f" for ~{scenario.window:.1f} s; {scenario.clients} clients (Zipf {scenario.zipf:g});"
        f" seed {seed}",
        width=WIDTH,
    )
    for change in scenario.changes:
        lines.append(
            f"at {change.at * scenario.window:.1f} s: {change.address} {change.describe()}"
        )
    return "\n".join(lines)


def strategy_table(result: Result) -> str:
    """One strategy's table: overall percentiles, then one row per server."""
    lines = [
        f"== {result.strategy}: p50 {_ms(result.p50)} ms  p99 {_ms(result.p99)} ms"
        f"  p99.9 {_ms(result.p999)} ms  mean {_ms(result.mean)} ms  errors {result.errors}"
        + (f" ({result.rejected} unplaced)" if result.rejected else ""),
        f"  {'server':<16}{'ms':>4}{'cap':>5}{'wt':>5}{'share':>8}{'requests':>10}"
        f"{'peak':>6}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}",
    ]
    total = sum(server.requests for server in result.servers)
    for server in result.servers:
        mark = "*" if server.address in result.watched else " "
        lines.append(
            f" {mark}{server.address:<16}{server.service * 1000:>4.0f}{server.capacity:>5}"
            f"{server.weight:>5}{_share(server.requests, total):>8}{server.requests:>10}"
            f"{server.peak_in_flight:>6}{_ms(server.p50):>9}{_ms(server.p99):>9}"
            f"{server.failed:>8}"
        )
    totals = [sum(column) for column in zip(*(s.phases for s in result.servers), strict=True)]
    bounds = result.boundaries
    for address in result.watched:
        server = result.server(address)
        if len(bounds) == 1:
            lines.append(
                f"  * {address} before {bounds[0]:.1f} s: {server.before} requests"
                f" ({_share(server.before, totals[0])}); after: {server.after}"
                f" ({_share(server.after, totals[1])})"
            )
            continue
        labels = [f"0-{bounds[0]:.1f} s"]
        labels += [f"{a:.1f}-{b:.1f} s" for a, b in itertools.pairwise(bounds)]
        labels.append(f"from {bounds[-1]:.1f} s")
        parts = [
            f"{label}: {count} ({_share(count, total)})"
            for label, count, total in zip(labels, server.phases, totals, strict=True)
        ]
        lines.extend(
            textwrap.wrap(
                f"* {address} " + "; ".join(parts),
                width=WIDTH,
                initial_indent="  ",
                subsequent_indent="    ",
            )
        )
    return "\n".join(lines)


def summary(results: Sequence[Result]) -> str:
    """Strategies ranked by p99 latency (then p50), one line each."""
    watched = results[0].watched[:1] if results else ()
    tail = f"{'to ' + watched[0].split(':')[0] + ' after':>22}" if watched else ""
    lines = [
        "== ranking by p99 latency",
        f"  {'#':>2} {'strategy':<22}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}{'mean ms':>9}"
        f"{'errors':>8}{tail}",
    ]
    ranked = sorted(results, key=lambda r: (r.p99, r.p50, r.strategy))
    for rank, result in enumerate(ranked, start=1):
        line = (
            f"  {rank:>2} {result.strategy:<22}{_ms(result.p50):>9}{_ms(result.p99):>9}"
            f"{_ms(result.p999):>10}{_ms(result.mean):>9}{result.errors:>8}"
        )
        if watched:  # the share in the phase after the first change
            during = sum(s.phases[1] for s in result.servers)
            line += f"{_share(result.server(watched[0]).phases[1], during):>22}"
        lines.append(line)
    return "\n".join(lines)


def text_report(scenario: Scenario, seed: int, results: Sequence[Result]) -> str:
    """The whole plain-text report: header, a table per strategy, the ranking."""
    parts = [header(scenario, seed)]
    parts.extend(strategy_table(result) for result in results)
    parts.append(summary(results))
    return "\n\n".join(parts) + "\n"


def json_report(
    scenario: Scenario,
    seed: int,
    results: Sequence[Result],
    *,
    extra: Mapping[str, object] | None = None,
) -> str:
    """The results as JSON: ``{"scenario": {...}, "seed": n, "results": [...], ...}``.

    ``extra`` adds top-level keys (``simulate`` adds ``recommendation`` and, with ``--health``,
    ``with_health``).
    """
    data = {
        "scenario": {
            "name": scenario.name,
            "description": scenario.description,
            "requests": scenario.requests,
            "rate": scenario.rate,
            "capacity": scenario.capacity,
            "window": scenario.window,
            "clients": scenario.clients,
            "split": scenario.split,
            "boundaries": list(scenario.boundaries),
            "watched": list(scenario.watched),
            "affinity": scenario.affinity,
        },
        "seed": seed,
        "results": [result.to_dict() for result in results],
        "ranking": [r.strategy for r in sorted(results, key=lambda r: (r.p99, r.p50, r.strategy))],
    }
    data.update(extra or {})
    return json.dumps(data, indent=2) + "\n"
