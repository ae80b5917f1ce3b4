"""Sticky tokens: round trip, expiry, key rotation, tamper detection, and re-balancing."""

from __future__ import annotations

import base64
from collections.abc import Collection
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk
from balancekit import InvalidOption, Request
from balancekit.sticky import InvalidToken, StickySessions

KEY = b"k" * 32
ADDRESSES = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_round_trip_and_info() -> None:
    clock = Clock()
    sticky = StickySessions(KEY, clock=clock)
    token = sticky.issue("10.0.0.1:80")
    assert sticky.verify(token) == "10.0.0.1:80"
    info = sticky.decode(token)
    assert (info.address, info.issued_at) == ("10.0.0.1:80", 1_700_000_000)
    assert len(token) < 64 and "=" not in token and "+" not in token and "/" not in token


def test_expiry_and_future_tokens() -> None:
    clock = Clock()
    sticky = StickySessions(KEY, clock=clock, max_age=60, leeway=5)
    token = sticky.issue("a:1")
    clock.now += 59
    assert sticky.verify(token) == "a:1"
    clock.now += 1
    with pytest.raises(InvalidToken, match="expired"):
        sticky.decode(token)
    clock.now -= 100
    with pytest.raises(InvalidToken, match="future"):
        sticky.decode(token)


def test_other_keys_and_rotation() -> None:
    old = StickySessions(b"o" * 32)
    token = old.issue("a:1")
    assert StickySessions(KEY).verify(token) is None
    assert StickySessions(KEY, previous_keys=[b"o" * 32]).verify(token) == "a:1"


