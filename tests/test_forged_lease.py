"""Leases given back twice, rebuilt, or forged, against every strategy in both builds.

``release`` and ``cancel`` find a lease's state by its token, then check that the state's
endpoint is the lease's (``state.endpoint is lease._endpoint``, else their addresses equal:
``_core.not_its_state``). Before that check, a Lease built by hand with the token of ANOTHER
outstanding lease, on another endpoint, was accepted, and the other lease's endpoint given
back: its in-flight count dropped while its request still ran, and the genuine lease was then
refused. A reweight or ``update()`` replaces the state's Endpoint, and a pickled lease sent
back carries a copy: those two cases are pinned here, as releases that must still work. A
forged lease on the SAME endpoint as the lease whose token it carries is indistinguishable by
what a lease holds, and is not tested.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import balancekit as bk
from tests.conformance.registry import Case, all_cases

CASES = all_cases()
ADDRESSES = [f"10.0.0.{i}:80" for i in range(1, 7)]


def pool(case: Case) -> bk.Balancer:
    now = [0.0]

    def clock() -> float:
        now[0] += 0.001
        return now[0]

    return case.factory([bk.Endpoint(address) for address in ADDRESSES], clock)


def two_leases(case: Case, lb: bk.Balancer) -> tuple[bk.Lease, bk.Lease]:
    """Two outstanding leases on two different endpoints."""
    first = lb.select("k1" if case.keyed else None)
    for i in range(50):
        second = lb.select(f"k{i}" if case.keyed else None, avoid={first.address})
        if second.address != first.address:
            return first, second
    raise AssertionError("no second endpoint")  # pragma: no cover


def in_flight(lb: bk.Balancer) -> dict[str, int]:
    return {address: s.in_flight for address, s in lb.stats().items() if s.in_flight}


@pytest.mark.parametrize("give_back", ["release", "cancel"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_lease_given_back_twice_is_refused(case: Case, give_back: str) -> None:
    lb = pool(case)
    first, second = two_leases(case, lb)
    getattr(lb, give_back)(first)
    for again in ("release", "cancel"):
        with pytest.raises(bk.InvalidLease):
            getattr(lb, again)(first)
    assert in_flight(lb) == {second.address: 1}


@pytest.mark.parametrize("give_back", ["release", "cancel"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_forged_lease_with_another_endpoints_token_is_refused(case: Case, give_back: str) -> None:
    lb = pool(case)
    first, second = two_leases(case, lb)
    forged = bk.Lease(second.endpoint, first.token, first.started)
    before = in_flight(lb)
    with pytest.raises(bk.InvalidLease):
        getattr(lb, give_back)(forged)
    assert in_flight(lb) == before  # nothing changed
    lb.release(first)  # both genuine leases are still out, once each
    lb.release(second)
    assert in_flight(lb) == {}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_lease_issued_before_a_reweight_is_released(case: Case) -> None:
    # (set_weight gives the state a new Endpoint: an identity-only check would refuse this)
    lb = pool(case)
    first, second = two_leases(case, lb)
    assert isinstance(lb, bk.BalancerBase)
    lb.set_weight(first.address, 3)
    lb.update([bk.Endpoint(second.address, metadata={"v": 2}), first.address])
    lb.release(first)
    lb.release(second)
    assert in_flight(lb) == {}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_pickled_lease_sent_back_is_released(case: Case) -> None:
    # (its Endpoint is a copy: an identity-only check would refuse it)
    lb = pool(case)
    first, second = two_leases(case, lb)
    twin: Any = pickle.loads(pickle.dumps(first))
    assert twin.endpoint is not first.endpoint
    lb.release(twin)
    with pytest.raises(bk.InvalidLease):
        lb.release(first)
    assert in_flight(lb) == {second.address: 1}


@pytest.mark.parametrize("give_back", ["release", "cancel"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_blank_lease_with_another_leases_token_is_refused(case: Case, give_back: str) -> None:
    # Pure Python only: a Lease whose endpoint slot was never set (``object.__new__``). A fix
    # must read the lease's endpoint before it takes the token's entry out: read after, an
    # AttributeError would escape with the entry gone and nothing counted.
    lb = pool(case)
    first, second = two_leases(case, lb)
    try:
        blank: Any = object.__new__(bk.Lease)
    except TypeError:  # compiled: a native class is only ever built with its fields
        pytest.skip("the compiled Lease cannot be built without its fields")
    blank._token, blank._started = first.token, first.started  # all but the endpoint
    with pytest.raises(bk.InvalidLease):
        getattr(lb, give_back)(blank)
    lb.release(first)
    lb.release(second)
    assert in_flight(lb) == {}
