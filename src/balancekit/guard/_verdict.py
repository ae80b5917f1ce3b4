"""Verdicts, the ``Guard`` protocol and ``Chain``: what every guard shares."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._bounded import bounded
from .._errors import InvalidOption
from .._options import describe, number
from ..request import Request
from ._collection import MAX_ITEMS

#: The most rule ids a rejection names: every rule of a full screen (MAX_ITEMS) and its
#: ``screen-oversize`` rule, so a screen's own verdict is never refused.
MAX_RULE_IDS = MAX_ITEMS + 1

__all__ = ["ALLOW", "Chain", "Guard", "ReleasingGuard", "Verdict", "key_text"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's decision on one request.

    ``allowed`` is the decision. A rejection carries a ``reason`` for logs, a suggested HTTP
    ``status`` (429 for rate and concurrency, 403 for bans and signatures), the ``rule_ids``
    that fired (never empty on a rejection), and when relevant ``retry_after`` (seconds) and
    ``banned_until`` (a reading of the guard's clock).
    """

    allowed: bool
    reason: str = ""
    status: int | None = None
    rule_ids: tuple[str, ...] = ()
    retry_after: float | None = None
    banned_until: float | None = None

    @classmethod
    def reject(
        cls,
        reason: str,
        *,
        status: int,
        rule_ids: Iterable[str],
        retry_after: float | None = None,
        banned_until: float | None = None,
    ) -> Verdict:
        """A rejection; ``rule_ids`` must name at least one rule."""
        if isinstance(rule_ids, str) or not isinstance(rule_ids, Iterable):
            raise InvalidOption(
                f"rule_ids must be a collection of str (one string is refused: use"
                f" rule_ids=[...]), got {describe(rule_ids)}"
            )
        ids_list: list[str] = []
        for rule in bounded("rule_ids", rule_ids, MAX_RULE_IDS):
            if not isinstance(rule, str):
                raise InvalidOption(f"rule_ids must be str, got {describe(rule)}")
            ids_list.append(rule)
        ids = tuple(ids_list)
        if not ids:
            raise InvalidOption("a rejection must name the rule ids that fired")
        if not isinstance(reason, str):
            raise InvalidOption(f"reason must be a str, got {describe(reason)}")
        for name, value in (("retry_after", retry_after), ("banned_until", banned_until)):
            if value is not None:
                number(
                    name,
                    value,
                    low=-math.inf,
                    high=math.inf,
                    low_open=False,
                    high_open=False,
                    what="a number (not NaN) or None",
                )
        return cls(False, reason, check_status(status), ids, retry_after, banned_until)


#: The verdict of a guard that lets the request through.
ALLOW = Verdict(True)


@runtime_checkable
class Guard(Protocol):
    """Anything with ``check(request) -> Verdict``; guards run before selection."""

    def check(self, request: Request) -> Verdict: ...


@runtime_checkable
class ReleasingGuard(Guard, Protocol):
    """A guard that reserves something on an allowed check (a concurrency slot) and must be
    told when the request ends."""

    def release(self, request: Request) -> None: ...


def check_status(status: object) -> int:
    """Validate a guard's ``status`` option."""
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise InvalidOption(
            f"status must be an HTTP error status (4xx/5xx), got {describe(status)}"
        )
    return status


#: Keys longer than this (characters of a str, bytes of a bytes key) are stored as a digest.
MAX_KEY_LENGTH = 64


def key_text(key: object) -> str:
    """A key as a storage identifier of bounded size.

    ``str`` keys become ``s:`` + the key, ``bytes`` ``b:`` + hex, ``None`` (no key) the shared
    ``-`` bucket, so the three can never collide. A key longer than :data:`MAX_KEY_LENGTH` is
    stored as ``hs:`` / ``hb:`` + its 128-bit BLAKE2b digest (str as UTF-8 with
    ``surrogatepass``, so a lone surrogate still has one), which bounds each guard's memory per
    key (a 1 MB header value as a key costs 36 bytes, not 1 MB) and is the same in every
    process. Anything else raises :class:`InvalidOption`. O(len(key)).
    """
    if key is None:
        return "-"
    if isinstance(key, bytes | bytearray):
        if len(key) <= MAX_KEY_LENGTH:
            return "b:" + key.hex()
        return "hb:" + hashlib.blake2b(key, digest_size=16).hexdigest()
    if isinstance(key, str):
        if len(key) <= MAX_KEY_LENGTH:
            return "s:" + key
        data = key.encode("utf-8", "surrogatepass")
        return "hs:" + hashlib.blake2b(data, digest_size=16).hexdigest()
    raise InvalidOption(
        f"a guard's key extractor must return str, bytes or None, got {describe(key)}"
    )


class Chain:
    """Run guards in order; the first rejection wins (later guards do not see the request).

    When a guard rejects or raises, the :class:`ReleasingGuard` s before it that allowed the
    request are released at once. After an allowed request completes, call :meth:`release`.
    Put cheap, decisive guards first: ``Chain([bans, rate, concurrency, screen])``. O(guards).
    """

    __slots__ = ("_guards", "_releasing")

    def __init__(self, guards: Iterable[Guard]) -> None:
        if isinstance(guards, str | bytes) or not isinstance(guards, Iterable):
            raise InvalidOption(
                f"Chain takes a collection of guards (not one string), got {describe(guards)}"
            )
        checked: list[Guard] = []
        # Checked as read, at most MAX_ITEMS: an endless iterable (of guards or not) stops.
        for guard in bounded("Chain's guards", guards, MAX_ITEMS):
            if not callable(getattr(guard, "check", None)):
                raise InvalidOption(
                    f"Chain takes guards (objects with check()), got {describe(guard)}"
                )
            checked.append(guard)
        self._guards = tuple(checked)
        self._releasing = tuple(g if isinstance(g, ReleasingGuard) else None for g in self._guards)

    @property
    def guards(self) -> tuple[Guard, ...]:
        """The guards, in order."""
        return self._guards

    def check(self, request: Request) -> Verdict:
        """The first rejection among the guards, or :data:`ALLOW`.

        When a guard rejects *or raises* (any exception, also ``KeyboardInterrupt`` or a
        cancellation), the releasing guards before it, which took a slot, are released before
        the verdict is returned or the exception propagates: a check either holds every slot
        (it returned ``ALLOW``) or none.
        """
        held = 0  # guards that allowed the request (and may hold a slot)
        try:
            for guard in self._guards:
                verdict = guard.check(request)
                if not isinstance(verdict, Verdict):
                    raise InvalidOption(
                        f"guard {describe(guard)} returned {describe(verdict)}, not a Verdict"
                    )
                if not verdict.allowed:
                    break
                held += 1
            else:
                return ALLOW
        except BaseException:
            self._release(self._releasing[:held], request)
            raise
        self._release(self._releasing[:held], request)
        return verdict

    def release(self, request: Request) -> None:
        """Tell every releasing guard that an allowed request has finished.

        Every guard is released even if one of them raises; the first exception then
        propagates.
        """
        self._release(self._releasing, request)

    @staticmethod
    def _release(guards: tuple[ReleasingGuard | None, ...], request: Request) -> None:
        failure: BaseException | None = None
        for guard in guards:
            if guard is not None:
                try:
                    guard.release(request)
                except BaseException as exc:  # release the rest, then report the first
                    if failure is None:
                        failure = exc
        if failure is not None:
            raise failure
