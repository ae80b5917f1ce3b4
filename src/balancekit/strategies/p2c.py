"""Power of two choices: two distinct random candidates drawn by weight, the less loaded wins.

Mitzenmacher showed that choosing the less loaded of two random servers, instead of one random
server, cuts the maximum load from about ``log n / log log n`` to ``log log n / log 2`` above the
mean ("The Power of Two Choices in Randomized Load Balancing", IEEE TPDS 12(10), 2001). It needs
no global view, so it stays correct with stale load information and many independent clients,
which is why Finagle, linkerd2-proxy (tower ``balance::p2c``) and Envoy's ``LEAST_REQUEST``
(``choice_count`` 2) use it.
"""

from __future__ import annotations

import math
import random as _random
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable
from math import floor
from typing import Any, Final

from mypy_extensions import mypyc_attr

from .._core import FLOAT_MAX, NATIVE_TOKENS, NEW_LEASE, SUPER, TOKENS, Clock, Delta, not_its_state
from .._endpoint import EndpointLike
from .._errors import InvalidOption
from .._lease import EndpointStats, Lease
from .._options import describe
from .._state import NATIVE, EndpointState
from ._guide import GUIDE_AFTER, OWNERS_AT_ONCE, GuideTable
from ._weight_line import WeightLine
from .random import AVOID_DRAWS, _RandomBalancer

#: The largest float as an int: an int load is compared with it as an int (compiled, an int
#: compared with a float is converted to one first: OverflowError for 10**400).
_FLOAT_MAX_INT: Final = int(sys.float_info.max)

__all__ = ["LoadFunction", "PowerOfTwoChoices"]

# Final aliases of the counting switch and the compiled build's token source (balancekit._state):
# compiled (mypyc), a Final is a C static, a name imported from another module a dict lookup.
_NATIVE: Final = NATIVE
_NATIVE_TOKENS: Final = NATIVE_TOKENS
_NEW_LEASE: Final = NEW_LEASE

# Final aliases: mypyc reads these from C statics; a builtin (next) or a name imported from
# another module is looked up by name on every call otherwise (issue 15, perf).
_next: Final = next
_bisect_right: Final = bisect_right
#: The fast paths' rejection draws after a collision (as ``_second(..., AVOID_DRAWS - 1)``).
_TRIES: Final = range(AVOID_DRAWS - 1)

#: A load metric for :class:`PowerOfTwoChoices`: a function of an endpoint's stats snapshot.
LoadFunction = Callable[[EndpointStats], float]


