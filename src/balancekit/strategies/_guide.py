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
only once a line has served ``GUIDE_AFTER * n`` draws: a pool that changes often keeps the
line's own draw, and one that does not pays O(1) amortised.

A *light* line, whose total weight ``W`` is at most :data:`OWNERS_PER_ENDPOINT` times its
endpoints (every pool of equal weights, and weights 1-5 as the benchmarks use), gets the
extreme case of a guide instead: buckets of one point, i.e. the owner of every point of
``[0, W)`` in a tuple (``owners``; an "urn" table, Devroye III.2.4 with ``step = 1``), so a
draw is ``owners[floor(u * W)]``, one subscript, no bisection (issue 15: two bisections were
~180 ns of a pure-Python power-of-two-choices pick at n = 10). It holds ``W <= 8n`` references
and is built in C in O(W) = O(n); a line of at most :data:`OWNERS_AT_ONCE` points gets it at its
first draw (O(1): no countdown needed). The owner of each point is still the line's.

So does any line of at most :data:`OWNERS_ANY` points whatever its weights (a few heavy
endpoints, e.g. weights 20-100: at most 32 KiB of references), which otherwise bisected its
one block: one subscript instead (issue 15, p2cfast: 23 % fewer instructions per pick of
P2C over weights 20-100 at n = 10).
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import chain, repeat
from math import floor
from operator import sub
from typing import Final

from .._state import EndpointState
from ._weight_line import WeightLine

__all__ = ["GUIDE_AFTER", "OWNERS_ANY", "OWNERS_AT_ONCE", "OWNERS_PER_ENDPOINT", "GuideTable"]

#: Draws a line serves before a guide table is built for it (times its endpoints).
GUIDE_AFTER: Final = 2

#: A line of at most this many points per endpoint (``W <= 8n``) is drawn from an owner table.
OWNERS_PER_ENDPOINT: Final = 8

#: A line of at most this many points gets its owner table at its first draw, not after
#: ``GUIDE_AFTER * n`` draws: building it is O(1) then (a small constant).
OWNERS_AT_ONCE: Final = 1024

#: A line of at most this many points is drawn from an owner table whatever its weights.
OWNERS_ANY: Final = 4096


class GuideTable:
    """An immutable guide over one :class:`WeightLine` (``line``): flat running totals
    (``sums``), the owner of each bucket's first point (``marks``, one more for the end), or
    for a light line the owner of every point (``owners``; then ``sums`` and ``marks`` are
    empty)."""

    __slots__ = ("line", "marks", "owners", "scale", "states", "step", "sums", "total")

    def __init__(self, line: WeightLine) -> None:
        self.line = line
        self.states: tuple[EndpointState, ...] = line.states
        self.total = total = line.total
        # As a float for ``random() * scale``: float * float, the same product as float * int
        # (which converts the int to this double first); BINARY_OP's float specialisation.
        self.scale = float(total)
        n = line.n
        assert n > 0 and total >= n  # weights are >= 1
        self.owners: tuple[EndpointState, ...] | None = None
        self.sums: list[int] = []
        self.marks: list[int] = []
        if total <= OWNERS_PER_ENDPOINT * n or total <= OWNERS_ANY:
            # A light or short line: the owner of every point (the urn table), each endpoint
            # repeated as many times as the line's running totals give it points; no buckets.
            counts = chain.from_iterable(
                map(sub, block_sums, [0, *block_sums[:-1]]) for block_sums in line.sums
            )
            self.owners = tuple(chain.from_iterable(map(repeat, self.states, counts)))
            self.step = total
            return
        offsets = [0, *line.tops[:-1]]
        self.sums = list(
            chain.from_iterable(
                map(offset.__add__, block_sums)
                for offset, block_sums in zip(offsets, line.sums, strict=True)
            )
        )
        self.step = step = total // n  # >= 1: about one endpoint per bucket on average
        # marks[b] = the owner of b * step; the last bucket's upper bound is the last endpoint.
        self.marks = list(map(bisect_right, repeat(self.sums), range(0, total, step)))
        self.marks.append(n - 1)

    def draw(self, uniform: float) -> EndpointState:
        """The owner of ``floor(uniform * W)``, as :meth:`WeightLine.draw` answers it."""
        point = floor(uniform * self.total)
        owners = self.owners
        if owners is not None:
            return owners[point]
        marks = self.marks
        block = point // self.step
        return self.states[bisect_right(self.sums, point, marks[block], marks[block + 1])]
