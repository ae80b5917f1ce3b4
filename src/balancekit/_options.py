"""Validation of numeric constructor options, shared so every option says what is wrong alike.

A number is an ``int`` or ``float`` but never a ``bool`` (``True`` is an int to Python, not a
timeout to a user); NaN fails every bound, and an int too large for a float (``10**400``) is
refused rather than left to raise ``OverflowError`` later. Each raises :class:`InvalidOption`
naming the option. :func:`describe` words any value for a message in bounded time and space.

>>> seconds("timeout", 2)
2.0
>>> number("share", True, low=0, high=1, low_open=False, high_open=False)
Traceback (most recent call last):
  ...
balancekit._errors.InvalidOption: share must be in [0, 1], not True
>>> seconds("t", 10**400)
Traceback (most recent call last):
  ...
balancekit._errors.InvalidOption: t must be a positive number of seconds, not an int of 1329 bits
"""

from __future__ import annotations

import math
import reprlib
import sys

from ._errors import InvalidOption

__all__ = ["describe", "integer", "number", "seconds"]

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3
#: Ints up to this many bits are shown in messages as digits; larger ones by their size.
_SHOWN_BITS = 128


def describe(value: object) -> str:
    """``repr(value)`` for a message, cut short: bounded output for huge or deeply nested values,
    never an exception (a huge int has no ``repr`` beyond 4,300 digits; a hostile ``__repr__``
    may raise)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _SHOWN_BITS:
        return f"an int of {value.bit_length()} bits"
    try:
        return _REPR.repr(value)
    except Exception:  # a user object whose __repr__ fails still gets a message
        return f"a {type(value).__name__}"


def _finite_float(value: object) -> bool:
    """Whether ``float(value)`` is exact enough to compare and cannot overflow."""
    if isinstance(value, int):
        return abs(value) <= sys.float_info.max
    return True


def number(
    name: str,
    value: object,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_open: bool = True,
    high_open: bool = True,
    what: str | None = None,
) -> float:
    """``value`` as a float if it is a number within the bounds; ``what`` words the rule (by
    default the interval, e.g. ``(0, 1]``). An int beyond the float range is refused."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not _finite_float(value)
        or not (low < value if low_open else low <= value)
        or not (value < high if high_open else value <= high)
    ):
        if what is None:
            what = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise InvalidOption(f"{name} must be {what}, not {describe(value)}")
    return float(value)


def seconds(name: str, value: object, *, zero: bool = False, high: float = math.inf) -> float:
    """A finite duration: positive, or ``>= 0`` with ``zero=True``; at most ``high`` if given
    (a wait longer than the platform's ``threading.TIMEOUT_MAX`` raises OverflowError)."""
    what = "a finite number of seconds >= 0" if zero else "a positive number of seconds"
    what += f" up to {high:g}" if high < math.inf else ""
    return number(name, value, low_open=not zero, high=high, high_open=high == math.inf, what=what)


def integer(name: str, value: object, low: int, high: int) -> int:
    """``value`` if it is an int (not a bool) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidOption(f"{name} must be an int from {low} to {high}, not {describe(value)}")
    return int(value)
