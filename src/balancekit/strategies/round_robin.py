"""Round robin and smooth weighted round robin: a counter over a precomputed schedule.

Both are O(1) per pick and lock-free: the schedule is an immutable tuple swapped in by one
assignment when membership changes, and the position comes from ``next()`` on an
``itertools.count`` (atomic in CPython). Smooth WRR on a large pool steps NGINX's loop online
instead, so that a membership change costs what changed (issue 11; see WeightedRoundRobin).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Final, NamedTuple

from mypy_extensions import mypyc_attr

from .._core import (
    NATIVE_TOKENS,
    NEW_LEASE,
    NEXT,
    SUPER,
    TOKENS,
    BalancerBase,
    Clock,
    Delta,
    bind_pure,
)
from .._endpoint import EndpointLike
from .._errors import InvalidOption
from .._lease import Lease
from .._options import describe
from .._state import NATIVE, EndpointState, count_value
from .edf import EdfByWeight
from .smooth import (
    LAP_LIMIT,
    Lap,
    LapFinder,
    SmoothOnline,
    SmoothWeighted,
    smooth_schedule,
    smooth_weighted_sequence,
)

__all__ = ["SCHEDULE_LIMIT", "RoundRobin", "WeightedRoundRobin", "smooth_weighted_sequence"]

# Final aliases of the counting switch and the compiled build's token source (balancekit._state):
# compiled (mypyc), a Final is a C static, a name imported from another module a dict lookup.
_NATIVE: Final = NATIVE
_NATIVE_TOKENS: Final = NATIVE_TOKENS
_NEW_LEASE: Final = NEW_LEASE
# The pure build's positions (_ScheduleBalancer._install): compiled, Finals are C statics.
_chain: Final = itertools.chain
_cycle: Final = itertools.cycle

#: The most instance attributes whose keys CPython 3.11 shares among a class's instances (see
#: ``_ScheduleBalancer.__init__``).
MAX_SHARED_ATTRIBUTES: Final = 29

#: Most picks WeightedRoundRobin precomputes (a transient after a change plus one cycle); past
#: it, picks are generated online under the lock in O(k + log n).
SCHEDULE_LIMIT = 1 << 16
#: Pools of up to this many endpoints are rebuilt on every change (a schedule when the cycle
#: fits :data:`SCHEDULE_LIMIT`, else :class:`SmoothWeighted` from the carried state).
SMALL_POOL = 64
#: Larger pools precompute only while ``cycle * (distinct weights + 1)`` stays within this (a
#: change then costs ~1 ms); past it NGINX's loop runs online (:class:`SmoothOnline`), and a
#: change costs O(log n) per endpoint changed (issue 11).
PRECOMPUTE_BUDGET = 2048


def rotate_past(
    states: Sequence[EndpointState], counter: Iterator[int], avoid: Collection[str]
) -> EndpointState | None:
    """The next of ``states`` by ``counter`` whose address is not in ``avoid`` (None if every
    one is): round robin over the endpoints not avoided. Within a cycle of the counter each is
    returned once and each avoided one passed over once, so picks share exactly among the rest;
    each value passed over is a distinct avoided address (without concurrent picks), so this is
    O(min(len(avoid), n)). What an avoided pick of the schedule strategies falls back to.
    """
    n = len(states)
    for _ in range(n):
        position: int = NEXT(counter)
        state = states[position % n]
        if state.endpoint.address not in avoid:
            return state
    return None


def _resumed(kept: tuple[int, int, int] | None, state: EndpointState) -> int:
    """The ``current_weight`` ``state`` goes on from: ``kept`` = (weight, current, reweights)
    as carried, if it was reached under the weight ``state`` has now and its configured weight
    has not changed since (4 -> 1 -> 4 while down is a new peer to NGINX); else 0."""
    if kept is None or kept[0] != state.weight or kept[2] != state.reweights:
        return 0
    return kept[1]


@mypyc_attr(allow_interpreted_subclasses=True)
class _ScheduleBalancer(BalancerBase):
    """Picks ``schedule[next(counter) % len(schedule)]``; a rebuild keeps the counter running."""

    def __init__(self, endpoints: Iterable[EndpointLike], *, clock: Clock) -> None:
        # Pure Python, keep a balancer's instance attributes (these, BalancerBase's and the
        # strategy's) at most MAX_SHARED_ATTRIBUTES: CPython 3.11 shares a class's attribute
        # keys among its instances only up to 29 names (SHARED_KEYS_MAX_SIZE, 30, in
        # Objects/dictobject.c; a 30th makes each instance's dict a dict of its own), and only
        # with shared keys is ``self._fast`` a LOAD_ATTR_INSTANCE_VALUE; else every attribute
        # read of the hot paths is the slower LOAD_ATTR_WITH_HINT. WeightedRoundRobin had 32
        # (issue 15): rarely read attributes are grouped (_fast_mark, _Book) or derived
        # (_online). tests/strategies/test_schedule_attributes.py.
        super().__init__(endpoints, clock=clock)
        self._counter = itertools.count()
        self._turns = 0  # the compiled build's part of the counter (balancekit._state)
        self._fallback = itertools.count()  # avoided picks' own rotation (_not_avoided)
        self._schedule: tuple[EndpointState, ...] = ()
        # Pure Python, while ``_schedule`` is set: that schedule and the positions the next picks
        # take in it, an iterator in C cycling over its indices from where the count of picks
        # stood when it was installed (so picks follow ``schedule[turn % len(schedule)]`` as
        # before, issue 15). One ``next`` of it replaces the counter's ``next``, ``len`` and
        # ``%`` (a new int per pick past 256): RoundRobin's select + release -6 % instructions
        # at N = 10 and -9 % at 10,000, -2 % and -6 % in time (docs/benchmarks.md).
        # The picks made through it are folded into the count under the lock (_fold). Compiled,
        # ``_turns`` is a native int and this stays None.
        self._fast: tuple[tuple[EndpointState, ...], Iterator[int]] | None = None
        # The index the positions started at (or were folded at), and the count of picks then
        # (that index of the schedule). One attribute for the two (below).
        self._fast_mark = (0, 0)
        self._ring: tuple[EndpointState, ...] = ()
        self._smooth: SmoothOnline | None = None  # NGINX's loop, stepped online (large pools)
        # While online: the cycle found in its picks since the last change (then the picks are
        # a lookup in ``_schedule``), or what looks for one (issue 15; see smooth.Lap).
        self._lap: Lap | None = None
        self._finder: LapFinder | None = None

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        # The common case with BalancerBase.select and _pick inlined (keep the two in step):
        # one Python call per select instead of two (three for smooth WRR), measured at N=10
        # ~60 ns less for RoundRobin and ~200 ns less for WeightedRoundRobin.
        # NEXT, clock typed Any: see _core.NEXT (compiled, no name lookup, no reboxing)
        # These are the compiled build's steps; the pure-Python build binds _select_pure in
        # this method's place at import (below the class), so neither tests the build per pick.
        schedule = self._schedule  # one read: a concurrent rebuild cannot tear it
        if avoid or not schedule or self._health is not None:
            if self._smooth is not None and not avoid and self._health is None:
                return self._select_online(context)  # (one call less than through below)
            return self._select_slowly(context, avoid)
        clock: Any = self._clock  # LOAD_ATTR is specialised by 3.11, LOAD_METHOD of it is not
        started = clock()  # before the pick counts (a clock that raises: nothing counted)
        position = self._turns  # (int: compiled, a native index and remainder)
        self._turns = position + 1
        state = schedule[position % len(schedule)]
        token = _NATIVE_TOKENS.take()
        state.n_selected += 1  # counted where this build makes it atomic (balancekit._state)
        self._outstanding[token] = state
        if state.retired:  # removed since we read the schedule: BalancerBase._select_again
            return self._select_again(state, token, started, context, avoid)
        return Lease(state.endpoint, token, started)  # a native class: one C call

    def _select_pure(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """:meth:`select` in the pure-Python build, bound in its place at import: the same
        steps, with the position taken from the schedule's positions (``_fast``: None while
        there is no schedule *or* a health tracker is attached, so one test covers both),
        counted in the :func:`itertools.count` parts (balancekit._state), and the lease built
        without its ``__init__`` frame. Keep the two in step."""
        fast = self._fast  # one read: the schedule with its positions (a rebuild swaps both)
        if avoid or fast is None:
            if self._smooth is not None and not avoid and self._health is None:
                return self._select_online(context)  # (one call less than through below)
            return self._select_slowly(context, avoid)
        clock = self._clock
        started = clock()
        schedule, positions = fast
        state = schedule[NEXT(positions)]
        token = NEXT(TOKENS)
        NEXT(state.selected)
        self._outstanding[token] = state
        if state.retired:  # removed since we read the schedule: BalancerBase._select_again
            return self._select_again(state, token, started, context, avoid)
        lease = _NEW_LEASE(Lease)  # pure Python: ~40 ns less than calling the class (_core)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = started
        return lease

    def _select_slowly(self, context: Any, avoid: Collection[str]) -> Lease:
        """``select`` off the fast path (avoid, a health tracker, no precomputed schedule) and
        off NGINX's loop stepped online: BalancerBase's."""
        # SUPER (_core): super() would give this function a __class__ cell, copied in on every
        # call (COPY_FREE_VARS); naming BalancerBase would skip a mixin between the two.
        general: Lease = SUPER(_ScheduleBalancer, self).select(context, avoid=avoid)
        return general

    def _install(self, schedule: tuple[EndpointState, ...]) -> None:
        """Make ``schedule`` the fast path's (``()``: none), picked from the turn reached:
        position ``p`` of the count of picks takes ``schedule[p % len(schedule)]``. Under the
        lock. Pure Python, the picks made on the schedule being replaced are folded first.
        Installing the schedule already installed does nothing: a fold happens only at a change
        (picks that reached the general path before the cycle's schedule was installed each
        install it again; folding there let a lock-free pick racing it take a position twice,
        found by review5)."""
        if schedule and schedule is self._schedule:
            return
        if not _NATIVE:
            turn = self._turns_taken()  # (folds)
            if schedule and self._health is None:  # (_select_pure's one test covers both)
                length = len(schedule)
                at = turn % length
                self._fast_mark = (at, turn)
                # the indices from ``at`` round to ``at - 1``, then that lap again and again:
                # O(1) to build, and past the first lap a pick's ``next`` is the cycle's alone
                # (the chain was outermost before: one C call more per pick, ~20 instructions)
                self._fast = (schedule, _cycle(_chain(range(at, length), range(at))))
            else:
                self._fast = None
        self._schedule = schedule

    def _refresh(self) -> None:
        """A health tracker attached (or the first build): pure Python, the picks leave the
        schedule's positions (``_fast``, folded into the count first) for the general path,
        which consults the tracker; ``_install`` keeps them off while one is attached."""
        if not _NATIVE and self._health is not None:
            with self._lock:
                self._fold()
                self._fast = None
        super()._refresh()

    def _fold(self) -> None:
        """Pure Python, under the lock: count the picks made through ``_fast``'s positions
        since it was installed or last folded (modulo the schedule's length: every user of the
        count reads it modulo the schedule's cycle, or before the cycle began), and go on from
        where they stopped. One ``next`` of the positions tells where that is; a pick racing
        this one may take the same index (it reads the schedule being replaced, as any pick
        racing a change may)."""
        fast = self._fast
        if fast is None:
            return
        schedule, positions = fast
        length = len(schedule)
        at: int = NEXT(positions)
        # the count goes on from there (a pick racing this may count on the old count object)
        turn = count_value(self._counter) + (at - self._fast_mark[0]) % length
        self._counter = itertools.count(turn)
        self._fast_mark = (at, turn)
        self._fast = (schedule, _cycle(_chain(range(at, length), range(at))))

    def _turn(self) -> int:
        """The counter's next value (the picks' position), counted in the part this build makes
        atomic (balancekit._state); ``select``'s fast path inlines it."""
        if _NATIVE:
            position = self._turns
            self._turns = position + 1
            return position
        # Pure Python, under the lock, as every install and fold of the fast path's positions
        # is: a pick that read no schedule before one was installed (at the end of a
        # transient, or when a cycle is found) must not take a position the fast path takes
        # too (found by review5). Only the general paths come here (RLock: reentrant).
        with self._lock:
            fast = self._fast
            if fast is not None:  # a schedule installed: the next of its positions, as the
                at: int = NEXT(fast[1])  # position of the count it stands for
                start, turn = self._fast_mark
                return turn + (at - start) % len(fast[0])
            counted: int = NEXT(self._counter)
            return counted

    def _turns_taken(self) -> int:
        """How many values the count of picks has given (its parts; pure Python, the picks
        made through ``_fast`` folded in first, under the lock)."""
        if not _NATIVE:
            self._fold()
        return count_value(self._counter) + self._turns

    def _select_online(self, context: Any) -> Lease:
        """``select`` while NGINX's loop is stepped online: the pick under the lock, inlined."""
        clock: Any = self._clock
        started = clock()  # before the pick counts (as BalancerBase.select)
        lock = self._lock
        lock.acquire()
        try:
            smooth = self._smooth  # (never empty: no eligible endpoint leaves online mode)
            state = self._step_online(smooth) if smooth is not None else self._pick(context, ())
        finally:
            lock.release()
        if _NATIVE:  # counted where this build makes it atomic (balancekit._state)
            token = _NATIVE_TOKENS.take()
            state.n_selected += 1
        else:
            token = NEXT(TOKENS)
            NEXT(state.selected)
        self._outstanding[token] = state
        if state.retired:  # removed since: BalancerBase._select_again
            return self._select_again(state, token, started, context, ())
        if _NATIVE:  # a native class: one C call
            return Lease(state.endpoint, token, started)
        lease = _NEW_LEASE(Lease)  # pure Python: ~40 ns less than calling the class (_core)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = started
        return lease

    def _step_online(self, smooth: SmoothOnline) -> EndpointState:
        """One pick of NGINX's loop stepped online (under the lock), watched for a whole cycle:
        once one is seen, the picks become a lookup (``_schedule`` = ``Lap.rotated``) until the
        next change, and the SmoothOnline waits where the cycle starts (``_settle``)."""
        lap = self._lap
        if lap is not None:  # a cycle was found since the caller read the schedule
            return self._scheduled(lap.rotated)
        # a method call, not next(): compiled, a direct call of the native method
        state = smooth.__next__()
        if _NATIVE:  # self._turn() inlined: every online pick takes this
            position = self._turns
            self._turns = position + 1
        else:
            position = NEXT(self._counter)
        finder = self._finder
        if finder is not None:
            cycle = finder.push(state)
            if cycle is not None:
                self._finder = None
                lap = smooth.lap(cycle, position + 1)
                if lap is not None:
                    self._lap = lap
                    self._install(lap.rotated)
            elif finder.exhausted:
                self._finder = None
        return state

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        schedule = self._schedule  # one read: a concurrent rebuild cannot tear it
        if not schedule:
            return self._pick_online(avoid)
        state = self._scheduled(schedule)
        if avoid and state.endpoint.address in avoid:
            return self._not_avoided(avoid)
        return state

    def _scheduled(self, schedule: tuple[EndpointState, ...]) -> EndpointState:
        """The next pick of ``schedule`` (read by the caller), at the position the fast path
        would take."""
        if not _NATIVE:
            fast = self._fast
            if fast is not None and fast[0] is schedule:
                at: int = NEXT(fast[1])
                return schedule[at]
        position = self._turn()
        return schedule[position % len(schedule)]

    def _not_avoided(self, avoid: Collection[str]) -> EndpointState:
        """What a pick returns when its scheduled endpoint is avoided: round robin over the
        endpoints not avoided, from a counter of its own over the eligible endpoints in join
        order (each such pick takes values until one names an endpoint not avoided).

        Within a cycle of the counter every endpoint not avoided is returned once and each
        avoided one is passed over once, so such picks share exactly among the rest. (A walk
        from the pick's own position took, in round robin, whose schedule is this ring, the
        avoided endpoint's successor every time.) Every value passed over is a distinct
        avoided address (without concurrent picks), so this is O(min(len(avoid), n)), never a
        walk along the schedule.
        """
        state = rotate_past(self._ring, self._fallback, avoid)  # one read of the ring
        if state is None:
            raise self._nothing_available(avoid)
        return state

    def _set_ring(self, eligible: list[EndpointState]) -> None:
        """Record the eligible endpoints in join order, for :meth:`_not_avoided`."""
        self._ring = tuple(eligible)

    def _pick_online(self, avoid: Collection[str]) -> EndpointState:
        """The pick when there is no precomputed schedule (none is eligible, by default)."""
        raise self._nothing_available()

    def _check_invariants(self) -> None:
        super()._check_invariants()
        eligible = {id(state) for state in self._eligible()}
        assert all(id(state) in eligible for state in self._schedule)
        fast = self._fast
        if _NATIVE:
            assert fast is None
        else:  # the fast path's schedule is the schedule, its next index where the count is
            assert (fast is None) == (not self._schedule or self._health is not None)
            if fast is not None:
                assert fast[0] is self._schedule
                with self._lock:
                    turn = self._turns_taken()  # (folds: _fast is a new iterator after)
                    schedule, positions = self._fast or fast
                    at = NEXT(positions)
                    assert at == turn % len(schedule)
                    self._fast = (schedule, _chain((at,), positions))  # as it was


