"""A guide table over a weight line: the same owner of a point, with one short bisection.

:class:`~balancekit.strategies._weight_line.WeightLine` finds the owner of ``floor(u * W)`` by
two bisections over lists of Python ints (the block totals, then one block's running totals),
~14 comparisons at n = 10,000, each reading an int object elsewhere in memory. At that size the
cache misses dominate a power-of-two-choices pick: one draw measured 214 ns at n = 10 and
937 ns at n = 10,000 (pure Python, the same loop; issue 15, docs/benchmarks.md).

A guide table (Chen and Asau, "On generating random variates from an empirical distribution",
AIIE Transactions 6(2), 1974; Devroye, *Non-Uniform Random Variate Generation*, 1986, III.2.4)
cuts ``[0, W)`` into buckets of ``step`` integers and records, for each bucket, the owner of its
first point. The owner of a point in bucket ``b`` is then between ``marks[b]`` and
``marks[b + 1]``: one bisection in C over that range of the flat running totals, which with
``step = W // n`` holds about one or two endpoints (a bucket over many light endpoints beside a
heavy one holds more: still one bisection, O(log n) at worst). The owner is the same function
of the point as the line's (the first running total above it): the same draws pick the same
endpoints, so seeded sequences do not change.

Building one is O(n) (in C but for one comprehension per block), so the strategies build it
only for lines of several blocks and only once a line has served ``GUIDE_AFTER * n`` draws: a
pool that changes often keeps the line's own draw, and one that does not pays O(1) amortised.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import chain, repeat
from math import floor
from typing import Final

from .._state import EndpointState
from ._weight_line import WeightLine

__all__ = ["GUIDE_AFTER", "GuideTable"]

#: Draws a line serves before a guide table is built for it (times its endpoints).
GUIDE_AFTER: Final = 2


class GuideTable:
    """An immutable guide over one :class:`WeightLine` (``line``): flat running totals
    (``sums``), the owner of each bucket's first point (``marks``, one more for the end)."""

    __slots__ = ("line", "marks", "states", "step", "sums", "total")

    def __init__(self, line: WeightLine) -> None:
        self.line = line
        self.states: tuple[EndpointState, ...] = line.states
        self.total = total = line.total
        n = line.n
        assert n > 0 and total >= n  # weights are >= 1
        offsets = [0, *line.tops[:-1]]
        self.sums: list[int] = list(
            chain.from_iterable(
                map(offset.__add__, block_sums)
                for offset, block_sums in zip(offsets, line.sums, strict=True)
            )
        )
        self.step = step = total // n  # >= 1: about one endpoint per bucket on average
        # marks[b] = the owner of b * step; the last bucket's upper bound is the last endpoint.
        self.marks: list[int] = list(map(bisect_right, repeat(self.sums), range(0, total, step)))
        self.marks.append(n - 1)

    def draw(self, uniform: float) -> EndpointState:
        """The owner of ``floor(uniform * W)``, as :meth:`WeightLine.draw` answers it."""
        point = floor(uniform * self.total)
        marks = self.marks
        block = point // self.step
        return self.states[bisect_right(self.sums, point, marks[block], marks[block + 1])]
