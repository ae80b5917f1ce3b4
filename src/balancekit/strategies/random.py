"""Random and weighted random choice: a uniform draw, or Vose's alias method for weights.

Both are O(1) per pick and lock-free: the index (a tuple of endpoints, plus an alias table for
weights) is immutable between membership changes and swapped in by one assignment, and a draw is
one call to ``random.Random.random()`` (a single C call, atomic in CPython).

Randomness comes from an injectable :class:`random.Random` (``rng=``) or a seed (``seed=``), so
the same inputs give the same picks in every process.
"""

from __future__ import annotations

import bisect
import random as _random
import time
from array import array
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Final

from mypy_extensions import mypyc_attr

from .._core import NATIVE_TOKENS, NEW_LEASE, SUPER, TOKENS, BalancerBase, Clock, Delta
from .._endpoint import EndpointLike
from .._errors import InvalidOption
from .._lease import Lease
from .._options import describe
from .._state import NATIVE, EndpointState
from ._weight_line import WeightLine

__all__ = ["AliasTable", "Random", "WeightedRandom", "resolve_rng"]

# Final aliases of the counting switch and the compiled build's token source (balancekit._state):
# compiled (mypyc), a Final is a C static, a name imported from another module a dict lookup.
_NATIVE: Final = NATIVE
_NATIVE_TOKENS: Final = NATIVE_TOKENS
_NEW_LEASE: Final = NEW_LEASE

#: Draws a pick makes before it stops rejecting avoided endpoints and cuts them out instead.
AVOID_DRAWS: Final = 16


def resolve_rng(rng: _random.Random | Any | None, seed: int | Any | None) -> _random.Random:
    """Validate the ``rng=`` / ``seed=`` options and return the generator to draw from."""
    if rng is not None and seed is not None:
        raise InvalidOption("pass rng= or seed=, not both (seed a random.Random yourself)")
    if rng is not None:
        if not isinstance(rng, _random.Random):
            raise InvalidOption(f"rng must be a random.Random, not {describe(rng)}")
        return rng
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidOption(f"seed must be an int, not {describe(seed)}")
    return _random.Random(seed)


