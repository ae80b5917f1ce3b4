"""Round robin and smooth weighted round robin: a counter over a precomputed schedule.

Both are O(1) per pick and lock-free: the schedule is an immutable tuple swapped in by one
assignment when membership changes, and the position comes from ``next()`` on an
``itertools.count`` (atomic in CPython).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

from .._core import TOKENS, BalancerBase, Clock, new_lease
from .._endpoint import EndpointLike
from .._errors import InvalidOption
from .._lease import Lease
from .._state import EndpointState
from .edf import edf_sequence

__all__ = ["SCHEDULE_LIMIT", "RoundRobin", "WeightedRoundRobin", "smooth_weighted_sequence"]

#: Longest cycle WeightedRoundRobin precomputes; past it, picks are generated online in O(k).
SCHEDULE_LIMIT = 1 << 16


class _ScheduleBalancer(BalancerBase):
    """Picks ``schedule[next(counter) % len(schedule)]``; a rebuild keeps the counter running."""

    def __init__(self, endpoints: Iterable[EndpointLike], *, clock: Clock) -> None:
        super().__init__(endpoints, clock=clock)
        self._counter = itertools.count()
        self._schedule: tuple[EndpointState, ...] = ()

    def select(self, context: Any = None, *, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        schedule = self._schedule  # one read: a concurrent rebuild cannot tear it
        if avoid or not schedule or self._health is not None:
            return super().select(context, avoid=avoid)
        # The common case with BalancerBase.select and _pick inlined (keep the two in step):
        # one Python call per select instead of two (three for smooth WRR), measured at N=10
        # ~60 ns less for RoundRobin and ~200 ns less for WeightedRoundRobin.
        state = schedule[next(self._counter) % len(schedule)]
        token = next(TOKENS)
        next(state.selected)
        self._outstanding[token] = state
        if state.retired:  # removed since we read the schedule: BalancerBase._select_again
            return self._select_again(state, token, context, avoid)
        return new_lease(Lease, (state.endpoint, token, self._clock()))

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        schedule = self._schedule  # one read: a concurrent rebuild cannot tear it
        if not schedule:
            return self._pick_online(avoid)
        position = next(self._counter)
        state = schedule[position % len(schedule)]
        if avoid and state.endpoint.address in avoid:
            for step in range(1, len(schedule)):
                state = schedule[(position + step) % len(schedule)]
                if state.endpoint.address not in avoid:
                    return state
            raise self._nothing_available(avoid)
        return state

    def _pick_online(self, avoid: Collection[str]) -> EndpointState:
        """The pick when there is no precomputed schedule (none is eligible, by default)."""
        raise self._nothing_available()

    def _check_invariants(self) -> None:
        super()._check_invariants()
        eligible = {id(state) for state in self._eligible()}
        assert all(id(state) in eligible for state in self._schedule)


class RoundRobin(_ScheduleBalancer):
    """Strict rotation over the endpoints that are up, in the order they joined; weights ignored.

    Use it for identical servers and uniform requests. Select and release are O(1) and take no
    lock. When membership changes the rotation goes on from the same counter over the new list.

    >>> lb = RoundRobin(["a:1", "b:1", "c:1"])
    >>> [lb.select().address for _ in range(4)]
    ['a:1', 'b:1', 'c:1', 'a:1']
    """

    def __init__(
        self, endpoints: Iterable[EndpointLike] = (), *, clock: Clock = time.monotonic
    ) -> None:
        super().__init__(endpoints, clock=clock)
        self._start()

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        self._schedule = tuple(eligible)


def smooth_weighted_sequence(weights: Sequence[int]) -> Iterator[int]:
    """Yield, forever, the indices NGINX's smooth weighted round robin picks for ``weights``.

    NGINX (``ngx_http_upstream_get_peer`` in ``ngx_http_upstream_round_robin.c``, 2012): each
    step adds every peer's weight to its ``current``, picks the largest ``current`` (the first in
    list order on a tie) and subtracts the total weight from it. Weights {5, 1, 1} give
    ``a a b a c a a``; in every cycle of ``sum(weights)`` steps peer *i* is picked exactly
    ``weights[i]`` times, spread as evenly as possible.

    NGINX's loop is O(n) per step. Here, after step *t* a peer picked *c* times has
    ``current = t*w - W*c``, so among peers of equal weight the one picked least (then the first
    in order) leads, and they take turns in list order. Only one candidate per distinct weight
    needs comparing: O(k) per step for k distinct weights, O(1) when all weights are equal. The
    weights are divided by their gcd first, which leaves every comparison, and so the sequence,
    unchanged.
    """
    if not weights or min(weights) < 1:
        raise ValueError("smooth_weighted_sequence needs one or more positive weights")
    divisor = math.gcd(*weights)
    reduced = [weight // divisor for weight in weights]
    total = sum(reduced)
    by_weight: dict[int, list[int]] = {}
    for index, weight in enumerate(reduced):
        by_weight.setdefault(weight, []).append(index)
    classes = [(weight, members, len(members)) for weight, members in by_weight.items()]
    picks = [0] * len(classes)
    step = 0
    while True:
        step += 1
        best_class = -1
        best_value = best_index = 0
        for number, (weight, members, size) in enumerate(classes):
            taken = picks[number]
            value = step * weight - total * (taken // size)
            index = members[taken % size]
            if best_class < 0 or value > best_value or (value == best_value and index < best_index):
                best_class, best_value, best_index = number, value, index
        picks[best_class] += 1
        yield best_index
        if step == total:  # every peer has had exactly its weight: all currents are 0 again
            step = 0
            picks = [0] * len(classes)


class WeightedRoundRobin(_ScheduleBalancer):
    """Smooth weighted round robin, exactly as NGINX does it: weights {5,1,1} give a a b a c a a.

    Use it for servers of different capacity and requests of similar cost. Each cycle of
    ``sum(weights) / gcd(weights)`` picks gives every endpoint exactly its share, interleaved
    rather than in bursts. Cycles up to :data:`SCHEDULE_LIMIT` picks are precomputed, so a pick is
    O(1) and lock-free; longer ones are generated online under the lock in O(k) for k distinct
    weights (see :func:`smooth_weighted_sequence`). A membership or weight change starts a new
    schedule; the position counter runs on. Source: NGINX ``ngx_http_upstream_round_robin.c``.

    ``order="envoy"`` gives Envoy's earliest-deadline-first order instead (weights {1, 2} give
    b a b b a b ...; see :mod:`balancekit.strategies.edf`): the same shares, generated online
    under the lock in O(log n) per pick, pick for pick as Envoy's ``EdfScheduler``.

    >>> from balancekit import Endpoint
    >>> lb = WeightedRoundRobin([Endpoint("a:1", weight=5), "b:1", "c:1"])
    >>> "".join(lb.select().address[0] for _ in range(7))
    'aabacaa'
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        order: str = "nginx",
        clock: Clock = time.monotonic,
    ) -> None:
        if order not in ("nginx", "envoy"):
            raise InvalidOption(f'order must be "nginx" or "envoy", not {order!r}')
        super().__init__(endpoints, clock=clock)
        self._envoy_order = order == "envoy"
        self._online: tuple[tuple[EndpointState, ...], Iterator[int], int] | None = None
        self._start()

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        if not eligible:
            self._online, self._schedule = None, ()
            return
        weights = [state.weight for state in eligible]
        if self._envoy_order:  # within sum(w) / min(w) + n picks every endpoint comes round
            bound = sum(weights) // min(weights) + len(weights)
            self._schedule = ()
            self._online = (tuple(eligible), edf_sequence(weights), bound)
            return
        cycle = sum(weights) // math.gcd(*weights)
        sequence = smooth_weighted_sequence(weights)
        if cycle <= SCHEDULE_LIMIT:
            self._online = None
            self._schedule = tuple(eligible[index] for index in itertools.islice(sequence, cycle))
        else:
            self._schedule = ()
            self._online = (tuple(eligible), sequence, cycle)

    def _pick_online(self, avoid: Collection[str]) -> EndpointState:
        online = self._online
        if online is None:
            raise self._nothing_available()
        states, sequence, cycle = online
        with self._lock:
            for _ in range(cycle):
                state = states[next(sequence)]
                if state.endpoint.address not in avoid:
                    return state
        raise self._nothing_available(avoid)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        if self._online is None and self._schedule:
            weights = [state.weight for state in self._eligible()]
            divisor = math.gcd(*weights)
            counts: dict[int, int] = {}
            for state in self._schedule:
                counts[id(state)] = counts.get(id(state), 0) + 1
            for state in self._eligible():
                assert counts.get(id(state), 0) == state.weight // divisor