@pytest.mark.parametrize(
    "token", ["", "!!!", "AAAA", "A" * 7, "é", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(InvalidToken):
        StickySessions(KEY).decode(token)
    assert StickySessions(KEY).verify(token) is None


@pytest.mark.parametrize(
    "options",
    [
        {"key": b"short"},
        {"key": "text" * 8},
        {"key": KEY, "max_age": 0},
        {"key": KEY, "max_age": float("inf")},
        {"key": KEY, "leeway": -1},
        {"key": KEY, "clock": 3},
        {"key": KEY, "previous_keys": [b"x"]},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidOption):
        StickySessions(**options)


@given(st.text(min_size=1, max_size=40), st.data())
def test_tampering_any_byte_is_always_detected(address: str, data: st.DataObject) -> None:
    sticky = StickySessions(KEY, clock=Clock())
    token = sticky.issue(address)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    index = data.draw(st.integers(0, len(raw) - 1))
    flip = data.draw(st.integers(1, 255))
    raw[index] ^= flip
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert sticky.verify(forged) is None


@given(st.text(min_size=1, max_size=40), st.data())
def test_tampering_any_character_is_always_detected(address: str, data: st.DataObject) -> None:
    sticky = StickySessions(KEY, clock=Clock())
    token = sticky.issue(address)
    index = data.draw(st.integers(0, len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/="
    char = data.draw(st.sampled_from([c for c in alphabet if c != token[index]]))
    assert sticky.verify(token[:index] + char + token[index + 1 :]) is None
    assert sticky.verify(token[:index] + token[index + 1 :]) is None  # a deleted character


def test_select_reuses_the_token_endpoint_while_it_is_up() -> None:
    lb = bk.RoundRobin(ADDRESSES)
    sticky = StickySessions(KEY)
    first = sticky.select(lb, Request())
    assert first.reissued
    lb.release(first.lease)
    for _ in range(5):
        again = sticky.select(lb, Request(), token=first.token)
        assert (again.lease.address, again.token, again.reissued) == (
            first.lease.address,
            first.token,
            False,
        )
        lb.release(again.lease)
    assert all(s.in_flight == 0 for s in lb.stats().values())


def test_select_rebalances_when_the_endpoint_is_down_removed_or_avoided() -> None:
    lb = bk.LeastConnections(ADDRESSES)
    sticky = StickySessions(KEY)
    token = sticky.issue("10.0.0.2:80")
    lb.mark_down("10.0.0.2:80")
    moved = sticky.select(lb, Request(), token=token)
    assert moved.reissued and moved.lease.address != "10.0.0.2:80"
    assert sticky.verify(moved.token) == moved.lease.address
    lb.mark_up("10.0.0.2:80")
    avoided = sticky.select(lb, Request(), token=token, avoid={"10.0.0.2:80"})
    assert avoided.reissued and avoided.lease.address != "10.0.0.2:80"
    lb.remove("10.0.0.2:80")
    assert sticky.select(lb, Request(), token=token).reissued
    assert sticky.select(lb, Request(), token="garbage").reissued


def test_select_rebalances_when_health_holds_the_endpoint_out() -> None:
    lb = bk.with_health(bk.RoundRobin(ADDRESSES), bk.PassiveHealth(consecutive_failures=2))
    tracker = bk.health_of(lb)
    assert tracker is not None
    sticky = StickySessions(KEY)
    token = sticky.issue("10.0.0.2:80")
    tracker.set_check("10.0.0.2:80", False, "connection refused")  # held down by a check
    checked = sticky.select(lb, Request(), token=token)
    assert checked.reissued and checked.lease.address != "10.0.0.2:80"
    lb.release(checked.lease)
    tracker.set_check("10.0.0.2:80", True)
    for _ in range(2):  # two failures in a row: passive health ejects it
        lease = lb.select(avoid=[a for a in ADDRESSES if a != "10.0.0.2:80"])
        lb.release(lease, ok=False)
    assert "10.0.0.2:80" in tracker.ejected()
    ejected = sticky.select(lb, Request(), token=token)
    assert ejected.reissued and ejected.lease.address != "10.0.0.2:80"


@pytest.mark.parametrize("strategy", [bk.LeastConnections, bk.LeastResponseTime])
def test_a_pinned_request_counts_as_load_for_the_others(strategy: type[bk.BalancerBase]) -> None:
    lb = strategy(ADDRESSES)
    sticky = StickySessions(KEY)
    token = sticky.issue(ADDRESSES[0])
    pinned = [sticky.select(lb, Request(), token=token) for _ in range(2)]
    assert all(not choice.reissued and choice.lease.address == ADDRESSES[0] for choice in pinned)
    assert lb.stats()[ADDRESSES[0]].in_flight == 2
    others = [lb.select() for _ in range(len(ADDRESSES) - 1)]
    assert {lease.address for lease in others} == set(ADDRESSES[1:])  # not the busy pinned one
    for lease in [*(choice.lease for choice in pinned), *others]:
        lb.release(lease, elapsed=0.01)
    assert all(s.in_flight == 0 for s in lb.stats().values())


def test_sticky_select_is_o1_in_the_pool_size() -> None:
    big = bk.RoundRobin([f"10.1.{i // 250}.{i % 250}:80" for i in range(5000)])
    sticky = StickySessions(KEY)
    token = sticky.issue("10.1.9.9:80")
    calls = []

    def counting_stats() -> dict[str, bk.EndpointStats]:
        calls.append(1)
        return {}

    big.stats = counting_stats  # type: ignore[method-assign]
    choice = sticky.select(big, Request(), token=token)
    assert choice.lease.address == "10.1.9.9:80" and not choice.reissued
    assert calls == []  # no O(members) snapshot taken


class StubbornBalancer:
    """Always picks its first endpoint, ignoring avoid: the token must then be reissued."""

    def __init__(self) -> None:
        self.lb = bk.RoundRobin(ADDRESSES)

    @property
    def endpoints(self) -> tuple[bk.Endpoint, ...]:
        return self.lb.endpoints

    def stats(self) -> dict[str, bk.EndpointStats]:
        return self.lb.stats()

    def select(self, context: Any = None, *, avoid: Collection[str] = ()) -> bk.Lease:
        return self.lb.select(context)


def test_a_balancer_that_picks_otherwise_gets_a_new_token() -> None:
    sticky = StickySessions(KEY)
    choice = sticky.select(StubbornBalancer(), token=sticky.issue("10.0.0.3:80"))
    assert choice.reissued and sticky.verify(choice.token) == choice.lease.address == "10.0.0.1:80"
