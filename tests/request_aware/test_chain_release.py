"""Chain holds every slot or none: a guard that rejects *or raises* gives back earlier slots.

Issue 10, item 15: a ConcurrencyLimit before a guard that raised kept its slot, so after
``max_in_flight`` such requests the key was locked out for good. Every exception counts,
including BaseException subclasses (KeyboardInterrupt, asyncio.CancelledError).
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from balancekit import InvalidOption, Request
from balancekit.guard import ALLOW, Chain, ConcurrencyLimit, Verdict

REQUEST = Request(client_addr="198.51.100.1")


class Boom(Exception):
    pass


class Raises:
    """A guard that raises ``error`` from check (a screen with a bug, a cancelled await...)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def check(self, request: Request) -> Verdict:
        raise self.error


class Deny:
    def check(self, request: Request) -> Verdict:
        return Verdict.reject("no", status=403, rule_ids=("deny",))


class Allow:
    def check(self, request: Request) -> Verdict:
        return ALLOW


ERRORS = [Boom("bug"), KeyboardInterrupt(), asyncio.CancelledError(), SystemExit(3)]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_a_raising_guard_does_not_lock_the_key_out(error: BaseException) -> None:
    first, second = ConcurrencyLimit(1), ConcurrencyLimit(2)
    chain = Chain([first, Allow(), second, Raises(error)])
    for _ in range(3):  # more times than max_in_flight: a leak would lock the key out
        with pytest.raises(type(error)):
            chain.check(REQUEST)
        assert first.in_flight(REQUEST) == second.in_flight(REQUEST) == 0
    assert Chain([first, second]).check(REQUEST).allowed


def test_a_guard_returning_something_else_is_refused_and_releases() -> None:
    limit = ConcurrencyLimit(1)

    class Sloppy:
        def check(self, request: Request) -> object:
            return True

    with pytest.raises(InvalidOption, match="not a Verdict"):
        Chain([limit, Sloppy()]).check(REQUEST)  # type: ignore[list-item]
    assert limit.in_flight(REQUEST) == 0


def test_release_releases_every_guard_even_if_one_raises() -> None:
    first, last = ConcurrencyLimit(1), ConcurrencyLimit(1)

    class BadRelease(ConcurrencyLimit):
        def release(self, request: Request) -> None:
            raise Boom("release failed")

    chain = Chain([first, BadRelease(1), last])
    assert chain.check(REQUEST).allowed
    with pytest.raises(Boom):
        chain.release(REQUEST)
    assert first.in_flight(REQUEST) == last.in_flight(REQUEST) == 0


GUARD_KINDS = st.sampled_from(["limit", "allow", "deny", "boom", "cancel"])


@given(st.lists(GUARD_KINDS, min_size=1, max_size=6), st.integers(1, 4))
def test_a_check_holds_every_slot_or_none(kinds: list[str], rounds: int) -> None:
    """Model: an allowed check adds one to every limit's count; anything else changes none."""
    limits = [ConcurrencyLimit(10) for kind in kinds if kind == "limit"]
    pool = iter(limits)
    make = {
        "allow": Allow,
        "deny": Deny,
        "boom": lambda: Raises(Boom("x")),
        "cancel": lambda: Raises(asyncio.CancelledError()),
    }
    guards = [next(pool) if kind == "limit" else make[kind]() for kind in kinds]
    chain = Chain(guards)  # type: ignore[arg-type]
    expected = 0
    for _ in range(rounds):
        try:
            allowed = chain.check(REQUEST).allowed
        except (Boom, asyncio.CancelledError):
            allowed = False
        expected += allowed
        assert [limit.in_flight(REQUEST) for limit in limits] == [expected] * len(limits)
    for _ in range(expected):
        chain.release(REQUEST)
    assert all(limit.in_flight(REQUEST) == 0 for limit in limits)