class AliasTable:
    """Vose's alias method over integer weights: O(n) to build, O(1) per draw.

    The table has one column per endpoint, each of capacity ``W = sum(weights)``: column *i*
    keeps ``threshold[i]`` of it for endpoint *i* and gives the rest to ``alias[i]``. Built in
    integer arithmetic (weights scaled by *n*), so the table reproduces the weights *exactly*:
    endpoint *i* owns ``w_i * n`` of the ``n * W`` units (checked by :meth:`check`). A draw uses
    one 53-bit float (:meth:`random.Random.random`): the column is its integer part after scaling
    by *n*, the fraction chooses between the column's owner and its alias.

    Stored compactly: two ``array('q')`` of n entries (16 bytes per endpoint) beside the tuple
    of endpoints. Source: M. D. Vose, "A linear algorithm for generating random numbers with a
    given distribution", IEEE Trans. Software Eng. 17(9), 1991; Walker (1974).
    """

    __slots__ = ("_prefix", "alias", "n", "states", "threshold", "total", "weights")

    def __init__(self, states: Sequence[EndpointState]) -> None:
        self.states = tuple(states)
        self.weights = array("q", [state.weight for state in self.states])
        self._prefix: tuple[bool, array[int], dict[str, int]] | None = None
        n = self.n = len(self.states)
        total = self.total = sum(self.weights)
        scaled = [weight * n for weight in self.weights]
        self.threshold = array("q", [total] * n)
        self.alias = array("q", range(n))
        small = [i for i in range(n) if scaled[i] < total]
        large = [i for i in range(n) if scaled[i] >= total]
        while small and large:
            less, more = small.pop(), large.pop()
            self.threshold[less] = scaled[less]
            self.alias[less] = more
            scaled[more] -= total - scaled[less]
            (small if scaled[more] < total else large).append(more)
        # Integer arithmetic leaves every remaining column exactly full (threshold = total).

    def draw(self, uniform: float) -> EndpointState:
        """The endpoint for a uniform draw in [0, 1); O(1)."""
        x = uniform * self.n  # < n: for n < 2**53 the product of a float < 1 never rounds up
        column = int(x)
        if (x - column) * self.total < self.threshold[column]:
            return self.states[column]
        return self.states[self.alias[column]]

    def draw_excluding(
        self, rng: _random.Random, avoid: Collection[str], weighted: bool
    ) -> EndpointState | None:
        """An exact draw among the endpoints not in ``avoid`` (by weight, or uniform), or
        ``None`` if every one is avoided; O(a log a + log n) for a = ``len(avoid)``.

        The avoided endpoints' intervals on the cumulative-weight line are cut out: a uniform
        integer over what is left is shifted past every avoided interval that starts at or
        before it, then located by bisection. The prefix sums and the address index are built
        on first use (O(n), once per table), so tables that never need this cost nothing.
        """
        if self._prefix is None or self._prefix[0] != weighted:
            starts = array("q", [0] * self.n)
            running = 0
            for i in range(self.n):
                starts[i] = running
                running += self.weights[i] if weighted else 1
            index = {state.endpoint.address: i for i, state in enumerate(self.states)}
            self._prefix = (weighted, starts, index)
        _, starts, index = self._prefix
        items: Collection[object] = avoid  # compiled, a Collection[str] loop checks each item
        cut = sorted({index[a] for a in items if isinstance(a, str) and a in index})
        sizes = [self.weights[i] if weighted else 1 for i in cut]
        left = (self.total if weighted else self.n) - sum(sizes)
        if left <= 0:
            return None
        point = rng.randrange(left)
        for i, size in zip(cut, sizes, strict=True):
            if starts[i] <= point:
                point += size  # past the avoided interval
            else:
                break
        return self.states[bisect.bisect_right(starts, point) - 1]

    def check(self) -> None:
        """Assert the table gives every endpoint exactly its share ``w_i / W``."""
        n, total = self.n, self.total
        assert len(self.threshold) == len(self.alias) == len(self.weights) == n
        owned = [0] * n
        for column in range(n):
            kept = self.threshold[column]
            assert 0 <= kept <= total and 0 <= self.alias[column] < n
            owned[column] += kept
            owned[self.alias[column]] += total - kept
        assert owned == [weight * n for weight in self.weights]
        assert list(self.weights) == [state.weight for state in self.states]


class _Uniform:
    """Random's index: the eligible endpoints in join order, drawn uniformly.

    A change copies the eligible list into a new tuple (O(n) in C, ~20 us at n = 10,000); the
    address index for :meth:`draw_excluding` is built on first use, once per tuple.
    """

    __slots__ = ("_index", "n", "states")

    def __init__(self, states: tuple[EndpointState, ...]) -> None:
        self.states = states
        self.n = len(states)
        self._index: dict[str, int] | None = None

    def draw_excluding(
        self, rng: _random.Random, avoid: Collection[str], weighted: bool = False
    ) -> EndpointState | None:
        """A uniform draw among the endpoints not in ``avoid`` (None if every one is avoided),
        as :meth:`AliasTable.draw_excluding` with ``weighted=False``: O(a log a)."""
        index = self._index
        if index is None:
            index = self._index = {state.endpoint.address: i for i, state in enumerate(self.states)}
        items: Collection[object] = avoid  # compiled, a Collection[str] loop checks each item
        cut = sorted({index[a] for a in items if isinstance(a, str) and a in index})
        left = self.n - len(cut)
        if left <= 0:
            return None
        point = rng.randrange(left)
        for i in cut:
            if i <= point:
                point += 1  # past the avoided endpoint
            else:
                break
        return self.states[point]

    def check(self) -> None:
        assert self.n == len(self.states)


_EMPTY = WeightLine.build(())


