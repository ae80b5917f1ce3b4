"""``balancekit simulate --scenario fleet``: its options, the imbalance report, the command.

The report has one row per subset kind: connections per client, then the spread over servers
of connections (clients whose subset holds the server), used connections (clients that sent it
a request) and requests, each as min / p99 / max over the mean, and the latency percentiles.
The fleet is simulated by :mod:`balancekit.sim.fleet`; docs/simulator.md ("Fleets") explains
the columns.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, cast

from .._errors import InvalidOption
from .._options import describe
from .fleet import SUBSETS, Fleet, FleetResult, Spread, simulate
from .report import WIDTH

__all__ = ["FLEET_REQUESTS", "SCENARIO", "add_arguments", "command", "header", "json_text", "text"]

#: The ``--scenario`` name that runs a fleet instead of a single-client scenario.
SCENARIO = "fleet"
#: Requests per subset kind when ``--requests`` is not given.
FLEET_REQUESTS = 60_000


def add_arguments(parser: argparse.ArgumentParser, positive_int: object) -> None:
    """Add the fleet options (used only with ``--scenario fleet``) to ``simulate``'s parser."""
    group = parser.add_argument_group("fleet (--scenario fleet)")
    group.add_argument(
        "--clients",
        type=positive_int,  # type: ignore[arg-type]
        metavar="N",
        help="client processes, each with its own balancer and subset (default: 300)",
    )
    group.add_argument(
        "--servers",
        type=positive_int,  # type: ignore[arg-type]
        metavar="N",
        help="servers (default: 300)",
    )
    group.add_argument(
        "--subset",
        metavar="KIND[,KIND]",
        help=f"subset kinds to compare, from {', '.join(SUBSETS)} (default: all)",
    )
    group.add_argument(
        "--subset-size",
        type=positive_int,  # type: ignore[arg-type]
        metavar="K",
        help="servers per client for random and deterministic, the minimum aperture for"
        " aperture (default: 30%% of the servers; aperture 12)",
    )
    group.add_argument(
        "--concurrency",
        type=positive_int,  # type: ignore[arg-type]
        metavar="N",
        help="closed loop: requests each client keeps in flight (default: 2)",
    )
    group.add_argument(
        "--open-loop",
        metavar="LOAD",
        type=float,
        help="open loop instead: Poisson arrivals at LOAD x the fleet's capacity (0 < LOAD <= 1)",
    )


#: The fleet options' destinations (``None`` when not given).
OPTIONS = ("clients", "servers", "subset", "subset_size", "concurrency", "open_loop")


def stray_option(args: argparse.Namespace) -> str | None:
    """The first fleet option given without ``--scenario fleet``, as typed, or ``None``."""
    for name in OPTIONS:
        if getattr(args, name, None) is not None:
            return "--" + name.replace("_", "-")
    return None


def _fail(message: str) -> int:
    print(f"balancekit simulate: {message}", file=sys.stderr)
    return 2


def fleets(args: argparse.Namespace, requests: int) -> list[Fleet]:
    """The fleets ``args`` asks for (one per subset kind); :class:`InvalidOption` if bad."""
    listed = ",".join(SUBSETS) if args.subset is None else str(args.subset)
    kinds = [kind.strip() for kind in listed.split(",") if kind.strip()]
    if not kinds:
        raise InvalidOption("--subset: no subset kind given")
    unknown = [kind for kind in kinds if kind not in SUBSETS]
    if unknown:
        raise InvalidOption(
            f"--subset: unknown kind {describe(unknown[0])}; choose from {', '.join(SUBSETS)}"
        )
    names = [n.strip() for n in (args.strategies or "").split(",") if n.strip()]
    if len(names) > 1:
        raise InvalidOption("--scenario fleet runs one strategy per client: give one name")
    options: dict[str, Any] = {"k": args.subset_size, "requests": requests}
    for name in ("clients", "servers", "concurrency"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if names:
        options["strategy"] = names[0]
    if args.open_loop is not None:
        options.update(mode="open", load=args.open_loop)
    return [Fleet(subset=cast(Any, kind), **options) for kind in dict.fromkeys(kinds)]


def command(args: argparse.Namespace) -> int:
    """Run ``simulate --scenario fleet``; the exit status (2: bad usage)."""
    if args.plot is not None or args.health or args.affinity:
        return _fail("--plot, --health and --affinity do not apply to --scenario fleet")
    requests = args.requests if args.requests is not None else FLEET_REQUESTS
    try:
        runs = fleets(args, requests)
    except InvalidOption as error:
        return _fail(str(error))
    try:
        results = [simulate(fleet, args.seed) for fleet in runs]
    except InvalidOption as error:  # the seed, checked before any work
        return _fail(str(error))
    if args.format == "json":
        sys.stdout.write(json_text(results))
    else:
        sys.stdout.write(text(results))
    return 0


def header(fleet: Fleet, seed: int) -> str:
    """The fleet's parameters, one line."""
    if fleet.mode == "closed":
        loop = f"closed loop, {fleet.concurrency} in flight per client"
    else:
        loop = f"open loop, Poisson at {fleet.load:.0%} of capacity"
    return (
        f"fleet: {fleet.clients} clients x {fleet.servers} servers ({fleet.capacity} workers,"
        f" {fleet.service * 1000:g} ms), {loop}, {fleet.requests} requests, seed {seed}"
    )


def _spread(spread: Spread) -> str:
    return f"{spread.min:.2f} {spread.p99:.2f} {spread.max:.2f}"


def text(results: Sequence[FleetResult]) -> str:
    """The imbalance report: the header, then one row per fleet."""
    if not results:
        return ""
    first = results[0]
    strategies = sorted({r.fleet.strategy for r in results if r.fleet.subset != "aperture"})
    lines = textwrap.wrap(header(first.fleet, first.seed), width=WIDTH)
    if strategies:
        lines += textwrap.wrap(
            f"each client runs {', '.join(strategies)} on its subset; aperture runs the Aperture"
            " balancer (P2C in its slice)",
            width=WIDTH,
        )
    lines += [
        "spreads over servers are min / p99 / max as multiples of the mean",
        "",
        f"{'':<18}{'conns':>8}{'connections':>16}{'used':>8}{'used conns':>16}{'requests':>16}"
        f"{'p50':>7}{'p99':>7}",
        f"{'subset':<18}{'/client':>8}{'min p99 max':>16}{'/client':>8}{'min p99 max':>16}"
        f"{'min p99 max':>16}{'ms':>7}{'ms':>7}",
    ]
    for result in results:
        lines.append(
            f"{result.fleet.label:<18}{result.per_client:>8.1f}{_spread(result.connections):>16}"
            f"{result.used_per_client:>8.1f}{_spread(result.used):>16}{_spread(result.requests):>16}"
            f"{result.p50 * 1000:>7.1f}{result.p99 * 1000:>7.1f}"
        )
        if result.rejected:
            lines.append(f"  ({result.rejected} requests could not be placed)")
    return "\n".join(lines) + "\n"


def json_text(results: Sequence[FleetResult]) -> str:
    """The results as JSON: ``{"fleets": [{"fleet": {...}, "connections": {...}, ...}]}``."""
    return json.dumps({"fleets": [asdict(result) for result in results]}, indent=2) + "\n"
