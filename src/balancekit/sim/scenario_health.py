"""The passive-health scenario: one of ten servers fails half its requests; eject it or not?

Ten servers of the default mixed fleet at a modest load (200 requests/s, so a run covers
simulated minutes: several ejections and returns); from 5 % of the run, 10.0.0.3:8080 fails
50 % of its requests. Each strategy runs twice on the same arrivals (common random numbers):
bare, and with :func:`~balancekit.with_health` and default :class:`~balancekit.PassiveHealth`
(5 consecutive failures, or a quarter of the last 100 once 50 are seen, eject for 30 s, growing
by 30 s per repeat, at most half the pool).
The figure is the share of requests that failed as clients saw them, and the reduction factor.

Run it::

    python -m balancekit.sim.scenario_health [--requests 120000] [--seed 1]

The scenario itself is ``"failing"`` in :data:`~balancekit.sim.scenario.SCENARIOS`
(:func:`~balancekit.sim.scenario.failing_scenario`), so ``python -m balancekit simulate
--scenario failing`` runs it too, without the with/without-health comparison.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._core import Balancer, BalancerBase, Clock
from .._endpoint import Endpoint
from .._errors import InvalidOption
from ..health import PassiveHealth, with_health
from .engine import Result, run
from .scenario import FAILING_RATE, FAILING_SERVER, failing_scenario
from .strategies import available, factory

__all__ = ["Comparison", "compare", "failing_scenario", "health_table", "healthy_factory"]

RATE = FAILING_RATE
FAILING = FAILING_SERVER


def healthy_factory(
    name: str, passive: PassiveHealth | None = None, seed: int = 0
) -> Callable[[list[Endpoint], Clock], Balancer]:
    """A simulator factory for strategy ``name`` with passive health attached."""
    bare = factory(name, seed)

    def build(endpoints: list[Endpoint], clock: Clock) -> Balancer:
        balancer = bare(endpoints, clock)
        if not isinstance(balancer, BalancerBase):
            raise InvalidOption(f"{name} is not a BalancerBase: passive health cannot attach")
        return with_health(balancer, passive)

    return build


@dataclass(frozen=True, slots=True)
class Comparison:
    """One strategy's failed share of requests (as clients saw them) without and with health."""

    strategy: str
    requests: int
    errors_without: int
    errors_with: int

    @property
    def share_without(self) -> float:
        return self.errors_without / self.requests

    @property
    def share_with(self) -> float:
        return self.errors_with / self.requests

    @property
    def reduction(self) -> float:
        """How many times fewer failed requests health tracking gives (inf if none failed)."""
        return self.errors_without / self.errors_with if self.errors_with else float("inf")


def compare(
    strategies: Sequence[str] | None = None,
    *,
    requests: int = 120_000,
    seed: int = 1,
    passive: PassiveHealth | None = None,
) -> list[Comparison]:
    """Run :func:`failing_scenario` for each strategy, bare and with passive health."""
    scenario = failing_scenario(requests)
    results = []
    for name in strategies or available():
        bare = run(scenario, factory(name, seed), seed=seed, name=name)
        healthy = run(scenario, healthy_factory(name, passive, seed), seed=seed, name=name)
        results.append(Comparison(name, requests, bare.errors, healthy.errors))
    return results


def table(comparisons: Sequence[Comparison]) -> str:
    """A Markdown table of the comparisons."""
    lines = [
        "| strategy | failed, no health | failed, passive health | reduction |",
        "| --- | ---: | ---: | ---: |",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.strategy} | {c.share_without:.2%} | {c.share_with:.3%} | {c.reduction:.0f}x |"
        )
    return "\n".join(lines)


def health_table(pairs: Sequence[tuple[Result, Result]]) -> str:
    """The CLI's comparison (``simulate --health``): each strategy without and with health.

    ``pairs`` holds (bare, with health) results of one scenario; one row per pair with the
    errors clients saw, p99, and the changing server's share after its change, in 100 columns.
    """
    watched = pairs[0][0].watched[:1] if pairs else ()
    tail = f"{'to ' + watched[0].split(':')[0]:>16}" if watched else ""
    lines = [
        "== passive health: each strategy without -> with with_health (default PassiveHealth)",
        f"  {'strategy':<22}{'errors':>19}{'p99 ms':>19}{'p99.9 ms':>19}{tail}",
    ]
    for bare, healthy in pairs:
        line = (
            f"  {bare.strategy:<22}{_pair(str(bare.errors), str(healthy.errors)):>19}"
            f"{_pair(_ms(bare.p99), _ms(healthy.p99)):>19}"
            f"{_pair(_ms(bare.p999), _ms(healthy.p999)):>19}"
        )
        if watched:
            line += f"{_pair(_after(bare, watched[0]), _after(healthy, watched[0])):>16}"
        lines.append(line)
    return "\n".join(lines)


def _pair(before: str, after: str) -> str:
    return f"{before} -> {after}"


def _ms(seconds: float) -> str:
    milliseconds = seconds * 1000
    return f"{milliseconds:.1f}" if milliseconds < 1000 else f"{milliseconds:.0f}"


def _after(result: Result, address: str) -> str:
    during = sum(server.phases[1] for server in result.servers)
    share = result.server(address).phases[1] / during if during else 0.0
    return f"{share:.1%}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strategy", action="append", help="repeat to pick several (default all)")
    options = parser.parse_args(argv)
    comparisons = compare(options.strategy, requests=options.requests, seed=options.seed)
    print(failing_scenario(options.requests).description)
    print(table(comparisons))


if __name__ == "__main__":
    main()
