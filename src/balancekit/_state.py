"""Per-endpoint live state, kept once per address and carried across membership changes.

Each counter is two parts that add up: a tally (``selected``, see :func:`tally`) and a plain
int (``n_selected``). ``next()`` on a tally is a single C call, atomic under CPython's GIL, so
the pure-Python build counts there, from many threads, without a lock on the hot path. Compiled
(mypyc), ``state.n_selected += 1`` on a native int attribute is a few machine instructions that
never give up the GIL (no Python code runs between the read and the write), so it is as atomic,
and ~8x cheaper than calling ``next()`` through the C API (issue 15); each hot path tests
:data:`NATIVE` (this module's: whether it was compiled) and counts in the part its build makes
atomic. One flag serves every module because they are compiled together (one mypyc group,
``setup.py``'s ``COMPILED``), and every module that counts in an ``n_*`` part must be in that
list (tests/test_native_count_sites.py): one left out would run ``+= 1`` as bytecode.
A pure-Python hot path that already holds the balancer's lock may count in the ``n_*`` ints
under it instead (issue 15: an attribute increment is cheaper than a C call, and the int sits in
the state's slots where the tally object is one more cache line away): exact, because in the
pure build every ``+= 1`` on an ``n_*`` part runs under that one lock, and the parts still add.
Readers add the parts (:func:`count_value` of the tally plus the int): each part only grows, so
the order in which ``stats()`` reads them keeps every derived value >= 0.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from types import FunctionType
from typing import Any, Final

from ._endpoint import Endpoint

__all__ = ["NATIVE", "STATS_TRIES", "EndpointState", "count_value", "runs_compiled", "tally"]

#: How many times :meth:`EndpointState.counts` re-reads the counters for one instant's values.
STATS_TRIES: Final = 8


#: Where a :func:`tally` starts counting down from: 2**63 - 1 on 64-bit builds, more events than
#: a process can count (~290 years at a billion a second).
TALLY_START: Final = sys.maxsize
#: Whether a tally can be a repeat: a 32-bit build's 2**31 - 1 could run out (in hours at a
#: million picks a second), and a repeat that ran out would stop counting with StopIteration.
_REPEAT_TALLIES: Final = TALLY_START >= 2**63 - 1


def tally() -> Iterator[Any]:
    """A counter of events that ``next()`` counts in one C call, atomic under the GIL, without
    making an int: :func:`itertools.repeat` of None, ``TALLY_START`` times, each ``next()``
    one fewer left (``repeat_next`` decrements its count and returns the same object).

    An :func:`itertools.count` made a new int per ``next()`` past 256, freed at once by the
    caller: the pure-Python round robin's select + release (two counts) took ~300 instructions
    more than with tallies at N = 10 (issue 15, session 8). Read by :func:`count_value`.
    A 32-bit build gets an :func:`itertools.count` (see ``_REPEAT_TALLIES``).
    """
    if _REPEAT_TALLIES:
        return itertools.repeat(None, TALLY_START)
    return itertools.count()


def count_value(counter: Iterator[Any]) -> int:
    """How many a counter has counted: an :func:`itertools.count` the next value it would
    return, a :func:`tally` ``TALLY_START`` minus the repeats it has left.

    Both expose their value only through ``repr`` (``count(5)``, ``repeat(None, 9)``); reading
    it is rare (stats, retirement), so parsing is fine there and keeps the hot path a single C
    call. (Through ``repr``, not ``operator.length_hint``: one reading of either kind, and a
    stand-in that forwards ``repr`` is read as what it stands for; tests/test_core_races.py.)
    """
    text = repr(counter)
    if text[0] == "r":  # repeat(None, left)
        return TALLY_START - int(text[13:-1])
    return int(text[6:-1])


def runs_compiled(function: object) -> bool:
    """Whether ``function``, a module-level function of the caller's module, was compiled: mypyc
    turns it into a built-in function, so it is no :class:`types.FunctionType`. :data:`NATIVE`
    is this module's answer, which the hot modules import (see the module docstring)."""
    return not isinstance(function, FunctionType)


