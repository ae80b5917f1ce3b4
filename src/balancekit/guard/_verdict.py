"""Verdicts, the ``Guard`` protocol and ``Chain``: what every guard shares."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._errors import InvalidOption
from ..request import Request
from ._collection import collection

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
        ids = collection("rule_ids", rule_ids)
        if not ids:
            raise InvalidOption("a rejection must name the rule ids that fired")
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise InvalidOption(f"status must be an HTTP error status (4xx/5xx), got {status!r}")
        return cls(False, reason, status, ids, retry_after, banned_until)


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
        raise InvalidOption(f"status must be an HTTP error status (4xx/5xx), got {status!r}")
    return status


def key_text(key: str | bytes | None) -> str:
    """A key as a storage identifier: ``str`` keys prefixed ``s:``, ``bytes`` as ``b:`` + hex,
    ``None`` (no key) as the shared ``-`` bucket, so the three can never collide."""
    if key is None:
        return "-"
    if isinstance(key, bytes):
        return "b:" + key.hex()
    return "s:" + key


class Chain:
    """Run guards in order; the first rejection wins (later guards do not see the request).

    When a guard rejects, the :class:`ReleasingGuard` s before it that allowed the request are
    released at once. After an allowed request completes, call :meth:`release`. Put cheap,
    decisive guards first: ``Chain([bans, rate, concurrency, screen])``. O(guards).
    """

    __slots__ = ("_guards", "_releasing")

    def __init__(self, guards: Iterable[Guard]) -> None:
        self._guards: tuple[Guard, ...] = collection("guards", guards)
        for guard in self._guards:
            if not callable(getattr(guard, "check", None)):
                raise InvalidOption(f"Chain takes guards (objects with check()), got {guard!r}")
        self._releasing = tuple(g if isinstance(g, ReleasingGuard) else None for g in self._guards)

    @property
    def guards(self) -> tuple[Guard, ...]:
        """The guards, in order."""
        return self._guards

    def check(self, request: Request) -> Verdict:
        """The first rejection among the guards, or :data:`ALLOW`."""
        for index, guard in enumerate(self._guards):
            verdict = guard.check(request)
            if not verdict.allowed:
                for earlier in self._releasing[:index]:
                    if earlier is not None:
                        earlier.release(request)
                return verdict
        return ALLOW

    def release(self, request: Request) -> None:
        """Tell every releasing guard that an allowed request has finished."""
        for guard in self._releasing:
            if guard is not None:
                guard.release(request)