@mypyc_attr(allow_interpreted_subclasses=True)
class _TwoChoices(_RandomBalancer):
    """Candidates by weighted random draw; the less loaded (``_better``) wins, ties the first.

    Scores are compared under the balancer's lock, which also guards ``state.load``, the
    in-flight count the scores read (kept equal to the leases outstanding).
    """

    _observes_release = True
    # The current line's guide table once it has served GUIDE_AFTER * n draws (_next_guide;
    # issue 15: the line's own draw costs ~14 cache misses at n = 10,000), under the lock.
    _guide: GuideTable | None = None
    _guide_seen: WeightLine | None = None  # the line whose draws _guide_wait counts down
    _guide_wait = 0
    # The owner table of the current line (its guide's ``owners``, _guide.py) once built, for a
    # line of two endpoints or more, else None; total weight beside it. The fast paths test
    # this one attribute (issue 15: ~14 bytecodes fewer than reaching it through the guide and
    # checking the guide's line); _rebuild and _apply drop it whenever the line changes. Under
    # the lock, as the line itself.
    _owners: tuple[EndpointState, ...] | None = None
    # Its total weight as a float: ``random() * total`` is then float * float (BINARY_OP's
    # float specialisation, no int conversion; ~100 instructions less per draw, issue 15), and
    # the product is the same, float * int converting the int to the same double first.
    _owners_total = 0.0

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        self._owners = None
        super()._rebuild(eligible)

    def _apply(self, delta: Delta) -> None:
        table = self._table
        super()._apply(delta)
        if self._table is not table:
            self._owners = None

    def _next_guide(self, table: WeightLine) -> GuideTable | None:
        """The guide table of ``table``, built once the line has served ``GUIDE_AFTER * n``
        draws (O(n), so O(1) amortised), or at its first draw if it has at most
        ``OWNERS_AT_ONCE`` points (an owner table of O(1) size), else None (under the lock)."""
        if table is not self._guide_seen:  # a new line: the old guide is no use any more
            self._guide = None
            self._guide_seen = table
            self._guide_wait = 1 if table.total <= OWNERS_AT_ONCE else GUIDE_AFTER * table.n
        self._guide_wait -= 1
        if self._guide_wait > 0:
            return None
        guide = GuideTable(table)
        self._guide = guide
        if guide.owners is not None and table.n >= 2:  # (one endpoint: _choose's single draw)
            self._owners = guide.owners
            self._owners_total = float(table.total)
        return guide

    def _pair(self) -> tuple[EndpointState, EndpointState | None]:
        """_candidates without ``avoid`` for the fast paths when the line has neither an owner
        table nor a guide yet (not drawn often enough since it changed, or one endpoint; under
        the lock): the same draws in the same order, counting down to the tables (_next_guide:
        one built here is used at once). Out of the fast paths' frames, which draw from the
        tables themselves: each local of a Python frame costs ~1 ns per call, initialised and
        cleared (issue 15)."""
        table = self._table
        if table.n < 2:
            return self._draw(table, ()), None
        random = self._random
        guide = self._guide
        if guide is None or guide.line is not table:
            guide = self._next_guide(table)  # sets _owners for a light line
        owners = self._owners
        if owners is not None:  # the owner of every point (_guide.py)
            scale = self._owners_total
            state = owners[floor(random() * scale)]
            second = owners[floor(random() * scale)]
        elif len(table.blocks) == 1:  # up to 2 * LOAD endpoints: one bisection
            total = table.total
            members, running = table.blocks[0], table.sums[0]
            state = members[_bisect_right(running, floor(random() * total))]
            second = members[_bisect_right(running, floor(random() * total))]
        elif guide is not None:  # the same owners, one short bisection (_guide.py)
            total = guide.total
            flat, marks, step, pool = guide.sums, guide.marks, guide.step, guide.states
            point = floor(random() * total)
            block = point // step
            state = pool[_bisect_right(flat, point, marks[block], marks[block + 1])]
            point = floor(random() * total)
            block = point // step
            second = pool[_bisect_right(flat, point, marks[block], marks[block + 1])]
        else:  # WeightLine.draw, inlined
            total, blocks, sums, tops = table.total, table.blocks, table.sums, table.tops
            point = floor(random() * total)
            block = _bisect_right(tops, point)
            if block:
                point -= tops[block - 1]
            state = blocks[block][_bisect_right(sums[block], point)]
            point = floor(random() * total)
            block = _bisect_right(tops, point)
            if block:
                point -= tops[block - 1]
            second = blocks[block][_bisect_right(sums[block], point)]
        if second is state:
            other = self._second(table, state, (), AVOID_DRAWS - 1)
            if other is not None:
                second = other
        return state, second

    def _better(self, first: EndpointState, second: EndpointState) -> EndpointState:
        """The less loaded of two candidates, ``first`` on a tie (called under the lock)."""
        raise NotImplementedError

    def _candidates(self, avoid: Collection[str]) -> tuple[EndpointState, EndpointState | None]:
        """Two distinct endpoints not in ``avoid``, the first drawn by weight, the second by
        weight among the rest (``None`` when only one is left); O(1) expected."""
        table = self._table
        first = self._draw(table, avoid)
        if table.n < 2:
            return first, None
        return first, self._second(table, first, avoid)

    def _second(
        self,
        table: WeightLine,
        first: EndpointState,
        avoid: Collection[str],
        tries: int = AVOID_DRAWS,
    ) -> EndpointState | None:
        """A weighted draw among ``table``'s endpoints other than ``first`` and not avoided
        (``tries`` rejection draws, then an exact draw among the rest)."""
        random = self._random
        for _ in range(tries):  # rejection sampling: exact conditional distribution
            second = table.draw(random())
            if second is not first and not (avoid and second.endpoint.address in avoid):
                return second
        rest = [s for s in table.states if s is not first and s.endpoint.address not in avoid]
        if not rest:
            return None
        return self._rng.choices(rest, weights=[s.weight for s in rest])[0]

    def _choose(self, avoid: Collection[str]) -> EndpointState:
        """The winner among the candidates (called under the lock)."""
        table = self._table
        if avoid or table.n < 2:
            first, second = self._candidates(avoid)
        else:  # the hot path of _candidates, inlined: the same draws in the same order
            draw, random = table.draw, self._random
            first = draw(random())
            second = draw(random())
            if second is first:  # one of _second's draws is spent: the same draws in total
                second = self._second(table, first, avoid, AVOID_DRAWS - 1)
        return first if second is None else self._better(first, second)

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        lock = self._lock
        lock.acquire()  # explicit: cheaper than `with` on the hot path
        try:
            state = self._choose(avoid)
            state.load += 1
            return state
        finally:
            lock.release()

    def _claim(self, state: EndpointState) -> None:
        state.load += 1

    def _on_release(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        lock = self._lock
        lock.acquire()
        try:
            state.load -= 1
            self._learn(state, ok, elapsed)
        finally:
            lock.release()

    def _on_cancel(self, state: EndpointState) -> None:
        """A cancelled pick: its load back; nothing learned (no latency sample)."""
        with self._lock:
            state.load -= 1

    def _learn(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        """Update what the score depends on besides the load (under the lock)."""

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            for state in self._members.values():
                assert state.load == state.in_flight() >= 0


@mypyc_attr(allow_interpreted_subclasses=True)
class PowerOfTwoChoices(_TwoChoices):
    """Draw two distinct endpoints at random by weight; send the request to the less loaded.

    Use it for many clients sharing a pool (each with only its own view of the load), or a large
    pool where least-connections' exact ordering costs more than it gives: nearly the balance of
    least connections for O(1) per pick. Load is *per unit of weight*: by default the requests
    in flight from this balancer divided by the weight, so a weight-2 server carries twice the
    requests of a weight-1 one. Ties (e.g. an idle pool) go to the first candidate, which was
    drawn by weight, so sequential traffic follows the weights.

    ``load=`` plugs in another metric: a function of the endpoint's :class:`EndpointStats`
    snapshot (``in_flight``, ``latency``, ``failed``, ``weight``, ... as ``stats()`` reports it)
    returning a number, lower meaning less loaded; it too is divided by the weight. For example
    ``load=lambda s: s.in_flight + 5 * s.failed`` penalises failing servers. Load functions are
    called under the balancer's lock and must not call back into it.

    At low concurrency (one request at a time) both candidates have 0 in flight, so the first
    candidate, drawn by weight, wins: sequential traffic is weighted random (two equal servers
    split about 50/50, never a hot spot), and a new endpoint gets its share from its first
    draw. It does not see latency (:class:`~balancekit.PeakEWMA` is this with latency).
    :class:`~balancekit.LoadReportWeightedRoundRobin` is not affected by concurrency either:
    its weights come from the servers' own reports, not from what this client measures, so
    sequential traffic follows the reported weights.

    Select and release are O(log n) (two weight-line draws, each two bisections in C, redrawn
    on a collision or an avoided endpoint), under the balancer's lock. Once the pool has served
    twice as many picks as it has endpoints since its last change (at its first pick for a
    total weight of at most 1,024), a draw is one subscript of an owner table when the weights
    average at most 8 or add up to at most 4,096, else, above 512 endpoints, one bisection over
    about two endpoints (a guide table; either O(n) once: O(1) amortised; the same endpoint
    for the same random number). ``rng=`` / ``seed=`` make the draws reproducible.

    >>> lb = PowerOfTwoChoices(["a:1", "b:1"], seed=3)
    >>> busy = lb.select()
    >>> lb.select().address != busy.address  # the idle one wins
    True

    Sources: Mitzenmacher (2001); tower ``balance/p2c/service.rs``; Finagle ``P2CLeastLoaded``.
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        load: LoadFunction | None = None,
        rng: _random.Random | Any | None = None,
        seed: int | Any | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if load is not None and not callable(load):
            raise InvalidOption(
                f"load must be a function of an endpoint's EndpointStats returning a number,"
                f" not {describe(load)}"
            )
        super().__init__(endpoints, rng=rng, seed=seed, clock=clock)
        # Any: compiled, a call through LoadFunction casts its result (TypeError for junk, where
        # _score raises InvalidOption saying what the function returned).
        self._load: Callable[[Any], Any] | None = load
        self._start()

    def _better(self, first: EndpointState, second: EndpointState) -> EndpointState:
        if self._load is None:  # in_flight / weight, compared exactly in integers
            return second if second.load * first.weight < first.load * second.weight else first
        return second if self._score(second) < self._score(first) else first

    # select and release below are BalancerBase's with _pick, _choose, _better and _on_release
    # inlined for the common case (no avoid, no health tracker, no load function, two or more
    # endpoints; a finite float elapsed or none, which the in-flight count does not use):
    # the same draws in the same order, so seeded sequences are unchanged (issue 15). Everything
    # else takes the general path; keep the two in step (tests/perf_guard/test_fast_paths.py).
    # _idle_first: a first candidate with nothing in flight wins without reading the second's
    # load or either weight: ``second.load * weight >= 0 == 0 * second.weight`` (loads are
    # in-flight counts, >= 0; weights >= 1), so _better keeps it. Sequential traffic is all
    # such picks; at N = 10,000 the fields read are cache lines of their own (the slots are
    # laid out sorted by name: weight is the last), so a pick touches fewer lines (issue 15).
    # _clock_local: ``self._clock()`` compiles to LOAD_METHOD, which CPython 3.11 cannot
    # specialise for a callable held in the instance's dict (not a method of the class): every
    # call took the generic lookup, _PyObject_GetMethod, ~210 instructions (callgrind).
    # ``clock = self._clock`` is a specialised LOAD_ATTR and a local: ~180 fewer per call.

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        if avoid or self._health is not None or self._load is not None:
            lease: Lease = SUPER(PowerOfTwoChoices, self).select(context, avoid)
            return lease
        clock = self._clock  # a local first: see _clock_local
        started = clock()  # before the pick counts (as BalancerBase.select)
        lock = self._lock
        lock.acquire()
        try:
            owners = self._owners  # a light line of two or more: see _TwoChoices
            if owners is not None:  # _choose's hot path: two subscripts of the owner table
                random = self._random
                total = self._owners_total  # a float: float * float, as float * int rounds
                state = owners[floor(random() * total)]
                second = owners[floor(random() * total)]
                if second is state:  # _second's rejection draws, inlined (the same draws)
                    for _ in _TRIES:
                        second = owners[floor(random() * total)]
                        if second is not state:
                            break
                    else:  # _second's exact draw among the rest
                        second_or_none = self._second(self._table, state, (), 0)
                        if second_or_none is not None:
                            second = second_or_none
                if state.load and (  # _better; idle, the first wins: see _idle_first
                    second.load * state.weight < state.load * second.weight
                ):
                    state = second
            else:
                guide = self._guide
                if guide is not None and guide.line is self._table:
                    # a heavy line's guide (_guide.py): one short bisection per draw, as _pair's
                    owners, random, total = guide.states, self._random, guide.scale
                    point = floor(random() * total)
                    block = point // guide.step
                    state = owners[
                        _bisect_right(guide.sums, point, guide.marks[block], guide.marks[block + 1])
                    ]
                    point = floor(random() * total)
                    block = point // guide.step
                    second = owners[
                        _bisect_right(guide.sums, point, guide.marks[block], guide.marks[block + 1])
                    ]
                    if second is state:
                        second_or_none = self._second(self._table, state, (), AVOID_DRAWS - 1)
                        if second_or_none is not None:
                            second = second_or_none
                    if state.load and (  # _better; idle, the first wins: see _idle_first
                        second.load * state.weight < state.load * second.weight
                    ):
                        state = second
                else:  # no table of its own (yet), or one endpoint: _pair, then _better
                    state, second_or_none = self._pair()
                    if second_or_none is not None and (
                        second_or_none.load * state.weight < state.load * second_or_none.weight
                    ):
                        state = second_or_none
            state.load += 1
            state.n_selected += 1  # under the lock: atomic in both builds (balancekit._state)
        finally:
            lock.release()
        if _NATIVE:  # one test of the build, as BalancerBase.select
            token = _NATIVE_TOKENS.take()
            self._outstanding[token] = state
            if state.retired:  # removed since the lock was let go: BalancerBase._select_again
                return self._select_again(state, token, started, context, avoid)
            return Lease(state.endpoint, token, started)  # a native class: one C call
        token = _next(TOKENS)
        self._outstanding[token] = state
        if state.retired:  # (as above)
            return self._select_again(state, token, started, context, avoid)
        lease = _NEW_LEASE(Lease)  # pure Python: no __init__ frame (_core.NEW_LEASE)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = started
        return lease

    def release(  # ``| Any``: see BalancerBase.release (mypyc's entry checks)
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """Report how the request on ``lease`` ended (see :meth:`BalancerBase.release`)."""
        if self._health is not None or (
            elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= FLOAT_MAX)
        ):  # a finite float elapsed stays here: the in-flight count does not use it
            SUPER(PowerOfTwoChoices, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        failed = not ok  # first: an ok whose truth raises changes nothing (review7)
        try:
            if type(lease) is Lease:
                endpoint = lease._endpoint  # (before the pop: a blank lease has none)
                state = self._outstanding.pop(lease._token, None)
            else:
                state = None
        except (TypeError, LookupError, AttributeError):  # not a lease: the general path says
            state = None
        if (
            state is not None and state.endpoint is not endpoint and not_its_state(state, endpoint)
        ):  # another lease's token: put back, refused below
            self._outstanding[lease._token] = state
            state = None
        if state is None:  # the general path raises InvalidLease
            SUPER(PowerOfTwoChoices, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        lock = self._lock
        lock.acquire()
        try:
            state.n_released += 1  # under the lock: atomic in both builds (balancekit._state)
            if failed:
                state.n_failed += 1
            state.load -= 1
        finally:
            lock.release()
        if state.retired:
            self._forget_if_idle(state)

    def _score(self, state: EndpointState) -> float:
        assert self._load is not None
        value = self._load(self._stats_of(state))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidOption(f"the load function returned {describe(value)}, not a number")
        if isinstance(value, int) and not -_FLOAT_MAX_INT <= value <= _FLOAT_MAX_INT:
            raise InvalidOption(  # no repr: the digits of a huge int take quadratic time
                f"the load function returned an int of {value.bit_length()} bits, beyond a float"
            )
        if math.isnan(value):
            raise InvalidOption(f"the load function returned {describe(value)}, not a number")
        return value / state.weight
