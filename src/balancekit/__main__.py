"""The command line: ``python -m balancekit <command>`` (also the ``balancekit`` script).

A thin argparse dispatcher: each subcommand is a ``_command_*`` function registered in
:func:`build_parser`; add one (e.g. ``bench``) by adding a subparser and a function.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from ._options import describe

__all__ = ["build_parser", "main"]

_DESCRIPTION = """\
balancekit: load-balancing strategies for client-side balancing, gateways and dispatchers.

Start here:  balancekit simulate
  runs every strategy through a built-in scenario (ten servers of mixed speed and capacity, one
  degrading half-way) in simulated time and prints latency percentiles, each server's share and
  the traffic the degraded server still got."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {describe(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, not {value}")
    return value


def _command_simulate(args: argparse.Namespace) -> int:
    from . import sim
    from ._errors import InvalidOption

    if args.list:
        print("scenarios (--scenario NAME):")
        for name, builder in sim.SCENARIOS.items():
            text = f"{name:<10} {builder(sim.DEFAULT_REQUESTS).description}"
            print(textwrap.fill(text, width=100, initial_indent="  ", subsequent_indent=" " * 13))
        print("strategies (--strategies A,B):")
        print(
            textwrap.fill(
                ", ".join(sim.available()), 100, initial_indent="  ", subsequent_indent="  "
            )
        )
        return 0
    if args.scenario not in sim.SCENARIOS:
        print(
            f"balancekit simulate: unknown scenario {describe(args.scenario)};"
            f" choose from {', '.join(sim.SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    names = (
        [name.strip() for name in args.strategies.split(",") if name.strip()]
        if args.strategies
        else sim.available()
    )
    try:
        factories = [(name, sim.factory(name, args.seed)) for name in names]
    except InvalidOption as error:
        print(f"balancekit simulate: {error}", file=sys.stderr)
        return 2
    scenario = sim.SCENARIOS[args.scenario](args.requests)
    results = [sim.run(scenario, build, seed=args.seed, name=name) for name, build in factories]
    report = sim.json_report if args.format == "json" else sim.text_report
    sys.stdout.write(report(scenario, args.seed, results))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from .sim import DEFAULT_REQUESTS

    parser = argparse.ArgumentParser(
        prog="balancekit",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"balancekit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    simulate = commands.add_parser(
        "simulate",
        help="compare strategies on a simulated fleet (deterministic, simulated time)",
        description=(
            "Run real balancers against simulated servers (M/M/c queues with FIFO waiting),"
            " Poisson arrivals and Zipf-popular clients, in simulated time: deterministic for a"
            " seed, under a second per strategy by default. Prints, per strategy, p50/p99/p99.9"
            " latency (queueing wait + service), each server's share of requests, peak in-flight"
            " and errors, the traffic the changing server got before and after its change, then a"
            " ranking by p99. See docs/simulator.md."
        ),
    )
    simulate.add_argument(
        "--scenario",
        default="degrade",
        metavar="NAME",
        help="built-in scenario to run (default: degrade; see --list)",
    )
    simulate.add_argument(
        "--strategies", metavar="A,B", help="comma-separated strategy names (default: all)"
    )
    simulate.add_argument(
        "--requests",
        type=_positive_int,
        default=DEFAULT_REQUESTS,
        metavar="N",
        help=f"requests per strategy (default: {DEFAULT_REQUESTS})",
    )
    simulate.add_argument(
        "--seed", type=int, default=1, help="random seed: same seed, same results (default: 1)"
    )
    simulate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text tables (default) or JSON for scripts",
    )
    simulate.add_argument(
        "--list", action="store_true", help="list the scenarios and strategies, then exit"
    )
    simulate.set_defaults(handler=_command_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    status: int = handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
