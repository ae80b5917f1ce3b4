"""DeterministicAperture (the subsetter) and Aperture (P2C inside the slice)."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import balancekit as bk
from balancekit.subset import MIN_APERTURE, Aperture, DeterministicAperture


@settings(max_examples=300)
@given(st.integers(1, 300), st.integers(1, 300), st.booleans())
def test_every_server_carries_the_same_load(clients: int, servers: int, weighted: bool) -> None:
    """Finagle's point: the slices of all clients cover the ring evenly, so summed over the
    fleet each server gets the same share (unweighted), or a share proportional to its weight."""
    pool = [
        bk.Endpoint(f"s{i:03d}:80", weight=1 + i % 3 if weighted else 1) for i in range(servers)
    ]
    totals: defaultdict[str, float] = defaultdict(float)
    for client in range(clients):
        aperture = DeterministicAperture(client, clients, weighted=weighted)
        coverage = aperture.coverage(pool)
        assert len(coverage) >= min(MIN_APERTURE, servers) or weighted
        for endpoint, weight in coverage:
            # A weighted share is a part of the normalised ring; scale it to server units.
            totals[endpoint.address] += weight * servers if weighted else weight
    assert len(totals) == servers
    total_weight = sum(e.weight for e in pool)
    for endpoint in pool:
        expected = endpoint.weight / total_weight * servers if weighted else 1.0
        share = totals[endpoint.address] / sum(totals.values()) * servers
        assert math.isclose(share, expected, rel_tol=1e-6)


@given(st.integers(1, 200), st.integers(1, 400))
def test_slice_holds_at_least_the_minimum_aperture(clients: int, servers: int) -> None:
    pool = [f"s{i:03d}:80" for i in range(servers)]
    for client in {0, clients // 2, clients - 1}:
        chosen = DeterministicAperture(client, clients).subset(pool)
        assert min(MIN_APERTURE, servers) <= len(chosen) <= servers


def test_connections_per_client_are_bounded() -> None:
    """100 clients x 300 servers: each client talks to ~12 servers, not 300."""
    pool = [f"10.4.{i // 200}.{i % 200}:80" for i in range(300)]
    sizes = [len(DeterministicAperture(c, 100).subset(pool)) for c in range(100)]
    assert max(sizes) <= 16
    assert min(sizes) >= MIN_APERTURE


def test_never_picks_outside_the_slice_while_it_has_capacity() -> None:
    pool = [f"s{i:03d}:80" for i in range(60)]
    lb = Aperture(pool, instance_id=2, instances=10, seed=3)
    inside = {e.address for e, _ in lb.slice}
    leases = [lb.select() for _ in range(200)]
    assert {lease.address for lease in leases} <= inside
    for lease in leases:
        lb.release(lease)
    lb._check_invariants()


def test_falls_back_outside_the_slice_only_when_it_is_all_down() -> None:
    pool = [f"s{i:03d}:80" for i in range(40)]
    lb = Aperture(pool, instance_id=0, instances=4, seed=4)
    inside = [e.address for e, _ in lb.slice]
    for address in inside[:-1]:
        lb.mark_down(address)
    assert {lb.select().address for _ in range(50)} == {inside[-1]}
    lb.mark_down(inside[-1])
    outside = {lb.select().address for _ in range(50)}
    assert outside and not outside & set(inside)
    for address in pool:
        lb.mark_down(address)
    with pytest.raises(bk.NoEndpointAvailable):
        lb.select()


def test_avoid_is_respected() -> None:
    pool = [f"s{i:03d}:80" for i in range(30)]
    lb = Aperture(pool, instance_id=1, instances=3, seed=5)
    first = lb.select()
    for _ in range(100):
        lease = lb.select(avoid={first.address})
        assert lease.address != first.address
        lb.release(lease)


def test_p2c_prefers_the_less_loaded() -> None:
    pool = [f"s{i:03d}:80" for i in range(12)]
    lb = Aperture(pool, instance_id=0, instances=1, seed=6)
    held = [lb.select() for _ in range(120)]
    loads = [lb.stats()[a].in_flight for a in pool]
    assert max(loads) - min(loads) <= 3  # P2C keeps 120 requests over 12 servers near 10 each
    for lease in held:
        lb.release(lease)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"instance_id": 0, "instances": 0},
        {"instance_id": 3, "instances": 3},
        {"instance_id": -1, "instances": 3},
        {"instance_id": 0, "instances": 3, "min_aperture": 0},
        {"instance_id": 0, "instances": 3, "weighted": "yes"},
        {"instance_id": 0, "instances": 10**400},
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        DeterministicAperture(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption):
        Aperture(["a:1"], **kwargs)  # type: ignore[arg-type]


class ApertureMachine(RuleBasedStateMachine):
    """Membership churn, health marks and leases against a trivial model: every lease is on a
    usable member (inside the slice when the slice has one), counts return to zero."""

    def __init__(self) -> None:
        super().__init__()
        self.lb = Aperture(instance_id=1, instances=3, min_aperture=3, seed=9)
        self.members: set[str] = set()
        self.down: set[str] = set()
        self.leases: list[bk.Lease] = []

    @rule(i=st.integers(0, 15))
    def add(self, i: int) -> None:
        address = f"m{i:02d}:80"
        if address not in self.members:
            self.lb.add(address)
            self.members.add(address)

    @rule(i=st.integers(0, 15))
    def remove(self, i: int) -> None:
        address = f"m{i:02d}:80"
        if address in self.members:
            self.lb.remove(address)
            self.members.discard(address)
            self.down.discard(address)

    @rule(i=st.integers(0, 15), up=st.booleans())
    def mark(self, i: int, up: bool) -> None:
        address = f"m{i:02d}:80"
        if address in self.members:
            (self.lb.mark_up if up else self.lb.mark_down)(address)
            (self.down.discard if up else self.down.add)(address)

    @rule()
    def select(self) -> None:
        usable = self.members - self.down
        if not usable:
            with pytest.raises(bk.NoEndpointAvailable):
                self.lb.select()
            return
        lease = self.lb.select()
        inside = {e.address for e, _ in self.lb.slice} & usable
        assert lease.address in (inside or usable)
        self.leases.append(lease)

    @rule(ok=st.booleans())
    def release(self, ok: bool) -> None:
        if self.leases:
            self.lb.release(self.leases.pop(0), ok=ok)

    @invariant()
    def consistent(self) -> None:
        self.lb._check_invariants()
        expected = DeterministicAperture(1, 3, min_aperture=3).coverage(self.members)
        assert self.lb.slice == expected


TestApertureMachine = ApertureMachine.TestCase
TestApertureMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


def test_ejected_servers_are_skipped_inside_the_slice() -> None:
    """Passive health (with_health) ejects a failing server of the slice; picks avoid it."""
    pool = [f"s{i:03d}:80" for i in range(30)]
    lb = bk.with_health(
        Aperture(pool, instance_id=0, instances=3, seed=8),
        bk.PassiveHealth(consecutive_failures=2),
    )
    victim = lb.slice[0][0].address
    for _ in range(2):
        lb.release(lb.select_override(victim) or lb.select(), ok=False)
    picks = set()
    for _ in range(300):
        lease = lb.select()
        picks.add(lease.address)
        lb.release(lease)
    assert victim not in picks
    assert picks <= {e.address for e, _ in lb.slice}