def _here() -> None:
    """A function of this module, for :data:`NATIVE`."""


#: Whether this module runs compiled (mypyc): then the compiled hot paths count in the ``n_*``
#: ints; in the pure-Python build they count in the tally parts (:func:`tally`).
NATIVE: Final = runs_compiled(_here)


class _EveryPick:
    """The four fields every select + release of every strategy touches, at offsets 16-48 of an
    :class:`EndpointState`, beside its reference count and type (written and read by every pick
    that holds it): one cache line for a pick's state in pure Python (the state starts on a
    64-byte boundary: see ``EndpointState.__slots__``), where they were spread over offsets
    24-128 (two or three lines) in :class:`_HotFields` (issue 15: at N = 10,000 a pick's state
    is rarely in cache; callgrind's cache simulation, pure RoundRobin: last-level misses per
    select + release 6.25 -> 4.75 with both). Slots, as _HotFields' (see there on the layout)."""

    __slots__ = ("endpoint", "released", "retired", "selected")


class _HotFields(_EveryPick):
    """The fields the hot paths read and write on every pick, laid out first (issue 15).

    CPython sorts a class's ``__slots__`` by name when it lays them out, so the order written in
    one ``__slots__`` is not the layout; a base class's slots come first, though. So these live
    in a base of their own, at offsets 16-128 of every :class:`EndpointState` (two or three cache
    lines) instead of spread over its 25 slots' 216 bytes (p2cpure measured, callgrind's cache
    simulation at N = 10,000: last-level misses per pick, PowerOfTwoChoices 2.92 -> 2.09,
    PeakEWMA 4.31 -> 2.97 on top of p2cpure's branch; on this tree LeastConnections 11.7 -> 10.4,
    PowerOfTwoChoices 2.9 -> 2.5, RoundRobin 7.3 -> 6.7, instructions unchanged). The comment
    this replaces claimed the written order was the layout: it never was. Compiled (mypyc),
    attributes are laid out by first assignment in ``EndpointState.__init__`` (see there).
    """

    __slots__ = (
        "deadline",
        "latency",
        "latency_at",
        "load",
        "n_failed",
        "n_released",
        "n_selected",
        "order",
        "picked_at",
        "rank",
        "weight",
    )