# The pure-Python build tests the build once, here, instead of on every pick (~85 of a round
# robin's ~6,500 instructions per select + release; issue 15). Compiled (mypyc), the class is
# native and its ``select`` is the compiled steps: nothing is rebound.
if not _NATIVE:
    bind_pure(_ScheduleBalancer, "select", _ScheduleBalancer._select_pure)


@mypyc_attr(allow_interpreted_subclasses=True)
class RoundRobin(_ScheduleBalancer):
    """Strict rotation over the endpoints that are up, in the order they joined; weights ignored.

    Use it for identical servers and uniform requests. Select and release are O(1) and take no
    lock. When membership changes the rotation goes on over the new list from the index the
    next pick would have taken in the old one (modulo the new list's length).

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
        self._set_ring(eligible)
        self._rotate_on(tuple(eligible))

    def _apply(self, delta: Delta) -> None:
        if delta.full or delta.added or delta.removed:  # weights are ignored
            ring = tuple(self._eligible_list)  # O(n) in C: ~20 us at n = 10,000
            self._ring = ring
            self._rotate_on(ring)

    def _rotate_on(self, ring: tuple[EndpointState, ...]) -> None:
        """Go on over ``ring`` from the index the next pick would have taken in the old one
        (modulo the new length): the count of picks restarts at that index, in both builds."""
        old = self._schedule
        if old:
            turn = self._turns_taken() % len(old)
            self._counter = itertools.count(0 if _NATIVE else turn)  # (a pick racing this
            self._turns = turn if _NATIVE else 0  # may count on the old count object)
        self._install(ring)


class _Origin(NamedTuple):
    """Where the smooth WRR sequence restarted (the last rebuild) and what it is from there."""

    states: tuple[EndpointState, ...]  # the eligible endpoints, in join order
    weights: tuple[int, ...]  # the weights stepped (configured, or slow start's; a change
    # of an endpoint's weight restarts its current_weight at 0)
    currents: tuple[int, ...]  # NGINX's current_weight of each at the restart
    base: int  # the position counter's value at the restart
    transient: tuple[int, ...]  # picks (indices into states) before the cycle begins
    cycle: tuple[int, ...]  # then these, forever
    rotated: tuple[EndpointState, ...]  # the cycle laid out so position p picks rotated[p % L]
    stepper: SmoothWeighted | None  # instead of transient/cycle: stepped online, under the lock


class _Book:
    """What WeightedRoundRobin's NGINX order keeps between changes, read and written at changes
    only: one instance attribute for the two, so a balancer has few enough for CPython to share
    its attribute keys (see ``_ScheduleBalancer.__init__``)."""

    __slots__ = ("carried", "weight_counts")

    def __init__(self) -> None:
        # not eligible: (weight, current, reweights), see _resumed
        self.carried: dict[str, tuple[int, int, int]] = {}
        self.weight_counts: dict[int, int] = {}  # weight -> eligible endpoints


@mypyc_attr(allow_interpreted_subclasses=True)
class WeightedRoundRobin(_ScheduleBalancer):
    """Smooth weighted round robin, exactly as NGINX does it: weights {5,1,1} give a a b a c a a.

    Use it for servers of different capacity and requests of similar cost. Each cycle of
    ``sum(weights) / gcd(weights)`` picks gives every endpoint exactly its share, interleaved
    rather than in bursts. Small pools precompute their picks (up to :data:`SCHEDULE_LIMIT`), so
    a pick is O(1) and lock-free; a longer cycle is stepped online under the lock in
    O(k + log n) for k distinct weights (see :mod:`balancekit.strategies.smooth`). Pools past
    :data:`SMALL_POOL` endpoints whose cycle times (k + 1) exceeds :data:`PRECOMPUTE_BUDGET`
    always step NGINX's loop online (:class:`~balancekit.strategies.smooth.SmoothOnline`): a
    membership change then costs O(log n) per endpoint changed instead of a new schedule
    (~100 ms at 10,000 endpoints), and a pick O(k + log n) under the lock until a whole
    cycle has been picked since the last change; from then on a pick is a lock-free lookup in
    that cycle, as for small pools, and the next change first rotates each weight class past
    the picks made (:class:`~balancekit.strategies.smooth.Lap`, issue 15). Source: NGINX
    ``ngx_http_upstream_round_robin.c``.

    Membership changes, as NGINX makes them at run time (``ngx_http_upstream_zone_module.c``,
    ``ngx_http_upstream_zone_resolve_handler``): every endpoint keeps its ``current_weight``
    across ``add``, ``remove``, ``update``, ``mark_down`` and ``mark_up``, where NGINX keeps the
    surviving peers; a new endpoint starts at 0, as a new peer does; an endpoint whose weight
    changes (``set_weight``, ``update``, a slow start step) starts at 0 again, as NGINX replaces
    a peer whose SRV weight changed; one that is down or ejected keeps its value untouched, as
    NGINX skips a ``down`` peer, unless its configured weight changes meanwhile (even back to
    the same value: 4 -> 1 -> 4), which makes it a new peer at 0 too. The sequence goes on
    from that state, pick for pick as NGINX's loop would (after a short transient it settles
    into a cycle with the exact shares again).
    NGINX's configuration *reload* instead starts every peer at 0: build a new balancer.
    A pick racing a change may come from the old schedule (not counted in the new state).

    ``avoid``: the position advances by one as for any pick; if the scheduled endpoint is
    avoided, the pick is round robin over the endpoints not avoided (:meth:`_not_avoided`):
    O(len(avoid)), where a walk along the schedule could take a whole cycle.

    ``order="envoy"`` gives Envoy's earliest-deadline-first order instead (weights {1, 2} give
    b a b b a b ...; see :mod:`balancekit.strategies.edf`): the same shares, generated online
    under the lock, pick for pick as Envoy's ``EdfScheduler``, which Envoy rebuilds from scratch
    on every host change (so does this: the order restarts). Kept per weight class
    (:class:`~balancekit.strategies.edf.EdfByWeight`): O(log k) per pick for k distinct weights,
    and a change O(log n) per endpoint changed plus O(k), where a rebuild was O(n) (issue 11).

    >>> from balancekit import Endpoint
    >>> lb = WeightedRoundRobin([Endpoint("a:1", weight=5), "b:1", "c:1"])
    >>> "".join(lb.select().address[0] for _ in range(7))
    'aabacaa'
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        order: str | Any = "nginx",
        clock: Clock = time.monotonic,
    ) -> None:
        if order not in ("nginx", "envoy"):
            raise InvalidOption(f'order must be "nginx" or "envoy", not {describe(order)}')
        super().__init__(endpoints, clock=clock)
        self._envoy_order = order == "envoy"
        self._origin: _Origin | None = None
        # what NGINX's loop carries across changes: read and written at changes only
        self._book = _Book()
        self._edf: EdfByWeight | None = None  # order="envoy": Envoy's EDF, by weight class
        self._start()

    def _apply(self, delta: Delta) -> None:
        """Precompute the schedule (small pools: :meth:`_rebuild`), or apply the delta to
        NGINX's loop stepped online, carrying every ``current_weight`` as NGINX does."""
        eligible = self._eligible_list
        if self._envoy_order:  # Envoy rebuilds its EDF scheduler on every change: a restart,
            edf = self._edf  # O(k) over the weight classes, after O(log n) per one changed
            if delta.full or edf is None:
                self._rebuild(eligible)
                return
            for state in [*delta.removed, *delta.reweighted]:
                edf.remove(state, delta.before[id(state)])
            for state in [*delta.reweighted, *delta.added]:
                edf.add(state)
            edf.restart()
            self._set_ring(eligible)
            return
        book = self._book
        if not delta.full and not delta.size:  # a down or unhealthy member changed class only
            for state in delta.left:
                book.carried.pop(state.endpoint.address, None)
            return
        self._settle()  # a cycle's lookup ends: the SmoothOnline catches up first (issue 15)
        counts = book.weight_counts
        if delta.full:
            counts.clear()
            for state in eligible:
                counts[state.weight] = counts.get(state.weight, 0) + 1
        else:
            for state in [*delta.removed, *delta.reweighted]:
                weight = delta.before[id(state)]
                counts[weight] -= 1
                if not counts[weight]:
                    del counts[weight]
            for state in [*delta.reweighted, *delta.added]:
                counts[state.weight] = counts.get(state.weight, 0) + 1
        smooth = self._smooth
        if smooth is not None and delta.full:  # carry every current weight, then start over
            book.carried.update(smooth.currents())
            self._smooth = smooth = None
        n = len(eligible)
        if n:
            cycle = sum(w * c for w, c in counts.items()) // math.gcd(*counts)
            small = n <= SMALL_POOL or cycle * (len(counts) + 1) <= PRECOMPUTE_BUDGET
        if not n or small:  # (a small pool past the limit steps main's SmoothWeighted)
            if smooth is not None:  # leaving online mode: its current weights carry over
                book.carried.update(smooth.currents())
                self._smooth = None
            self._rebuild(list(eligible))
            return
        carried, members = book.carried, self._members
        if smooth is None:  # entering online mode, from the precomputed origin
            before = self._current_weights()
            smooth = SmoothOnline()
            for state in eligible:
                kept = before.get(state.endpoint.address)
                smooth.add(state, _resumed(kept, state))
            book.carried = {
                address: kept
                for address, kept in before.items()
                if address in members and members[address].applied is None
            }
        else:
            for state in delta.removed:
                weight = delta.before[id(state)]
                current = smooth.remove(state, weight)
                if state.cls >= 0:  # still a member (down, ejected): NGINX keeps its value
                    carried[state.endpoint.address] = (weight, current, state.reweights)
            for state in delta.left:
                carried.pop(state.endpoint.address, None)
            for state in delta.reweighted:  # a new weight starts at 0, as a replaced peer
                smooth.remove(state, delta.before[id(state)])
                smooth.add(state, 0)
            for state in delta.added:
                kept = carried.pop(state.endpoint.address, None)
                smooth.add(state, _resumed(kept, state))
        self._origin = None
        self._install(())
        self._ring = tuple(eligible)
        self._smooth = smooth
        self._watch()

    @property
    def _online(self) -> tuple[tuple[EndpointState, ...], Iterator[int], int] | None:
        """A cycle too long to precompute, stepped by :class:`SmoothWeighted` since the last
        rebuild: (the eligible endpoints, the stepper, the cycle's length); else None. Derived
        from ``_origin``, not kept: see ``_ScheduleBalancer.__init__``."""
        origin = self._origin
        if origin is None or origin.stepper is None:
            return None
        return (origin.states, origin.stepper, sum(origin.weights) // math.gcd(*origin.weights))

    def _settle(self) -> None:
        """Before a change (under the lock): bring a SmoothOnline that waits at the start of a
        cycle to the position reached, and go back to stepping it online."""
        self._finder = None
        lap = self._lap
        smooth = self._smooth
        if lap is None or smooth is None:
            return
        self._lap = None
        self._install(())  # (folds the picks made on the lap's schedule)
        smooth.skip(lap, (self._turns_taken() - lap.base) % len(lap.rotated))

    def _watch(self) -> None:
        """After a change in online mode (under the lock): look for the next cycle, O(k)."""
        self._finder = None
        counts = self._book.weight_counts
        if self._smooth is None or not counts:
            return
        divisor = math.gcd(*counts)
        length = sum(weight * count for weight, count in counts.items()) // divisor
        if length <= LAP_LIMIT:
            self._finder = LapFinder(len(self._smooth), divisor, length)

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        self._set_ring(eligible)
        if self._envoy_order:
            self._install(())
            self._edf = EdfByWeight(eligible)
            return
        before = self._current_weights()
        in_rotation = {id(state) for state in eligible}
        self._book.carried = {
            address: carried
            for address, carried in before.items()
            if address in self._members and id(self._members[address]) not in in_rotation
        }
        if not eligible:
            self._origin = None
            self._install(())
            return
        weights = tuple(state.weight for state in eligible)
        currents = [_resumed(before.get(state.endpoint.address), state) for state in eligible]
        base = self._turns_taken()
        states = tuple(eligible)
        found = smooth_schedule(weights, currents, SCHEDULE_LIMIT)
        if found is None:
            stepper = SmoothWeighted(weights, currents)
            origin = _Origin(states, weights, tuple(currents), base, (), (), (), stepper)
            self._origin = origin
            self._install(())
            return
        transient, cycle = found
        length = len(cycle)
        shift = base + len(transient)  # position base + T + m picks cycle[m]
        rotated = tuple(states[cycle[(p - shift) % length]] for p in range(length))
        origin = _Origin(
            states,
            weights,
            tuple(currents),
            base,
            tuple(transient),
            tuple(cycle),
            rotated,
            None,
        )
        self._origin = origin
        self._install(() if transient else rotated)  # a transient is picked by _pick_online

    def _current_weights(self) -> dict[str, tuple[int, int, int]]:
        """NGINX's ``current_weight`` of every endpoint that has one now, by address, with the
        weight it was reached under and the endpoint's ``reweights`` (see :func:`_resumed`);
        O(T + L) from the picks since the last rebuild."""
        result = dict(self._book.carried)
        origin = self._origin
        if origin is None:
            return result
        if origin.stepper is not None:
            currents = origin.stepper.currents()
        else:
            made = self._turns_taken() - origin.base  # picks since the restart
            picks = [0] * len(origin.states)
            transient, cycle = origin.transient, origin.cycle
            for index in transient[:made]:
                picks[index] += 1
            if made > len(transient):
                rounds, rest = divmod(made - len(transient), len(cycle))
                for index in cycle:
                    picks[index] += rounds
                for index in cycle[:rest]:
                    picks[index] += 1
            total = sum(origin.weights)
            currents = [
                current + made * weight - total * taken
                for current, weight, taken in zip(
                    origin.currents, origin.weights, picks, strict=True
                )
            ]
        for state, weight, current in zip(origin.states, origin.weights, currents, strict=True):
            result[state.endpoint.address] = (weight, current, state.reweights)
        return result

    def _pick_online(self, avoid: Collection[str]) -> EndpointState:
        # Each branch reads one attribute once: a rebuild assigns them one after another.
        if self._envoy_order:
            with self._lock:
                edf = self._edf
                if edf is None or len(edf) == 0:  # not `not edf`: compiled, that tests None only
                    raise self._nothing_available()
                state = edf.__next__()  # (compiled: a direct call, see _step_online)
            self._turn()  # only for avoid's rotation
        elif (smooth := self._smooth) is not None:  # NGINX's loop, stepped online (large pools)
            with self._lock:
                # Read again under the lock, from an attribute no test narrowed: after
                # ``self._smooth is not None`` mypy narrowed the attribute, and compiled (mypyc)
                # the read refused with TypeError the None a concurrent rebuild may set
                # meanwhile (review7; tests/strategies/test_wrr_online_flip.py).
                smooth = self._smooth
                if smooth is None:  # the mode changed meanwhile
                    return self._pick(None, avoid)
                state = self._step_online(smooth)
        else:
            origin = self._origin
            if origin is None:
                raise self._nothing_available()
            position = self._turn()
            if origin.stepper is not None:  # a cycle too long to precompute: NGINX's loop
                with self._lock:
                    state = origin.states[NEXT(origin.stepper)]
            elif position - origin.base < len(origin.transient):  # the transient after a change
                state = origin.states[origin.transient[position - origin.base]]
            else:  # then the cycle
                state = origin.rotated[position % len(origin.rotated)]
                with self._lock:  # from now on the lock-free fast path
                    if self._origin is origin:
                        self._install(origin.rotated)
        if avoid and state.endpoint.address in avoid:
            return self._not_avoided(avoid)
        return state

    def _check_invariants(self) -> None:
        super()._check_invariants()
        origin = self._origin
        if self._smooth is not None:
            lap = self._lap
            assert origin is None
            assert self._schedule == () if lap is None else self._schedule is lap.rotated
            self._smooth.check(self._eligible())
            counts: dict[int, int] = {}
            for state in self._eligible():
                counts[state.weight] = counts.get(state.weight, 0) + 1
            assert counts == self._book.weight_counts
        if self._edf is not None:
            self._edf.check(self._eligible())
        if self._envoy_order or origin is None or origin.stepper is not None:
            return
        assert [id(s) for s in origin.states] == [id(s) for s in self._eligible()]
        assert self._schedule in ((), origin.rotated)
        divisor = math.gcd(*origin.weights)
        seen: dict[int, int] = {}
        for state in origin.rotated:
            seen[id(state)] = seen.get(id(state), 0) + 1
        for state, weight in zip(origin.states, origin.weights, strict=True):
            assert seen.get(id(state), 0) == weight // divisor
