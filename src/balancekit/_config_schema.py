"""The checks :mod:`balancekit.config` applies to each section before it calls a constructor.

A section's valid keys and their types come from the public constructor's own signature (its
keyword-only options and their annotations), so a new option is configurable without a second
list to keep in step; options that take functions or objects (``clock``, ``rng``, ``key``,
hooks) are not configurable from data and are left out. Every failure is an
:class:`~balancekit.InvalidOption` that names the section, the key and the public class, and
lists the valid keys or says what type was expected. The checks are O(size of the section).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import InvalidOption
from ._options import describe

__all__ = ["Kind", "expect", "options_of", "section", "take"]

#: Options that take functions or live objects: not expressible in a configuration file.
NOT_CONFIGURABLE = frozenset(
    {
        "async_sleep",
        "budget",  # a RetryBudget: its own [retry.budget] table
        "check",  # a Check object: [health.active] names it by "http" or "tcp"
        "clock",
        "key",
        "load",
        "on_error",
        "on_event",
        "retry_on",
        "retry_result",
        "rng",
        "sleep",
    }
)
#: The longest list a list-typed option accepts from a configuration.
MAX_LIST = 10_000


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Kind:
    """One type an option accepts: a name for messages and a check that converts the value."""

    __slots__ = ("check", "name")

    def __init__(self, name: str, check: Callable[[object], tuple[bool, object]]) -> None:
        self.name = name
        self.check = check


def _scalar(name: str, test: Callable[[object], bool]) -> Kind:
    return Kind(name, lambda value: (test(value), value))


def _list(name: str, test: Callable[[object], bool], convert: Callable[[list[Any]], Any]) -> Kind:
    def check(value: object) -> tuple[bool, object]:
        if not isinstance(value, list | tuple) or len(value) > MAX_LIST:
            return False, value
        if not all(test(item) for item in value):
            return False, value
        return True, convert(list(value))

    return Kind(name, check)


BOOL = _scalar("true or false", lambda value: isinstance(value, bool))
INT = _scalar("an integer", _is_int)
NUMBER = _scalar(
    "a number", lambda value: isinstance(value, int | float) and not isinstance(value, bool)
)
STR = _scalar("a string", lambda value: isinstance(value, str))
NONE = _scalar("null", lambda value: value is None)
INTS = _list("a list of integers", _is_int, tuple)
STRS = _list("a list of strings", lambda value: isinstance(value, str), list)

_ANNOTATION_PARTS = {
    "bool": BOOL,
    "int": INT,
    "float": NUMBER,
    "str": STR,
    "None": NONE,
    "Compat": STR,  # Ketama's Literal alias
    "tuple[int, ...]": INTS,
    "Sequence[str]": STRS,
}


def _spelled(annotation: object) -> str | None:
    """An annotation as source text: strings as they are (``from __future__ import
    annotations``), evaluated ones (a strategy registered from a module without it) as
    written: ``float``, ``int | None``."""
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    if isinstance(annotation, types.UnionType):
        return str(annotation).replace("NoneType", "None")
    return None


def kinds_of(annotation: object) -> tuple[Kind, ...] | None:
    """The kinds an annotation allows (a string under ``from __future__ import annotations``,
    or an evaluated ``float | None``), or None for one that is not plain data."""
    annotation = _spelled(annotation)
    if annotation is None:
        return None
    kinds = []
    for part in (piece.strip() for piece in annotation.split("|")):
        if part == "Any":  # ``int | Any``: the option's kind is int; ``| Any`` only keeps the
            continue  # compiled build from checking it on entry (its own check says what is wrong)
        kind = STR if part.startswith("Literal[") else _ANNOTATION_PARTS.get(part)
        if kind is None:
            return None
        kinds.append(kind)
    return tuple(kinds) if kinds else None


def options_of(
    callable_: Callable[..., object], *, strict: bool = True
) -> dict[str, tuple[Kind, ...]]:
    """The configurable keyword-only options of a public constructor, with their kinds.

    ``strict=False`` (a strategy a user registered) leaves out the options whose type is not
    plain data instead of raising: they keep their defaults, and naming one in a configuration
    is an unknown option."""
    options = {}
    for parameter in inspect.signature(callable_).parameters.values():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if parameter.name in NOT_CONFIGURABLE:
            continue
        kinds = kinds_of(parameter.annotation)
        if kinds is None and not strict:
            continue
        if kinds is None:
            raise TypeError(  # a programming error in balancekit, found by the tests
                f"{callable_!r} option {parameter.name} has no configurable type"
            )
        options[parameter.name] = kinds
    return options


def expect(where: str, key: str, value: object, kinds: Iterable[Kind]) -> object:
    """``value`` converted by the first kind that accepts it, or InvalidOption naming them."""
    kinds = tuple(kinds)
    for kind in kinds:
        ok, converted = kind.check(value)
        if ok:
            return converted
    wanted = " or ".join(kind.name for kind in kinds)
    raise InvalidOption(f"{where}.{key} must be {wanted}, not {describe(value)}")


def section(where: str, value: object) -> Mapping[str, object]:
    """``value`` as a table with string keys, or InvalidOption."""
    if not isinstance(value, Mapping):
        raise InvalidOption(
            f"{where} must be a table (a mapping of options), not {describe(value)}"
        )
    for key in value:
        if not isinstance(key, str):
            raise InvalidOption(f"{where} has a key that is no string: {describe(key)}")
    return value


def take(
    where: str,
    table: Mapping[str, object],
    options: Mapping[str, tuple[Kind, ...]],
    public: str,
    *,
    extra: Iterable[str] = (),
) -> dict[str, Any]:
    """The checked options of ``table`` for ``public`` (the class users know); keys in
    ``extra`` are the caller's own and are left out of the result. An unknown key raises
    InvalidOption listing the valid ones."""
    extra = frozenset(extra)
    valid = sorted(set(options) | extra)
    result: dict[str, Any] = {}
    for key, value in table.items():
        if key in extra:
            continue
        kinds = options.get(key)
        if kinds is None:
            raise InvalidOption(
                f"unknown option {describe(key)} in {where} (options of {public}):"
                f" valid options are {', '.join(valid) or 'none'}"
            )
        result[key] = expect(where, key, value, kinds)
    return result