class EndpointState(_HotFields):
    """Everything a balancer knows about one endpoint.

    Shared fields are owned by the base class; the ``load``/``deadline``/``rank``/``latency``/
    ``picked_at`` fields are scratch space for the load-aware strategies, which only touch them
    under their lock.
    """

    # The rest, read off the hot paths (the hot fields are _HotFields' slots, laid out first).
    __slots__ = (
        # Never set: they make a state 248 bytes with its GC header, so pymalloc serves it from
        # 256-byte blocks, which start 48 bytes past a 64-byte boundary (POOL_OVERHEAD, 48, in
        # CPython 3.11's Objects/obmalloc.c), and the state itself, past its 16-byte header, on
        # one: _EveryPick's fields share the line of the reference count. With 240-byte blocks
        # a state started at any multiple of 16 and its first 48 bytes crossed a line half the
        # time (last-level misses per pure RoundRobin pick at N = 10,000, callgrind: 5.25 ->
        # 4.75). 16 bytes per endpoint. tests/test_state_layout.py.
        "_align0",
        "_align1",
        "applied",
        "cancelled",
        "cls",
        "ejected",
        "failed",
        "health",
        "n_cancelled",
        "reweights",
        "seq",
        "up",
    )

    def __init__(self, endpoint: Endpoint, order: int) -> None:
        self.endpoint = endpoint
        # What every select and release reads, first: compiled (mypyc), attributes are laid out
        # in the order they are first assigned, so these share a cache line (issue 15: at
        # N = 10,000 a pick's endpoint is rarely in cache).
        self.selected = tally()
        self.released = tally()
        self.n_selected = 0  # the compiled build's parts of the counters (module docstring)
        self.n_released = 0
        self.retired = False  # removed while leases were still out
        self.weight = endpoint.weight  # what strategies balance by; see set_endpoint
        self.reweights = 0  # changes of the configured weight (set_endpoint), ever
        self.order = order  # insertion order, the tie-breaker of last resort
        # The base's bookkeeping for delta refreshes (``BalancerBase._sync``): ``seq`` orders
        # the eligible endpoints as they joined (set at each admission), ``cls`` is what the
        # last sync counted this endpoint as (-1 not a member, 0 down, 1 up but unhealthy,
        # 2 up and healthy), ``applied`` the weight the strategy was last given (None: the
        # endpoint is not in the strategy's index).
        self.seq = order
        self.cls = -1
        self.applied: int | None = None
        self.up = True
        self.failed = tally()
        self.cancelled = tally()  # releases with no outcome (``Balancer.cancel``)
        self.n_failed = 0
        self.n_cancelled = 0
        self.load = 0  # in-flight count kept under the strategy's lock (load-aware strategies)
        self.deadline = 0.0  # virtual finish time of the earliest-deadline-first tie-breaker
        self.rank: Any = None  # entry in a sorted index, found by identity (see strategies.least)
        self.latency: float | None = None  # response-time estimate in seconds, if tracked
        self.latency_at = 0.0  # clock reading of the last latency update
        self.picked_at = 0.0  # clock reading of the last pick, if the strategy tracks it
        self.ejected = False  # kept out of rotation by passive health (balancekit.health)
        self.health: Any = None  # the health tracker's per-endpoint record, if any

    @property
    def address(self) -> str:
        return self.endpoint.address

    def set_endpoint(self, endpoint: Endpoint) -> None:
        """Replace the endpoint (new weight or metadata) and the weight strategies balance by.

        ``weight`` is a plain slot rather than a property: strategies read it on every pick.
        A change of the configured weight counts in ``reweights``, even while the endpoint is
        out of rotation (smooth WRR then drops the ``current_weight`` it carries for it).
        """
        if endpoint.weight != self.endpoint.weight:
            self.reweights += 1
        self.endpoint = endpoint
        self.weight = endpoint.weight

    def in_flight(self) -> int:
        """Leases issued and not yet released (reads ``released`` first: never negative)."""
        released = count_value(self.released) + self.n_released
        return count_value(self.selected) + self.n_selected - released

    def counts(self) -> tuple[int, int, int, int]:
        """``(selected, released, failed, cancelled)`` as they were at one instant, both parts of
        each counter added (module docstring).

        Selects, releases and cancels count without the lock (a release is two steps:
        ``released``, then ``failed`` or ``cancelled``), so the counters are read in the order
        that keeps every derived value >= 0 (``failed + cancelled`` <= ``released`` <=
        ``selected`` at every instant), then the first three again: unchanged, they held all
        through the read of ``selected``, so the values are one instant's. A release racing
        every try (:data:`STATS_TRIES`) leaves the last ordered read, still non-negative and
        adding up.
        """
        for _ in range(STATS_TRIES):
            failed = count_value(self.failed) + self.n_failed
            cancelled = count_value(self.cancelled) + self.n_cancelled
            released = count_value(self.released) + self.n_released
            selected = count_value(self.selected) + self.n_selected
            if (
                count_value(self.failed) + self.n_failed == failed
                and count_value(self.cancelled) + self.n_cancelled == cancelled
                and count_value(self.released) + self.n_released == released
            ):
                break
        return selected, released, failed, cancelled

    def __repr__(self) -> str:
        return f"<EndpointState {self.endpoint.address} up={self.up} in_flight={self.in_flight()}>"
