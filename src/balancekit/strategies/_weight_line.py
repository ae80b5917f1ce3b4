"""The cumulative-weight line of the weighted random strategies, changed in O(sqrt-ish n).

Endpoint *i* (in join order) owns the integers ``[c_{i-1}, c_i)`` of ``[0, W)``, ``c_i`` the
running total of the weights; a draw takes ``floor(u * W)`` for a uniform ``u`` and finds its
owner. The line is cut into blocks of at most ``2 * LOAD`` endpoints, each with its running
totals in a list, and the blocks' totals are summed once more: a draw is two
bisections in C (``bisect_right`` on the block totals, then within one block), O(log n); a
change re-sums only the blocks it touched (O(LOAD) each) and the block totals (O(n / LOAD)),
never the whole pool. Tables are copy-on-write: a change builds a new :class:`WeightLine`
sharing the untouched blocks, published with one assignment, so draws stay lock-free.

The owner of a point depends only on the eligible endpoints, their join order and weights, not
on the history of changes (the blocks only speed the search up): an incremental line and one
built from scratch answer every draw alike. This is the "blocked prefix sums" idea of a
sorted-list-of-lists (Grant Jenks' ``sortedcontainers``) applied to a Fenwick tree's job
(P. M. Fenwick, "A new data structure for cumulative frequency tables", 1994): a Fenwick tree
is O(log n) per change and per draw, but its draw is a Python loop of log2(n) steps, where
these bisections run in C. Measured in docs/benchmarks.md ("Membership changes: delta refresh").
"""

from __future__ import annotations

import random as _random
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Sequence
from itertools import accumulate, chain, pairwise
from math import floor
from operator import attrgetter
from typing import Final

from .._state import EndpointState

__all__ = ["LOAD", "WeightLine"]

#: Endpoints per block when a line is built (blocks split at twice this).
LOAD = 256

_seq: Final = attrgetter("seq")
_weight: Final = attrgetter("weight")


def _sums(block: Sequence[EndpointState]) -> list[int]:
    # A list, not an array('q'): bisect on an array boxes every item it compares (~100-200 ns
    # more per draw, measured); the ints cost ~28 bytes per endpoint more.
    return list(accumulate(map(_weight, block)))


