"""Reading a caller's iterable option lazily, up to a documented maximum count.

An option given as an iterable may be a generator that never ends or a ``range(10**12)``:
``tuple(value)`` or ``(*value,)`` would hang or exhaust memory before any item is checked.
:func:`bounded` yields the items one at a time, so the caller checks each as it is read, and
raises :class:`InvalidOption` naming the maximum once ``limit + 1`` items have been read (or at
once when ``len()`` says there are more). Time and memory stay linear in the items read.

>>> list(bounded("keys", iter("ab"), 2))
['a', 'b']
>>> list(bounded("keys", iter("abc"), 2))
Traceback (most recent call last):
  ...
balancekit._errors.InvalidOption: keys holds more than 2 items (the documented maximum)
>>> list(bounded("keys", range(-2**32, 0), 64))
Traceback (most recent call last):
  ...
balancekit._errors.InvalidOption: keys holds more than 64 items (the documented maximum)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from ._errors import InvalidOption

__all__ = ["bounded"]

T = TypeVar("T")


def bounded(name: str, items: Iterable[T], limit: int, hint: str = "") -> Iterator[T]:
    """``items`` one by one; :class:`InvalidOption` on reading item ``limit + 1``, or before
    reading any when ``items`` is sized and longer. ``hint`` is appended to the message."""
    message = f"{name} holds more than {limit} items (the documented maximum){hint}"
    if isinstance(items, Sized):
        try:
            size = len(items)
        except OverflowError:  # len(range(10**20)) does not fit in a C ssize_t
            raise InvalidOption(message) from None
        if size > limit:
            raise InvalidOption(message)
    for count, item in enumerate(items):
        if count == limit:
            raise InvalidOption(message)
        yield item
