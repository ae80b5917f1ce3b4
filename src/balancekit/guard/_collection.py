"""Validation of the guards' collection options (``skip_headers``, ``triggers``, ``fields``,
``signatures``, ``rule_ids``, ``Chain``'s guards).

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

from typing import Any

from .._errors import InvalidOption
from .._options import describe

__all__ = ["collection"]


def collection(name: str, value: object) -> tuple[Any, ...]:
    """``value``'s items as a tuple; refuses a plain ``str``/``bytes`` and non-iterables."""
    if isinstance(value, str | bytes | bytearray):
        raise InvalidOption(
            f"{name} must be a collection, not one string: use {name}=[{describe(value)}]"
        )
    try:
        return tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidOption(f"{name} must be a collection, got {describe(value)}") from None
