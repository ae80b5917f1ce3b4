"""``balancekit simulate``: its options (:func:`add_arguments`) and what it does (:func:`command`).

The parser lives in :mod:`balancekit.__main__`; this module adds the subcommand's options and
runs it: the runs (with ``--health``, each strategy twice: bare and with passive health), the
report on stdout, the closing recommendation, the picture (``--plot``) and progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .._errors import InvalidOption
from .._options import describe
from . import engine, fleet_report, plot, report, scenario_health
from .progress import Progress
from .recommend import recommend
from .scenario import DEFAULT_REQUESTS, SCENARIOS, Scenario
from .strategies import HEALTH_SUFFIX, available, factory

__all__ = ["add_arguments", "command", "text"]


def add_arguments(parser: argparse.ArgumentParser, positive_int: object) -> None:
    """Add ``simulate``'s options to its subparser (``positive_int``: the count type)."""
    parser.add_argument(
        "--scenario",
        default="degrade",
        metavar="NAME",
        help="built-in scenario to run (default: degrade; see --list), or fleet: many clients"
        " with subsets (the fleet options below)",
    )
    parser.add_argument(
        "--strategies", metavar="A,B", help="comma-separated strategy names (default: all)"
    )
    parser.add_argument(
        "--requests",
        type=positive_int,  # type: ignore[arg-type]
        default=None,
        metavar="N",
        help=f"requests per strategy (default: {DEFAULT_REQUESTS}; fleet: "
        f"{fleet_report.FLEET_REQUESTS} per subset kind)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="random seed: same seed, same results (default: 1)"
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text tables (default) or JSON for scripts",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the scenarios and strategies, then exit"
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw latency CDFs and each server's share over time to FILE (.png, .svg or"
        " .pdf); needs matplotlib: pip install 'balancekit[plot]'",
    )
    parser.add_argument(
        "--health",
        action="store_true",
        help="run each strategy twice, without and with passive health (with_health), and"
        " compare (twice the time; try --scenario failing or flaky)",
    )
    parser.add_argument(
        "--affinity",
        action="store_true",
        help="your clients need key affinity (sessions, per-client caches): recommend only"
        " strategies that keep a client on one server",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr (default: only when stderr is a terminal)",
    )
    fleet_report.add_arguments(parser, positive_int)


def _list() -> int:
    print("scenarios (--scenario NAME):")
    for name, builder in SCENARIOS.items():
        text = f"{name:<10} {builder(DEFAULT_REQUESTS).description}"
        print(textwrap.fill(text, width=100, initial_indent="  ", subsequent_indent=" " * 13))
    text = (
        f"{fleet_report.SCENARIO:<10} many client processes, each with its own balancer and"
        " subset (none, random, deterministic, aperture); reports each server's connections"
        " and requests as a share of the mean (--clients, --servers, --subset, --subset-size)"
    )
    print(textwrap.fill(text, width=100, initial_indent="  ", subsequent_indent=" " * 13))
    print("strategies (--strategies A,B):")
    print(textwrap.fill(", ".join(available()), 100, initial_indent="  ", subsequent_indent="  "))
    return 0


def _fail(message: str) -> int:
    print(f"balancekit simulate: {message}", file=sys.stderr)
    return 2