@mypyc_attr(allow_interpreted_subclasses=True)
class _RandomBalancer(BalancerBase):
    """Shared by the random strategies: the generator, the weight line, and ``avoid`` handling.

    The index is a :class:`~balancekit.strategies._weight_line.WeightLine` (the weighted
    strategies: a change costs the blocks it touches) or a :class:`_Uniform` tuple (Random).
    """

    _table: WeightLine

    def __init__(
        self,
        endpoints: Iterable[EndpointLike],
        *,
        rng: _random.Random | Any | None,
        seed: int | Any | None,
        clock: Clock,
    ) -> None:
        self._rng = resolve_rng(rng, seed)
        self._random = self._rng.random
        self._table = _EMPTY
        super().__init__(endpoints, clock=clock)

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        self._table = WeightLine.build(eligible)

    def _apply(self, delta: Delta) -> None:
        if delta.full:
            self._rebuild(self._eligible_list)
        elif delta.size:
            self._table = self._table.changed(delta.removed, delta.added, delta.reweighted)

    def _draw(self, table: WeightLine, avoid: Collection[str]) -> EndpointState:
        """One weighted draw from ``table``, skipping ``avoid`` (exact conditional distribution)."""
        if not table.n:
            raise self._nothing_available()
        random = self._random
        state = table.draw(random())
        if avoid and state.endpoint.address in avoid:
            for _ in range(AVOID_DRAWS):  # rejection sampling keeps the distribution exact
                state = table.draw(random())
                if state.endpoint.address not in avoid:
                    return state
            return self._draw_excluding(table, avoid, weighted=True)
        return state

    def _draw_excluding(
        self, table: WeightLine | _Uniform, avoid: Collection[str], *, weighted: bool
    ) -> EndpointState:
        """The slow path of a pick with ``avoid`` (:meth:`WeightLine.draw_excluding`)."""
        with self._lock:  # the lazily built index, and one generator call sequence
            state = table.draw_excluding(self._rng, avoid, weighted)
        if state is None:
            raise self._nothing_available(avoid)
        return state

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            table = self._table
            assert [id(state) for state in table.states] == [id(s) for s in self._eligible()]
            table.check()


