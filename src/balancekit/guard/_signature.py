"""One signature: an id, a regex searched in normalised text, and literal triggers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .._errors import InvalidOption
from .._options import describe
from ._collection import collection

__all__ = ["FIELDS", "Signature"]

#: The request fields a signature can apply to.
FIELDS = frozenset({"path", "query", "headers", "body"})


@dataclass(frozen=True, slots=True, init=False)
class Signature:
    """One rule: ``id``, a regex searched in normalised (lower-case) text, and ``triggers``:
    literals of which at least one occurs in every text the regex can match (lower case).
    ``fields`` limits it to some of :data:`FIELDS`; ``description`` says what it catches.

    The screen bounds the text a rule sees (``field_limit``), but cannot make a user's regex
    linear: write patterns whose quantifiers cannot overlap (possessive ``*+``/``++`` or bounded
    ``{0,N}`` repeats), as the default rules do.
    """

    id: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...]
    fields: frozenset[str]
    description: str

    def __init__(
        self,
        id: str,
        pattern: str,
        *,
        triggers: Iterable[str],
        fields: Iterable[str] = FIELDS,
        description: str = "",
    ) -> None:
        if not isinstance(id, str) or not id:
            raise InvalidOption(f"a signature needs a non-empty str id, got {describe(id)}")
        try:
            compiled = re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise InvalidOption(f"signature {id}: pattern does not compile: {exc}") from None
        trig = collection("triggers", triggers)
        if not trig or not all(isinstance(t, str) and t and t == t.lower() for t in trig):
            raise InvalidOption(f"signature {id}: triggers must be non-empty lower-case strings")
        field_set = frozenset(collection("fields", fields))
        if not field_set or not field_set <= FIELDS:
            raise InvalidOption(
                f"signature {id}: fields must be a non-empty subset of {sorted(FIELDS)}"
            )
        setter = object.__setattr__
        setter(self, "id", id)
        setter(self, "pattern", compiled)
        setter(self, "triggers", trig)
        setter(self, "fields", field_set)
        setter(self, "description", description)
