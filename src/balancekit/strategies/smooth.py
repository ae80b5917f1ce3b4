"""NGINX's smooth weighted round robin, from any state: a stepper and a schedule builder.

NGINX (``ngx_http_upstream_get_peer`` in ``src/http/ngx_http_upstream_round_robin.c``, 2012):
each step adds every peer's weight to its ``current_weight``, picks the peer with the largest
``current_weight`` (the first in list order on a tie) and subtracts the total weight from it.
From all-zero weights, {5, 1, 1} give ``a a b a c a a``: in every cycle of ``sum(weights)``
steps peer *i* is picked exactly ``weights[i]`` times, spread as evenly as possible.

NGINX keeps ``current_weight`` per peer for the life of the peer, so when peers come and go at
run time (``ngx_http_upstream_zone_resolve_handler`` in ``ngx_http_upstream_zone_module.c``,
re-resolving ``server ... resolve``) the survivors carry theirs and a new peer starts at 0. From
such a state the sequence is *eventually* periodic: a transient, then a cycle of
``sum(weights) / gcd(weights)`` picks with the exact shares. :class:`SmoothWeighted` steps
from any state; :func:`smooth_schedule` finds the transient and the cycle.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence

__all__ = ["SmoothWeighted", "smooth_schedule", "smooth_weighted_sequence"]


class SmoothWeighted:
    """NGINX's loop, one step per ``next()``, in O(k + log n) for k distinct weights.

    After *s* steps a peer has ``current = c0 + s * w - W * picks``: among peers of one weight
    the order by ``(current desc, index asc)`` changes only when one of them is picked. So each
    weight class keeps a heap keyed by ``(W * picks - c0, index)`` (constant between its
    picks), and a step compares the k class leaders, then re-keys the winner: the same pick as
    NGINX's O(n) loop, exactly (integer arithmetic). ``currents()`` reads every peer's
    ``current_weight``. Not thread-safe: callers hold a lock.
    """

    __slots__ = ("_classes", "_step", "_total", "_weights")

    def __init__(self, weights: Sequence[int], currents: Sequence[int] | None = None) -> None:
        if not weights or min(weights) < 1:
            raise ValueError("smooth weighted round robin needs one or more positive weights")
        if currents is None:
            currents = [0] * len(weights)
        if len(currents) != len(weights):
            raise ValueError("one current weight per weight")
        self._weights = list(weights)
        self._total = sum(weights)
        self._step = 0
        groups: dict[int, list[tuple[int, int]]] = {}
        for index, (weight, current) in enumerate(zip(weights, currents, strict=True)):
            groups.setdefault(weight, []).append((-current, index))
        self._classes = list(groups.items())
        for _, heap in self._classes:
            heapq.heapify(heap)

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        self._step = step = self._step + 1
        best: list[tuple[int, int]] = []
        best_value = best_index = 0
        for weight, heap in self._classes:
            key, index = heap[0]
            value = step * weight - key
            if not best or value > best_value or (value == best_value and index < best_index):
                best, best_value, best_index = heap, value, index
        key, index = best[0]
        heapq.heapreplace(best, (key + self._total, index))
        return index

    def currents(self) -> list[int]:
        """Every peer's ``current_weight`` now, in index order."""
        result = [0] * len(self._weights)
        for weight, heap in self._classes:
            for key, index in heap:
                result[index] = self._step * weight - key
        return result


def smooth_weighted_sequence(weights: Sequence[int]) -> Iterator[int]:
    """Yield, forever, the indices NGINX's smooth weighted round robin picks for ``weights``
    from all-zero current weights (a fresh start: NGINX's configuration load).

    >>> import itertools
    >>> "".join("abc"[i] for i in itertools.islice(smooth_weighted_sequence([5, 1, 1]), 7))
    'aabacaa'
    """
    return SmoothWeighted(weights)


def smooth_schedule(
    weights: Sequence[int], currents: Sequence[int], limit: int
) -> tuple[list[int], list[int]] | None:
    """The picks from ``currents`` as ``(transient, cycle)``, or ``None`` past ``limit`` picks.

    The sequence from any state is eventually periodic; its period divides
    ``L = sum(weights) / gcd(weights)``, since a window of L picks with peer *i* exactly
    ``weights[i] / gcd`` times brings every current weight back where it was. The windows are
    tracked in O(1) per step (how many peers are off their share), so the first such window
    ends the search: O((transient + L) * (k + log n)). ``None`` if that takes more than
    ``limit`` picks, or if L itself is longer (callers then step online).
    """
    divisor = math.gcd(*weights)
    need = [weight // divisor for weight in weights]
    cycle = sum(need)
    if cycle > limit:
        return None
    stepper = SmoothWeighted(weights, currents)
    history: list[int] = []
    window = [0] * len(weights)
    off = len(weights)  # peers whose count in the last `cycle` picks is not their share
    for _ in range(limit):
        index = next(stepper)
        history.append(index)
        off += (window[index] == need[index]) - (window[index] + 1 == need[index])
        window[index] += 1
        if len(history) > cycle:
            old = history[-cycle - 1]
            off += (window[old] == need[old]) - (window[old] - 1 == need[old])
            window[old] -= 1
        if off == 0 and len(history) >= cycle:
            start = len(history) - cycle
            return history[:start], history[start:]
    return None