@mypyc_attr(allow_interpreted_subclasses=True)
class WeightedRandom(_RandomBalancer):
    """Each pick is an independent random draw, endpoint *i* with probability ``w_i / W``.

    Use it where many independent clients share a pool and must not fall into step with each
    other (round robin from many clients started together hits the same servers at once), or
    where statistical, not exact, shares are enough. Select and release are lock-free: a draw
    finds ``floor(u * W)`` on the cumulative-weight line of the endpoints in join order, two
    bisections in C over blocks of running totals (O(log n);
    :class:`~balancekit.strategies._weight_line.WeightLine`), and a membership or weight change
    re-sums only the blocks it touches (before issue 11: Vose's alias method, O(1) per draw but
    O(n) in Python per change, ~10 ms at n = 10,000).
    ``avoid`` is honoured by redrawing (up to :data:`AVOID_DRAWS` times, then an exact draw
    that cuts the avoided out in O(a log a + log n), :meth:`AliasTable.draw_excluding`), which
    keeps the distribution over the endpoints not avoided exactly proportional to weight.

    ``rng=`` takes a :class:`random.Random`; ``seed=`` seeds a new one; the same seed gives the
    same picks everywhere.

    >>> from balancekit import Endpoint
    >>> lb = WeightedRandom([Endpoint("a:1", weight=3), "b:1"], seed=7)
    >>> sorted({lb.select().address for _ in range(50)})
    ['a:1', 'b:1']

    Sources: inverse transform sampling on a cumulative array, with blocked prefix sums
    (``_weight_line``). :class:`AliasTable` (Vose 1991, after Walker 1974) is kept for callers
    that draw from a fixed table.
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        rng: _random.Random | Any | None = None,
        seed: int | Any | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(endpoints, rng=rng, seed=seed, clock=clock)
        self._start()

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        table = self._table  # one read: a concurrent rebuild cannot tear it
        if avoid or not table.n or self._health is not None:
            general: Lease = SUPER(WeightedRandom, self).select(context, avoid=avoid)
            return general
        # The common case with BalancerBase.select, _pick and WeightLine.draw inlined (keep
        # them in step): one Python call per select instead of three (issue 15).
        started = self._clock()  # before the pick counts (as BalancerBase.select)
        random = self._random
        point = int(random() * table.total)
        tops = table.tops
        block = bisect.bisect_right(tops, point)
        if block:
            point -= tops[block - 1]
        state = table.blocks[block][bisect.bisect_right(table.sums[block], point)]
        if _NATIVE:  # counted where this build makes it atomic (balancekit._state)
            token = _NATIVE_TOKENS.take()
            state.n_selected += 1
        else:
            token = next(TOKENS)
            next(state.selected)
        self._outstanding[token] = state
        if state.retired:  # removed since we read the table: BalancerBase._select_again
            return self._select_again(state, token, started, context, avoid)
        if _NATIVE:  # a native class: one C call
            return Lease(state.endpoint, token, started)
        lease = _NEW_LEASE(Lease)  # pure Python: ~40 ns less than calling the class (_core)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = started
        return lease

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        table = self._table  # one read: a concurrent rebuild cannot tear it
        if not avoid and table.n:
            return table.draw(self._random())
        return self._draw(table, avoid)


@mypyc_attr(allow_interpreted_subclasses=True)
class Random(_RandomBalancer):
    """Each pick is an independent uniform draw over the endpoints that are up; weights ignored.

    Use it for identical servers when many independent clients must not fall into step, or as
    the baseline other strategies are measured against. Select and release are O(1) and
    lock-free. ``avoid`` is honoured by redrawing, then by an exact uniform draw over the rest
    in O(a log a) for a avoided (:meth:`AliasTable.draw_excluding`).

    >>> lb = Random(["a:1", "b:1", "c:1"], seed=1)
    >>> lb.select().address in {"a:1", "b:1", "c:1"}
    True
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        rng: _random.Random | Any | None = None,
        seed: int | Any | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._uniform = _Uniform(())
        super().__init__(endpoints, rng=rng, seed=seed, clock=clock)
        self._start()

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        self._uniform = _Uniform(tuple(eligible))  # weights ignored: a tuple is the index

    def _apply(self, delta: Delta) -> None:
        if delta.full or delta.added or delta.removed:  # a re-weighting changes nothing here
            self._uniform = _Uniform(tuple(self._eligible_list))  # O(n) in C

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        states = self._uniform.states  # one read: a concurrent rebuild cannot tear it
        if avoid or not states or self._health is not None:
            general: Lease = SUPER(Random, self).select(context, avoid=avoid)
            return general
        # The common case with BalancerBase.select and _pick inlined (keep them in step): one
        # Python call per select instead of two (issue 15).
        started = self._clock()  # before the pick counts (as BalancerBase.select)
        random = self._random
        state = states[int(random() * len(states))]
        if _NATIVE:  # counted where this build makes it atomic (balancekit._state)
            token = _NATIVE_TOKENS.take()
            state.n_selected += 1
        else:
            token = next(TOKENS)
            next(state.selected)
        self._outstanding[token] = state
        if state.retired:  # removed since we read the tuple: BalancerBase._select_again
            return self._select_again(state, token, started, context, avoid)
        if _NATIVE:  # a native class: one C call
            return Lease(state.endpoint, token, started)
        lease = _NEW_LEASE(Lease)  # pure Python: ~40 ns less than calling the class (_core)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = started
        return lease

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        states = self._uniform.states
        n = len(states)
        if not n:
            raise self._nothing_available()
        random = self._random
        state = states[int(random() * n)]
        if avoid and state.endpoint.address in avoid:
            for _ in range(AVOID_DRAWS):
                state = states[int(random() * n)]
                if state.endpoint.address not in avoid:
                    return state
            return self._draw_excluding(self._uniform, avoid, weighted=False)
        return state

    def _check_invariants(self) -> None:
        BalancerBase._check_invariants(self)
        with self._lock:
            uniform = self._uniform
            assert [id(state) for state in uniform.states] == [id(s) for s in self._eligible()]
            uniform.check()
