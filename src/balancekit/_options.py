"""Validation of numeric constructor options, shared so every option says what is wrong alike.

A number is an ``int`` or ``float`` but never a ``bool`` (``True`` is an int to Python, not a
timeout to a user); NaN fails every bound. Each raises :class:`InvalidOption` naming the option.

>>> seconds("timeout", 2)
2.0
>>> number("share", True, low=0, high=1, low_open=False, high_open=False)
Traceback (most recent call last):
  ...
balancekit._errors.InvalidOption: share must be in [0, 1], not True
"""

from __future__ import annotations

import math

from ._errors import InvalidOption

__all__ = ["integer", "number", "seconds"]


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
    default the interval, e.g. ``(0, 1]``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (low < value if low_open else low <= value)
        or not (value < high if high_open else value <= high)
    ):
        if what is None:
            what = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise InvalidOption(f"{name} must be {what}, not {value!r}")
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
        raise InvalidOption(f"{name} must be an int from {low} to {high}, not {value!r}")
    return value
