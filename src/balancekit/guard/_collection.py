"""Validation of the guards' collection options (``skip_headers``, ``triggers``, ``fields``,
``signatures``, ``rule_ids``, ``Chain``'s guards), each at most :data:`MAX_ITEMS` items.

A ``str`` is itself an iterable of strings, so ``skip_headers="x-token"`` would silently mean
the single letters ``x``, ``-``, ``t``, ...; like ``select(avoid=...)``, a plain ``str`` (or
``bytes``) where a collection is expected is refused with :class:`InvalidOption`.

>>> collection("fields", ["path"])
('path',)
>>> collection("fields", "path")
Traceback (most recent call last):
  ...
balancekit._errors.InvalidOption: fields must be a collection, not one string: use fields=['path']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._bounded import bounded
from .._errors import InvalidOption
from .._options import describe

__all__ = ["MAX_ITEMS", "collection"]

#: The most items each guard collection option holds (signatures, their triggers and fields,
#: skip_headers, a rejection's rule_ids, a Chain's guards): a bound on configuration time and
#: memory, far above any real rule set (the CRS default rules number in the hundreds).
MAX_ITEMS = 10_000


def collection(name: str, value: object) -> tuple[Any, ...]:
    """``value``'s items as a tuple; refuses a plain ``str``/``bytes``, non-iterables and more
    than :data:`MAX_ITEMS` items (read lazily: an endless generator is refused, not read)."""
    if isinstance(value, str | bytes | bytearray):
        raise InvalidOption(
            f"{name} must be a collection, not one string: use {name}=[{describe(value)}]"
        )
    if not isinstance(value, Iterable):
        raise InvalidOption(f"{name} must be a collection, got {describe(value)}")
    # An endless generator or range(10**12) stops at MAX_ITEMS + 1 items, not materialised.
    return tuple(bounded(name, value, MAX_ITEMS))
