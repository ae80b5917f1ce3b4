"""The ``clock=`` option: its readings checked, and held still while membership changes.

A balancer reads its clock for a lease's start, a latency sample, the age of an estimate, an
ejection's end, a ramp's step. The standard library's clocks (:func:`time.monotonic`, the
default) are used as they are. Any other clock (a simulator's, a test's, a user's) is wrapped in
a :class:`CheckedClock`, which does two things:

- every reading is checked and taken as a float: one ``-inf`` or NaN reading became an infinite
  latency estimate, then NaN scores, and LeastResponseTime's select looped for ever holding its
  lock (review7b); a Decimal clock made LeastResponseTime and PeakEWMA raise ``TypeError`` on
  their first sample. A reading that is not a finite number raises :class:`InvalidOption`
  where it is read, and every caller already leaves the balancer as it was when the clock
  raises (tests/hostile/test_raising_clock.py);
- while the balancer changes its membership (:func:`holding`, under the balancer's lock) every
  reading is the one taken when the change began: a change reads the clock at its start, before
  anything moves, so a clock that raises stops the change before it begins. Read in the middle
  (a new endpoint's start, a ramp's step, an ejection's end), a raising clock left a member
  added to one structure and missing from the other (found by tests/hostile/test_clock_readings.py).
  The hold is the changing thread's own: other threads read the clock itself. Held for all, a
  change that ran a slow ``on_event`` callback stopped every other thread's clock, and a
  request ending then was learned seconds short (review8).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from threading import get_ident
from typing import Any, Final, final

from ._errors import InvalidOption
from ._options import describe

__all__ = ["CheckedClock", "Clock", "check_clock", "holding", "within_float"]

#: A clock: a function returning seconds as a float, monotonic (default :func:`time.monotonic`).
Clock = Callable[[], float]

#: The largest finite float: ``x <= FLOAT_MAX`` is False for inf and NaN. The same constant as
#: ``_core.FLOAT_MAX``, defined here too: compiled (mypyc), an imported ``Final`` is looked up by
#: name on every read, a module's own is a C static.
FLOAT_MAX: Final = sys.float_info.max

#: The standard library's clocks: their readings are finite floats, taken unchecked.
STANDARD_CLOCKS: Final = (time.monotonic, time.perf_counter, time.time)


def check_clock(clock: object) -> Clock:
    """Validate a ``clock=`` option: a function returning seconds. Any clock but the standard
    library's is wrapped in a :class:`CheckedClock` (see the module's docstring)."""
    if not callable(clock):
        raise InvalidOption(f"clock must be a function returning seconds, not {describe(clock)}")
    for standard in STANDARD_CLOCKS:
        if clock is standard:
            return standard
    if isinstance(clock, CheckedClock):  # another balancer's: its holds are that one's own
        return CheckedClock(clock.clock)
    return CheckedClock(clock)


@final
class CheckedClock:
    """A clock whose every reading is a finite float, or :class:`InvalidOption` naming it.

    An int, :class:`~fractions.Fraction` or :class:`~decimal.Decimal` reading is converted, so
    both builds compute alike (an int past 2**53 rounds to the nearest float: a nanosecond or so
    at today's ``monotonic_ns``). NaN, the infinities, a number beyond the largest float, a bool
    and anything that is not a number are refused. ``held``: the reading every call of the
    thread ``holder`` returns while it makes a membership change (:func:`holding`), else None.
    """

    __slots__ = ("clock", "held", "holder")

    def __init__(self, clock: Callable[[], Any]) -> None:
        self.clock = clock
        self.held: float | None = None
        self.holder = 0

    def __call__(self) -> float:
        held = self.held
        if held is not None and self.holder == get_ident():
            return held
        now = self.clock()
        if type(now) is not float:
            now = as_seconds(now)
        if -FLOAT_MAX <= now <= FLOAT_MAX:  # False for NaN and the infinities
            return now
        raise _refused(now)

    def __repr__(self) -> str:
        return f"CheckedClock({self.clock!r})"

    def __reduce__(self) -> tuple[type[CheckedClock], tuple[Callable[[], Any]]]:
        """A copy or a pickle is the clock, unheld (compiled, a native class has no default)."""
        return CheckedClock, (self.clock,)


def as_seconds(reading: object) -> float:
    """A clock's reading that is not a float, as one (:class:`CheckedClock`)."""
    if not isinstance(reading, bool) and hasattr(type(reading), "__float__"):
        try:
            return float(reading)  # type: ignore[arg-type]
        except (ArithmeticError, TypeError, ValueError):  # too big, a signalling NaN
            pass
    raise _refused(reading)


def _refused(reading: object) -> InvalidOption:
    return InvalidOption(
        f"clock= returned {describe(reading)}: a clock must return a finite number of seconds"
    )


@final
class ClockHold:
    """The context of :func:`holding`: holds a :class:`CheckedClock` at one reading."""

    __slots__ = ("_clock",)

    def __init__(self, clock: Clock) -> None:
        # Only the outermost hold of a checked clock holds (a change inside a change: the
        # tracker's ejection inside a release).
        self._clock = clock if type(clock) is CheckedClock and clock.held is None else None

    def __enter__(self) -> None:
        clock = self._clock
        if clock is not None:
            reading = clock()  # raises before the change begins, changing nothing
            clock.holder = get_ident()  # first: no other thread ever takes the held reading
            clock.held = reading

    def __exit__(self, *exc_info: object) -> None:
        clock = self._clock
        if clock is not None:
            clock.held = None


def holding(clock: Clock) -> ClockHold:
    """``with balancer._lock, holding(balancer._clock):``: every reading of the clock inside is
    the one taken on entering (see the module's docstring). A standard clock is not held: it
    never raises."""
    return ClockHold(clock)


def within_float(elapsed: float) -> float:
    """The time between two clock readings as a latency sample: 0 for a clock set back while
    the request ran (or a NaN from a forged lease's start), the largest float for a difference
    that overflowed (two finite readings ``1e308`` apart give ``inf``). A sample in
    ``[0, FLOAT_MAX]`` keeps every estimate finite: an infinite one became NaN at the next
    blend (``inf + step * (x - inf)``), and NaN scores hung LeastResponseTime's select (review7b).
    The fast paths of LeastResponseTime and PeakEWMA inline it."""
    return elapsed if 0.0 < elapsed <= FLOAT_MAX else FLOAT_MAX if elapsed > 0.0 else 0.0
