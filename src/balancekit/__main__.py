"""The command line: ``python -m balancekit <command>`` (also the ``balancekit`` script).

A thin argparse dispatcher: each subcommand is a ``_command_*`` function registered in
:func:`build_parser`; add one (e.g. ``bench``) by adding a subparser and a function.
"""

from __future__ import annotations

import argparse
import sys
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
    from .sim.cli import command

    return command(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""

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
            " and errors, the traffic the changing server got before and after its change, a"
            " ranking by p99, and a recommendation weighing p99, errors and key affinity. --plot"
            " draws it, --health compares with passive health. See docs/simulator.md."
        ),
    )
    from .sim.cli import add_arguments

    add_arguments(simulate, _positive_int)
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
