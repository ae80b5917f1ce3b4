"""Low concurrency: one client sending requests one after another, where latency alone decides.

The engine's scenarios (:mod:`balancekit.sim.engine`) are open-loop Poisson arrivals at 60-90 %
of capacity, where in-flight counts dominate every load-aware pick. Here a single client keeps
at most one request in flight (a closed loop, as a batch job or a cron-driven client does), so
every in-flight count is 0 at a pick and the latency estimates alone decide: the case where a
latency-aware balancer can put everything on one of two identical servers, or never try a
replica that has just joined. Two experiments:

* :func:`split`: two identical servers, ``requests`` back to back; each server's share.
* :func:`join`: two identical servers at ``rate`` requests per second; a third joins at
  ``join_at`` seconds. How long until it gets its first request, and its share afterwards.

Service times are lognormal with mean ``mean`` and log-standard-deviation ``jitter``
(``jitter=0.3``: the middle 90 % of responses within about 0.6x-1.6x the median), drawn from
``random.Random(seed)`` one per request in order, whichever server takes it (common random
numbers: every strategy sees the same work). The balancer runs on a simulated clock
(:class:`~balancekit.sim.engine.SimClock`); nothing sleeps. Deterministic for a seed.

Run it::

    python -m balancekit.sim.sequential [--seed 1] [--jitter 0.3] [--strategy NAME ...]
"""

from __future__ import annotations

import argparse
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .._endpoint import Endpoint
from .._errors import InvalidOption
from .engine import BalancerFactory, SimClock
from .strategies import available, factory

__all__ = ["LATENCY_AWARE", "JoinResult", "SplitResult", "join", "split"]

#: The strategies the report compares by default (those of them this build has).
LATENCY_AWARE = (
    "RoundRobin",
    "LeastConnections",
    "LeastResponseTime",
    "PowerOfTwoChoices",
    "PeakEWMA",
)

SERVERS = ("10.0.0.1:8080", "10.0.0.2:8080")
NEWCOMER = "10.0.0.3:8080"


@dataclass(frozen=True, slots=True)
class SplitResult:
    """How many of ``requests`` sequential requests each of two identical servers got."""

    strategy: str
    requests: int
    counts: tuple[int, int]

    @property
    def share(self) -> float:
        """The larger server's share of the requests (0.5: an even split, 1.0: a hot spot)."""
        return max(self.counts) / self.requests


@dataclass(frozen=True, slots=True)
class JoinResult:
    """When a replica that joined at ``join_at`` got its first request, and how many after.

    ``first_after`` is ``None`` when it got none by the end of the run.
    """

    strategy: str
    join_at: float
    first_after: float | None
    requests_after: int
    newcomer_after: int

    @property
    def newcomer_share(self) -> float:
        """The newcomer's share of the requests sent after it joined (1/3 is its fair share)."""
        return self.newcomer_after / self.requests_after if self.requests_after else 0.0


def _service(rng: random.Random, mean: float, jitter: float) -> float:
    """A lognormal service time with mean ``mean``: ``exp(N(ln mean - jitter**2 / 2, jitter))``."""
    return rng.lognormvariate(math.log(mean) - jitter * jitter / 2, jitter)


def _check(mean: float, jitter: float, requests: int) -> None:
    if not 0 < mean < math.inf or not 0 <= jitter <= 3:
        raise InvalidOption(f"mean must be > 0 and jitter in [0, 3], not {mean!r}, {jitter!r}")
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
        raise InvalidOption(f"requests must be an int >= 1, not {requests!r}")


def split(
    balancer_factory: BalancerFactory,
    *,
    requests: int = 30_000,
    mean: float = 0.002,
    jitter: float = 0.3,
    seed: int = 1,
    name: str | None = None,
) -> SplitResult:
    """Send ``requests`` requests one after another to two identical servers (concurrency 1).

    The defaults are a minute of simulated time against 2 ms servers (a fast backend on a LAN).
    """
    _check(mean, jitter, requests)
    clock = SimClock()
    rng = random.Random(seed)
    balancer = balancer_factory([Endpoint(address) for address in SERVERS], clock)
    counts: Counter[str] = Counter()
    for _ in range(requests):
        lease = balancer.select()
        elapsed = _service(rng, mean, jitter)
        clock.now += elapsed
        balancer.release(lease, elapsed=elapsed)
        counts[lease.address] += 1
    return SplitResult(
        name or type(balancer).__name__, requests, (counts[SERVERS[0]], counts[SERVERS[1]])
    )


def join(
    balancer_factory: BalancerFactory,
    *,
    rate: float = 100.0,
    join_at: float = 10.0,
    duration: float = 20.0,
    mean: float = 0.002,
    jitter: float = 0.3,
    seed: int = 1,
    name: str | None = None,
) -> JoinResult:
    """One request every ``1 / rate`` seconds (one at a time) to two servers; at ``join_at`` a
    third, identical, is added (``balancer.add``). Runs until ``duration`` seconds."""
    _check(mean, jitter, 1)
    if not 0 < rate < math.inf or not 0 <= join_at < duration < math.inf:
        raise InvalidOption(
            f"need rate > 0 and 0 <= join_at < duration, not {rate!r}, {join_at!r}, {duration!r}"
        )
    if duration * rate > 10_000_000:
        raise InvalidOption(f"duration * rate must be at most 10,000,000, not {duration * rate}")
    clock = SimClock()
    rng = random.Random(seed)
    balancer = balancer_factory([Endpoint(address) for address in SERVERS], clock)
    joined = False
    first_after: float | None = None
    after = newcomer = 0
    period = 1.0 / rate
    while clock.now < duration:
        start = clock.now
        if not joined and start >= join_at:
            balancer.add(Endpoint(NEWCOMER))
            joined = True
        lease = balancer.select()
        elapsed = _service(rng, mean, jitter)
        clock.now = start + elapsed
        balancer.release(lease, elapsed=elapsed)
        if joined:
            after += 1
            if lease.address == NEWCOMER:
                newcomer += 1
                if first_after is None:
                    first_after = start - join_at
        clock.now = max(clock.now, start + period)
    return JoinResult(name or type(balancer).__name__, join_at, first_after, after, newcomer)


def table(
    strategies: Sequence[str] | None = None,
    *,
    seed: int = 1,
    jitter: float = 0.3,
    requests: int = 30_000,
) -> str:
    """A Markdown table: split at concurrency 1 and the newcomer's first request, per strategy."""
    names = [name for name in strategies or LATENCY_AWARE if name in available()]
    lines = [
        "| strategy | larger share, 2 identical servers | newcomer's first request after"
        " | newcomer's share after joining |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in names:
        shared = split(factory(name, seed), requests=requests, seed=seed, jitter=jitter, name=name)
        joined = join(factory(name, seed), seed=seed, jitter=jitter, name=name)
        first = "never" if joined.first_after is None else f"{joined.first_after * 1000:.0f} ms"
        lines.append(f"| {name} | {shared.share:.1%} | {first} | {joined.newcomer_share:.1%} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jitter", type=float, default=0.3)
    parser.add_argument("--requests", type=int, default=30_000, help="for the split")
    parser.add_argument("--strategy", action="append", help="repeat to pick several")
    options = parser.parse_args(argv)
    print(
        f"2 ms servers, lognormal jitter {options.jitter:g}; split: {options.requests:,} requests"
        " back to back; join: 100 requests/s, a third server joins at 10 s of 20"
        f" (seed {options.seed})"
    )
    print(
        table(
            options.strategy,
            seed=options.seed,
            jitter=options.jitter,
            requests=options.requests,
        )
    )


if __name__ == "__main__":
    main()
