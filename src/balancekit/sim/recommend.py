"""The closing recommendation of ``simulate``: which strategy to pick for the scenario, and why.

p99 alone is a poor judge: a server that fails fast has few requests in flight, so load-aware
strategies send it *more* traffic and clients see more errors at a *better* p99 (the ``flaky``
scenario); and a workload that needs key affinity (sessions, per-client caches, shards) cannot
use a strategy that spreads one client's requests over every server, whatever its latency.
The rule, in order:

1. **Affinity.** If the scenario needs key affinity (:attr:`Scenario.affinity
   <balancekit.sim.scenario.Scenario.affinity>`, or ``simulate --affinity``), only strategies
   that send a key to the same server qualify (the consistent hashes: subclasses of
   ``KeyedBalancer``). If none of those was run, the rule goes on with all of them and says so.
2. **Latency.** Strategies whose p99 is within :data:`LATENCY_SLACK` (1.5x) of the best p99
   among the qualifying ones are *fast enough*; the others are out. A run that completed no
   request has no p99 (its empty latency list is no evidence of speed).
3. **Errors.** Among the fast-enough ones, the fewest errors clients saw (failed plus unplaced)
   win, counting as equal every count within :data:`ERROR_SLACK` (10 %) plus
   :data:`ERROR_FLOOR` (0.05 % of the requests) of the fewest: noise is no reason.
4. **Ties** go to the lower p99, then p99.9, then the name.

So a strategy with 45 % fewer errors at a p99 10 % worse is picked over the p99 leader, but one
with fewer errors at a p99 of seconds is not. The rule is this library's, written to be read
and argued with in one paragraph; the numbers behind it are in the report above it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .engine import Result
from .strategies import keeps_affinity

__all__ = ["ERROR_FLOOR", "ERROR_SLACK", "LATENCY_SLACK", "Recommendation", "recommend"]

#: A strategy is fast enough if its p99 is at most this times the best p99.
LATENCY_SLACK = 1.5
#: Error counts within this fraction (plus :data:`ERROR_FLOOR`) of the fewest count as equal.
ERROR_SLACK = 0.10
#: ... plus this fraction of the requests.
ERROR_FLOOR = 0.0005


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The strategy to pick (``strategy``) and the sentences that say why (``reasons``)."""

    strategy: str
    reasons: tuple[str, ...]

    def text(self, width: int = 100) -> str:
        """The recommendation as a block of text wrapped at ``width`` columns."""
        import textwrap

        lines = [f"== recommendation: {self.strategy}"]
        for reason in self.reasons:
            lines.extend(
                textwrap.wrap(reason, width=width, initial_indent="  - ", subsequent_indent="    ")
            )
        return "\n".join(lines)


def _ms(seconds: float) -> str:
    milliseconds = seconds * 1000
    return f"{milliseconds:.1f} ms" if milliseconds < 1000 else f"{milliseconds:,.0f} ms"


def _errors(result: Result) -> str:
    if not result.errors:
        return "no errors"
    return f"{result.errors:,} errors ({result.errors / result.requests:.2%})"


def _p99(result: Result) -> float:
    """The p99 the rule judges by: none (infinite) for a run that completed no request, whose
    empty latency list reads 0.0 and would otherwise be the best."""
    return result.p99 if result.completed else math.inf


def recommend(results: Sequence[Result], *, affinity: bool = False) -> Recommendation:
    """Apply the module's rule to ``results`` (runs of one scenario); see the module docstring.

    ``affinity``: the workload needs key affinity. Raises ValueError if ``results`` is empty.
    O(len(results) log len(results)).
    """
    if not results:
        raise ValueError("nothing to recommend from: no results")
    reasons: list[str] = []
    pool = list(results)
    if affinity:
        keyed = [r for r in results if keeps_affinity(r.strategy)]
        if keyed:
            reasons.append(
                "the scenario needs key affinity (one client's requests on one server), so only"
                f" the strategies that keep it qualify: {', '.join(r.strategy for r in keyed)}."
            )
            pool = keyed
        else:
            reasons.append(
                "the scenario needs key affinity, but none of the strategies run keeps it (run"
                " a consistent hash such as BoundedLoadHash); judging them all."
            )
    best_p99 = min(_p99(r) for r in pool)
    fast = [r for r in pool if _p99(r) <= LATENCY_SLACK * best_p99]
    fewest = min(r.errors for r in fast)
    requests = max(r.requests for r in fast)
    fine = [r for r in fast if r.errors <= fewest * (1 + ERROR_SLACK) + ERROR_FLOOR * requests]
    pick = min(fine, key=lambda r: (_p99(r), r.p999, r.strategy))
    leader = min(pool, key=lambda r: (_p99(r), r.p999, r.strategy))
    if pick is leader:
        reasons.insert(
            0,
            f"lowest p99 ({_ms(pick.p99)}; p50 {_ms(pick.p50)}, p99.9 {_ms(pick.p999)})"
            f" with {_errors(pick)}"
            + (
                ", as few as any strategy within 1.5x of that p99."
                if len(fast) > 1
                else "; no other strategy comes within 1.5x of that p99."
            ),
        )
    else:
        reasons.insert(
            0,
            f"p99 {_ms(pick.p99)} with {_errors(pick)}: {leader.strategy} has the lowest p99"
            f" ({_ms(leader.p99)}) but {_errors(leader)}; {pick.strategy} is within"
            f" {LATENCY_SLACK:g}x of that p99 and has the fewest errors of those that are.",
        )
    safer = [r for r in pool if r.errors < pick.errors and r not in fast]
    if safer:
        fewer = min(safer, key=lambda r: (r.errors, _p99(r)))
        reasons.append(
            f"{fewer.strategy} has fewer errors ({fewer.errors:,}) but a p99 of"
            f" {_ms(fewer.p99)}: more than {LATENCY_SLACK:g}x the best, so not worth it."
        )
    if not affinity:
        keyed = [r for r in results if keeps_affinity(r.strategy)]
        if keyed and not keeps_affinity(pick.strategy):
            best_keyed = min(keyed, key=lambda r: (_p99(r), r.p999, r.strategy))
            reasons.append(
                "the scenario does not need key affinity (simulate --affinity if yours does:"
                f" then the pick would be among the hashes, best p99 {best_keyed.strategy}"
                f" {_ms(best_keyed.p99)})."
            )
    if pick.errors and not pick.strategy.endswith("+health"):
        reasons.append(
            "clients still see errors from a failing server: passive health (with_health)"
            " ejects it; simulate --health compares every strategy with and without it."
        )
    return Recommendation(pick.strategy, tuple(reasons))