def command(args: argparse.Namespace) -> int:
    """Run ``simulate`` with parsed ``args``; return the exit status (2: bad usage)."""
    if args.list:
        return _list()
    if args.scenario == fleet_report.SCENARIO:
        return fleet_report.command(args)
    stray = fleet_report.stray_option(args)
    if stray is not None:
        return _fail(f"{stray} applies only to --scenario {fleet_report.SCENARIO}")
    if args.requests is None:
        args.requests = DEFAULT_REQUESTS
    if args.scenario not in SCENARIOS:
        return _fail(
            f"unknown scenario {describe(args.scenario)};"
            f" choose from {', '.join([*SCENARIOS, fleet_report.SCENARIO])}"
        )
    target: Path | None = None
    if args.plot is not None:  # checked before minutes of simulation, not after
        try:
            target = plot.check_path(args.plot)
            plot.require_matplotlib()
        except (InvalidOption, ImportError) as error:
            return _fail(f"--plot: {error}")
        if not target.parent.is_dir():
            return _fail(f"--plot: no directory {str(target.parent)!r} to write {target.name}")
        if not os.access(target.parent, os.W_OK):
            return _fail(f"--plot: cannot write in {str(target.parent)!r}")
    names = (
        [name.strip() for name in args.strategies.split(",") if name.strip()]
        if args.strategies
        else available()
    )
    try:
        runs = [(name, factory(name, args.seed)) for name in names]
    except InvalidOption as error:
        return _fail(str(error))
    if not runs:
        return _fail("no strategies given")
    scenario = SCENARIOS[args.scenario](args.requests)
    if args.affinity:
        scenario = replace(scenario, affinity=True)
    enabled = args.progress if args.progress is not None else _isatty()
    progress = Progress(
        sys.stderr,
        total=len(runs) * (2 if args.health else 1),
        requests=scenario.requests,
        enabled=enabled,
    )
    results: list[engine.Result] = []
    pairs: list[tuple[engine.Result, engine.Result]] = []
    try:
        _run_all(args, scenario, runs, progress, results, pairs, enabled)
    except InvalidOption as error:
        return _fail(str(error))
    finally:
        progress.close()
    return _output(args, scenario, results, pairs, target)


def _run_all(
    args: argparse.Namespace,
    scenario: Scenario,
    runs: Sequence[tuple[str, engine.BalancerFactory]],
    progress: Progress,
    results: list[engine.Result],
    pairs: list[tuple[engine.Result, engine.Result]],
    enabled: bool,
) -> None:
    """Run every strategy (and with ``--health`` its twin with passive health) into the lists."""
    for name, build in runs:
        progress.start(name)
        bare = engine.run(
            scenario,
            build,
            seed=args.seed,
            name=name,
            progress=progress.update if enabled else None,
        )
        progress.finish()
        results.append(bare)
        if args.health:
            label = name + HEALTH_SUFFIX
            progress.start(label)
            healthy = engine.run(
                scenario,
                scenario_health.healthy_factory(name, None, args.seed),
                seed=args.seed,
                name=label,
                progress=progress.update if enabled else None,
            )
            progress.finish()
            pairs.append((bare, healthy))


def _output(
    args: argparse.Namespace,
    scenario: Scenario,
    results: list[engine.Result],
    pairs: list[tuple[engine.Result, engine.Result]],
    target: Path | None,
) -> int:
    """Write the report to stdout and the picture to ``target``; the exit status."""
    candidates = results + [healthy for _, healthy in pairs]
    advice = recommend(candidates, affinity=scenario.affinity)
    if args.format == "json":
        extra: dict[str, object] = {
            "recommendation": {"strategy": advice.strategy, "reasons": list(advice.reasons)}
        }
        if args.health:
            extra["with_health"] = [healthy.to_dict() for _, healthy in pairs]
        sys.stdout.write(report.json_report(scenario, args.seed, results, extra=extra))
    else:
        sys.stdout.write(text(scenario, args.seed, results, pairs))
    if target is not None:
        try:
            plot.plot(scenario, results, target, seed=args.seed)
        except OSError as error:
            print(f"balancekit simulate: --plot: cannot write {target}: {error}", file=sys.stderr)
            return 1
        print(f"balancekit simulate: wrote {target}", file=sys.stderr)
    return 0


def text(
    scenario: Scenario,
    seed: int,
    results: Sequence[engine.Result],
    pairs: Sequence[tuple[engine.Result, engine.Result]] = (),
) -> str:
    """The text report of ``simulate``: the tables, the ranking, the health comparison (if
    ``pairs``: bare and with-health results) and the recommendation over all of them."""
    advice = recommend([*results, *(h for _, h in pairs)], affinity=scenario.affinity)
    parts = [report.text_report(scenario, seed, results).rstrip("\n")]
    if pairs:
        parts.append(scenario_health.health_table(pairs))
    parts.append(advice.text(report.WIDTH))
    return "\n\n".join(parts) + "\n"


def _isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
