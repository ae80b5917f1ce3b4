"""The one conformance suite: every property here runs against every registered strategy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk

from .registry import Case, all_cases

CASES = all_cases()
pytestmark = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def build(case: Case, endpoints: list[bk.Endpoint]) -> tuple[bk.Balancer, FakeClock]:
    clock = FakeClock()
    return case.factory(endpoints, clock), clock


def context(case: Case, i: int) -> str | None:
    return f"client-{i}" if case.keyed else None


def pool(weights: list[int]) -> list[bk.Endpoint]:
    return [bk.Endpoint(f"10.0.0.{i + 1}:80", weight=w) for i, w in enumerate(weights)]


weights_lists = st.lists(st.integers(1, 5), min_size=1, max_size=8)


def remove_and_mark_down(lb: bk.Balancer, addresses: list[str], data: st.DataObject) -> set[str]:
    """Remove some endpoints and mark some others down (drawn); return the eligible ones."""
    removed = set(data.draw(st.sets(st.sampled_from(addresses)), label="removed"))
    down = set(data.draw(st.sets(st.sampled_from(addresses)), label="down")) - removed
    for address in removed:
        lb.remove(address)
    for address in down:
        lb.mark_down(address)
    return set(addresses) - removed - down


@settings(max_examples=40, deadline=None)
@given(weights=weights_lists, data=st.data())
def test_never_returns_removed_or_down(case: Case, weights: list[int], data: st.DataObject) -> None:
    endpoints = pool(weights)
    lb, _ = build(case, endpoints)
    addresses = [e.address for e in endpoints]
    eligible = remove_and_mark_down(lb, addresses, data)
    for i in range(50):
        if not eligible:
            with pytest.raises(bk.NoEndpointAvailable):
                lb.select(context(case, i))
            break
        lease = lb.select(context(case, i))
        assert lease.address in eligible
        lb.release(lease, ok=i % 3 != 0, elapsed=0.001 * (i % 7))


@settings(max_examples=30, deadline=None)
@given(weights=weights_lists, data=st.data())
def test_avoid_is_respected(case: Case, weights: list[int], data: st.DataObject) -> None:
    endpoints = pool(weights)
    lb, _ = build(case, endpoints)
    addresses = [e.address for e in endpoints]
    avoid = data.draw(st.sets(st.sampled_from(addresses)), label="avoid")
    for i in range(30):
        if avoid == set(addresses):
            with pytest.raises(bk.NoEndpointAvailable):
                lb.select(context(case, i), avoid=avoid)
            break
        lease = lb.select(context(case, i), avoid=avoid)
        assert lease.address not in avoid
        lb.release(lease)


@settings(max_examples=30, deadline=None)
@given(weights=weights_lists, data=st.data())
def test_select_override_takes_only_an_eligible_endpoint_and_counts_it(
    case: Case, weights: list[int], data: st.DataObject
) -> None:
    endpoints = pool(weights)
    lb, _ = build(case, endpoints)
    assert isinstance(lb, bk.BalancerBase)
    addresses = [e.address for e in endpoints]
    eligible = remove_and_mark_down(lb, addresses, data)
    leases = []
    for address in [*addresses, "10.9.9.9:80"]:
        lease = lb.select_override(address)
        if address in eligible:
            assert lease is not None and lease.address == address
            leases.append(lease)
        else:
            assert lease is None
    assert {a for a, s in lb.stats().items() if s.in_flight} == eligible
    for i in range(20 if eligible else 0):  # ordinary picks mixed in keep the books right
        lease = lb.select(context(case, i))
        assert lease.address in eligible
        leases.append(lease)
    lb._check_invariants()
    for lease in leases:
        lb.release(lease)
    assert all(s.in_flight == 0 for s in lb.stats().values())
    lb._check_invariants()


def test_empty_and_all_down_pools_raise(case: Case) -> None:
    lb, _ = build(case, [])
    with pytest.raises(bk.NoEndpointAvailable, match="no endpoints"):
        lb.select(context(case, 0))
    lb.add("10.0.0.1:80")
    lb.add(bk.Endpoint("10.0.0.2:80", weight=2))
    lb.mark_down("10.0.0.1:80")
    lb.mark_down("10.0.0.2:80")
    with pytest.raises(bk.NoEndpointAvailable, match="marked down"):
        lb.select(context(case, 0))
    with pytest.raises(LookupError):  # also the builtin a caller would catch
        lb.select(context(case, 0))
    lb.mark_up("10.0.0.2:80")
    assert lb.select(context(case, 0)).address == "10.0.0.2:80"


@settings(max_examples=40, deadline=None)
@given(weights=weights_lists, ops=st.lists(st.tuples(st.booleans(), st.integers(0, 10**6))))
def test_in_flight_returns_to_zero(
    case: Case, weights: list[int], ops: list[tuple[bool, int]]
) -> None:
    lb, clock = build(case, pool(weights))
    leases: list[bk.Lease] = []
    for i, (do_select, pick) in enumerate(ops):
        clock.now += 0.001
        if do_select or not leases:
            leases.append(lb.select(context(case, i)))
        else:
            lb.release(leases.pop(pick % len(leases)), ok=pick % 2 == 0)
    stats = lb.stats()
    assert sum(s.in_flight for s in stats.values()) == len(leases)
    for lease in leases:
        lb.release(lease)
    stats = lb.stats()
    assert all(s.in_flight == 0 for s in stats.values())
    assert sum(s.selected for s in stats.values()) == sum(
        s.succeeded + s.failed for s in stats.values()
    )
    lb._check_invariants()  # type: ignore[attr-defined]


def test_double_and_foreign_release_raise_without_corrupting(case: Case) -> None:
    lb, _ = build(case, pool([1, 2, 3]))
    lease = lb.select(context(case, 1))
    lb.release(lease, ok=False)
    before = lb.stats()
    with pytest.raises(bk.InvalidLease, match="already released"):
        lb.release(lease)
    other, _ = build(case, pool([1, 2, 3]))
    with pytest.raises(bk.InvalidLease):
        lb.release(other.select(context(case, 1)))
    with pytest.raises(bk.InvalidLease):
        lb.release(bk.Lease(bk.Endpoint("10.0.0.1:80"), 10**15, 0.0))
    for not_a_lease in ("10.0.0.1:80", None, 7, ("x",), [lease]):
        with pytest.raises(bk.InvalidLease, match="takes the Lease"):
            lb.release(not_a_lease)  # type: ignore[arg-type]
    assert lb.stats() == before
    assert before[lease.address].failed == 1


def test_one_string_as_avoid_is_refused(case: Case) -> None:
    lb, _ = build(case, [bk.Endpoint("10.0.0.1:80"), bk.Endpoint("10.0.0.1:8080")])
    with pytest.raises(bk.InvalidOption, match="collection of addresses"):
        lb.select(context(case, 1), avoid="10.0.0.1:8080")
    # as a set it means what it says: "10.0.0.1:80" is not avoided (no substring match)
    lease = lb.select(context(case, 1), avoid={"10.0.0.1:8080"})
    assert lease.address == "10.0.0.1:80"
    lb.release(lease)
    assert all(s.in_flight == 0 for s in lb.stats().values())


def test_release_after_removal_and_update_keep_counts(case: Case) -> None:
    lb, _ = build(case, pool([1, 1, 1]))
    leases = [lb.select(context(case, i)) for i in range(9)]
    target = leases[0].address
    lb.remove(target)
    assert target not in lb.stats()
    lb.add(target)  # re-added while its old leases are out: one in-flight count
    outstanding = sum(1 for lease in leases if lease.address == target)
    assert lb.stats()[target].in_flight == outstanding
    lb.update([*lb.endpoints, bk.Endpoint("10.0.0.9:80", weight=2)])
    for lease in leases:
        lb.release(lease)
    assert all(s.in_flight == 0 for s in lb.stats().values())
    lb._check_invariants()  # type: ignore[attr-defined]


def test_unknown_endpoints_raise(case: Case) -> None:
    lb, _ = build(case, pool([1, 1]))
    for operation in (lb.remove, lb.mark_down, lb.mark_up):
        with pytest.raises(bk.UnknownEndpoint, match="not a member"):
            operation("10.9.9.9:80")
    with pytest.raises(KeyError):
        lb.set_weight("10.9.9.9:80", 2)
    with pytest.raises(bk.DuplicateEndpoint):
        lb.add("10.0.0.1:80")
    with pytest.raises(bk.InvalidEndpoint):
        lb.set_weight("10.0.0.1:80", 0)
    with pytest.raises(bk.InvalidEndpoint):
        lb.update(["10.0.0.1:80", "not an address"])
    assert [e.address for e in lb.endpoints] == ["10.0.0.1:80", "10.0.0.2:80"]  # unchanged


@settings(max_examples=15, deadline=None)
@given(weights=st.lists(st.integers(1, 5), min_size=2, max_size=6))
def test_weights_are_honoured(case: Case, weights: list[int]) -> None:
    lb, clock = build(case, pool(weights))
    total = sum(weights)
    if case.weights == "concurrent":
        picks = 40 * total
        held = [lb.select(context(case, i)) for i in range(picks)]
        counts = Counter(lease.address for lease in held)
    else:
        picks = 4000 if case.weights == "statistical" else 20 * total
        counts = Counter()
        for i in range(picks):
            clock.now += 0.01
            lease = lb.select(context(case, i))
            counts[lease.address] += 1
            lb.release(lease, elapsed=0.005)
    for i, weight in enumerate(weights):
        expected = 1 / len(weights) if case.weights == "ignored" else weight / total
        share = counts[f"10.0.0.{i + 1}:80"] / picks
        assert abs(share - expected) <= case.tolerance, (weights, dict(counts))


@settings(max_examples=15, deadline=None)
@given(size=st.integers(2, 12), data=st.data())
def test_consistent_hashing_moves_only_the_keys_it_must(
    case: Case, size: int, data: st.DataObject
) -> None:
    if not case.consistent:
        pytest.skip("not a consistent hash")
    endpoints = pool([1] * size)
    lb, _ = build(case, endpoints)
    keys = [f"user-{i}" for i in range(600)]
    before = {k: lb.select(k).address for k in keys}
    assert before == {k: lb.select(k).address for k in keys}  # stable while unchanged
    victim = data.draw(st.sampled_from([e.address for e in endpoints]))
    how = data.draw(st.sampled_from(["remove", "mark_down"]))
    getattr(lb, how)(victim)
    after = {k: lb.select(k).address for k in keys}
    moved = {k for k in keys if before[k] != after[k]}
    assert moved == {k for k in keys if before[k] == victim}


CHILD = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
from tests.conformance.registry import all_cases
import balancekit as bk
case = next(c for c in all_cases() if c.name == sys.argv[2])
lb = case.factory([bk.Endpoint(f"node-{i}:80", weight=1 + i % 3) for i in range(7)], lambda: 0.0)
print(json.dumps([lb.select(f"key-{i}").address for i in range(300)]))
"""


def test_hash_mapping_is_identical_in_another_process(case: Case) -> None:
    if not case.keyed:
        pytest.skip("not keyed")
    root = str(Path(__file__).resolve().parents[2])
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps([root, *sys.path]), case.name],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    lb = case.factory([bk.Endpoint(f"node-{i}:80", weight=1 + i % 3) for i in range(7)], lambda: 0)
    here = [lb.select(f"key-{i}").address for i in range(300)]
    assert runs[0] == runs[1] == here