class WeightLine:
    """An immutable snapshot: blocks of endpoints in join order and their running weights."""

    __slots__ = ("_flat", "_index", "blocks", "last_seqs", "n", "sums", "tops", "total")

    def __init__(
        self,
        blocks: list[list[EndpointState]],
        sums: list[list[int]],
        last_seqs: list[int],
        n: int,
    ) -> None:
        self.blocks = blocks
        self.sums = sums
        self.last_seqs = last_seqs  # the seq of each block's last endpoint, for locating
        self.tops = list(accumulate(block_sums[-1] for block_sums in sums))
        self.total = self.tops[-1] if n else 0
        self.n = n
        self._flat: tuple[EndpointState, ...] | None = None
        self._index: dict[str, int] | None = None  # address -> position, built on first use

    @classmethod
    def build(cls, states: Sequence[EndpointState]) -> WeightLine:
        """A line over ``states`` (join order); O(n)."""
        blocks = [list(states[i : i + LOAD]) for i in range(0, len(states), LOAD)]
        return cls(
            blocks, [_sums(block) for block in blocks], [b[-1].seq for b in blocks], len(states)
        )

    @property
    def states(self) -> tuple[EndpointState, ...]:
        """Every endpoint in join order (built on first use: O(n) in C, once per line)."""
        flat = self._flat
        if flat is None:
            flat = self._flat = tuple(chain.from_iterable(self.blocks))
        return flat

    def draw(self, uniform: float) -> EndpointState:
        """The owner of ``floor(uniform * W)``; O(log n), two bisections in C.

        ``uniform * W < W`` for ``uniform < 1`` while ``W < 2**53`` (weights are at most 10**6,
        so any pool below 9 * 10**9 endpoints). ``math.floor`` is ``int`` for a float >= 0,
        in a third of the time (~13 ns against ~42 ns: ``int`` is a type call; issue 15)."""
        point = floor(uniform * self.total)
        tops = self.tops
        block = bisect_right(tops, point)
        if block:
            point -= tops[block - 1]
        return self.blocks[block][bisect_right(self.sums[block], point)]

    def _locate(self, state: EndpointState) -> tuple[int, int] | None:
        """``(block, index)`` of ``state`` on this line, or None if it is not on it."""
        block = bisect_left(self.last_seqs, state.seq)
        if block == len(self.blocks):
            return None
        members = self.blocks[block]
        index = bisect_left(members, state.seq, key=_seq)
        if index < len(members) and members[index] is state:
            return block, index
        return None

    def start_of(self, state: EndpointState) -> tuple[int, int] | None:
        """``(start, weight)`` of ``state``'s interval on the line, or None."""
        found = self._locate(state)
        if found is None:
            return None
        block, index = found
        sums = self.sums[block]
        start = (self.tops[block - 1] if block else 0) + (sums[index - 1] if index else 0)
        return start, sums[index] - (sums[index - 1] if index else 0)

    def at(self, point: int) -> EndpointState:
        """The owner of the integer ``point`` in ``[0, W)``."""
        block = bisect_right(self.tops, point)
        if block:
            point -= self.tops[block - 1]
        return self.blocks[block][bisect_right(self.sums[block], point)]

    @property
    def weights(self) -> array[int]:
        """Every endpoint's weight, in join order (O(n), for tests and diagnostics)."""
        return array("q", map(_weight, self.states))

    def draw_excluding(
        self, rng: _random.Random, avoid: Collection[str], weighted: bool = True
    ) -> EndpointState | None:
        """An exact draw among the endpoints not in ``avoid`` (by weight, or uniform), or None
        if every one is avoided, as ``AliasTable.draw_excluding``: the avoided intervals are cut
        out of the line and a uniform integer over what is left is shifted past them. The
        address index is built on first use (O(n) in C, once per line); then O(a log a +
        a log n) for a = ``len(avoid)``."""
        index = self._index
        if index is None:
            index = self._index = {s.endpoint.address: i for i, s in enumerate(self.states)}
        cut: list[tuple[int, int]] = []
        items: Collection[object] = avoid  # compiled, a Collection[str] loop checks each item
        for address in {a for a in items if isinstance(a, str) and a in index}:
            if weighted:
                found = self.start_of(self.states[index[address]])
                assert found is not None
                cut.append(found)
            else:
                cut.append((index[address], 1))
        cut.sort()
        left = (self.total if weighted else self.n) - sum(size for _, size in cut)
        if left <= 0:
            return None
        point = rng.randrange(left)
        for start, size in cut:
            if start <= point:
                point += size  # past the avoided interval
            else:
                break
        return self.at(point) if weighted else self.states[point]

    def changed(
        self,
        removed: Sequence[EndpointState],
        added: Sequence[EndpointState],
        reweighted: Sequence[EndpointState],
    ) -> WeightLine:
        """A new line with these changes (join order kept); the blocks not touched are shared.

        O((a + r + w) * (log n + LOAD) + n / LOAD) for a, r, w endpoints added, removed and
        re-weighted: each touched block is copied and re-summed once.
        """
        blocks, sums, lasts = list(self.blocks), list(self.sums), list(self.last_seqs)
        fresh: set[int] = set()  # ids of the block lists copied in this change

        def own(block: int) -> list[EndpointState]:
            members = blocks[block]
            if id(members) not in fresh:
                members = blocks[block] = list(members)
                fresh.add(id(members))
            return members

        for state in removed:
            block = bisect_left(lasts, state.seq)
            members = own(block)
            index = bisect_left(members, state.seq, key=_seq)
            assert members[index] is state
            del members[index]
            if members:
                lasts[block] = members[-1].seq
            else:
                del blocks[block], sums[block], lasts[block]
        for state in added:
            block = min(bisect_left(lasts, state.seq), len(blocks) - 1)
            if block < 0:  # the line is empty
                blocks.append([state])
                fresh.add(id(blocks[-1]))
                sums.append([])
                lasts.append(state.seq)
                continue
            members = own(block)
            index = bisect_left(members, state.seq, key=_seq)
            members.insert(index, state)
            lasts[block] = members[-1].seq
            if len(members) > 2 * LOAD:  # split in two
                half = members[LOAD:]
                del members[LOAD:]
                fresh.add(id(half))
                blocks.insert(block + 1, half)
                sums.insert(block + 1, [])
                lasts[block] = members[-1].seq
                lasts.insert(block + 1, half[-1].seq)
        for state in reweighted:
            own(bisect_left(lasts, state.seq))
        for block, members in enumerate(blocks):
            if id(members) in fresh:
                sums[block] = _sums(members)
        n = self.n + len(added) - len(removed)
        if len(blocks) > 2 * (n // LOAD) + 8:  # removals left many small blocks: re-cut
            return WeightLine.build(list(chain.from_iterable(blocks)))
        return WeightLine(blocks, sums, lasts, n)

    def check(self) -> None:
        """Assert the running totals, the block bounds and the join order agree."""
        states = self.states
        assert len(states) == self.n
        assert all(a.seq < b.seq for a, b in pairwise(states))
        assert all(self.blocks) and len(self.blocks) == len(self.sums) == len(self.last_seqs)
        for members, block_sums, last in zip(self.blocks, self.sums, self.last_seqs, strict=True):
            assert list(block_sums) == list(accumulate(s.weight for s in members))
            assert last == members[-1].seq
        assert self.total == sum(state.weight for state in states)
