"""Addresses are stored canonically (``Endpoint``); every method that takes an address finds
the member however the caller spells it (case, leading zeros in the port, a trailing dot,
IPv6 forms), as it would be refused as a duplicate on ``add``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import balancekit as bk

FACTORIES: dict[str, Callable[[list[str]], bk.BalancerBase]] = {
    "RoundRobin": lambda eps: bk.RoundRobin(eps),
    "WeightedRoundRobin": lambda eps: bk.WeightedRoundRobin(eps),
    "LeastConnections": lambda eps: bk.LeastConnections(eps),
    "IPHash": lambda eps: bk.IPHash(eps),
}
SPELLINGS = [("a:80", "A:080"), ("a:80", "a.:80"), ("[::1]:80", "[0:0::1]:80")]


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize(("stored", "spelt"), SPELLINGS)
def test_every_address_argument_finds_the_member_however_spelt(
    name: str, stored: str, spelt: str
) -> None:
    lb = FACTORIES[name]([stored, "b:80"])
    assert spelt in lb
    lb.set_weight(spelt, 2)
    assert lb.stats()[stored].weight == 2
    for _ in range(4):  # avoid= spelt otherwise still avoids the member
        lease = lb.select("key", avoid={spelt})
        assert lease.address == "b:80"
        lb.release(lease)
    assert lb.can_select(avoid={spelt, "b:80"}) is False
    lease = lb.select_override(spelt)
    assert lease is not None and lease.address == stored
    lb.release(lease)
    lb.mark_down(spelt)
    assert lb.stats()[stored].up is False
    lb.mark_up(spelt)
    lb.remove(spelt)
    assert stored not in lb and [e.address for e in lb.endpoints] == ["b:80"]


def test_an_address_that_is_no_address_is_still_unknown() -> None:
    lb = bk.RoundRobin(["a:80"])
    with pytest.raises(bk.UnknownEndpoint):
        lb.remove("not an address")
    assert "not an address" not in lb
    assert lb.select(avoid={"not an address"}).address == "a:80"
