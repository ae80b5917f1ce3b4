"""What a balancer counts besides its endpoints' own counters, for metrics read at scrape time.

Everything here changes under the balancer's lock and off the selection path: membership
changes, index rebuilds (count and time), and the counters of endpoints removed for good, so
a total over "every endpoint ever" stays monotonic when endpoints leave (Prometheus counters
must never go down). ``balancekit.metrics`` reads it together with ``stats()``.
"""

from __future__ import annotations

from ._state import EndpointState

__all__ = ["Tally"]


class Tally:
    """Per-balancer counters kept under the balancer's lock (plain ints: O(1) each).

    ``gone_*`` hold the final counters of endpoints dropped from the balancer (removed with no
    lease out, or their last lease released since), so ``sum(member counters) + gone`` only
    grows, and stays exact under concurrent picks: see :meth:`absorb`.
    """

    __slots__ = (
        "added",
        "gone_cancelled",
        "gone_failed",
        "gone_released",
        "gone_selected",
        "membership_updates",
        "rebuild_seconds",
        "rebuilds",
        "removed",
    )

    def __init__(self) -> None:
        self.membership_updates = 0  # add/remove/update calls that changed the member set
        self.added = 0  # endpoints that joined
        self.removed = 0  # endpoints that left
        self.rebuilds = 0  # strategy index rebuilds
        self.rebuild_seconds = 0.0  # time spent in them (time.perf_counter)
        self.gone_selected = 0
        self.gone_released = 0
        self.gone_failed = 0
        self.gone_cancelled = 0

    def membership(self, added: int, removed: int) -> None:
        """Count one membership change of ``added`` joins and ``removed`` departures (if any)."""
        if added or removed:
            self.membership_updates += 1
            self.added += added
            self.removed += removed

    def rebuilt(self, seconds: float) -> None:
        """Count one index rebuild that took ``seconds``."""
        self.rebuilds += 1
        self.rebuild_seconds += seconds

    def absorb(self, state: EndpointState) -> None:
        """Keep the final counters of ``state``, dropped from the balancer for good.

        A state is dropped when no lease on it is out, so its picks are its releases: those
        are counted, not ``selected``. A pick racing the drop may still count on the dropped
        state (it read an old index), but ``BalancerBase._select_again`` then makes it again
        on a member, where it is counted; reading ``selected`` here would count it twice.
        """
        _, released, failed, cancelled = state.counts()  # final: no lease on it is out
        self.gone_failed += failed
        self.gone_cancelled += cancelled
        self.gone_released += released
        self.gone_selected += released
