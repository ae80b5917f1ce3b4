"""RandomSubset: gRPC A68 random subsetting (XXH64 rendezvous, first k)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.subset import RandomSubset, SubsetSource

ADDRESSES = st.lists(
    st.builds("10.{}.{}.{}:{}".format, *[st.integers(0, 255)] * 3, st.integers(1, 65535)),
    min_size=1,
    max_size=60,
    unique=True,
)
SEEDS = st.integers(0, 2**64 - 1)


def test_grpc_go_golden_subset() -> None:
    """grpc-go balancer/randomsubsetting/randomsubsetting_test.go
    (TestCalculateSubset_EndpointsRetainHashValues, grpc/grpc-go b162fa92): seed 0, endpoints
    "endpoint-0".."endpoint-9", subset size 5 -> endpoint-6, -0, -1, -7, -3 in that order."""
    subsetter = RandomSubset(5, seed=0, compat="grpc-go")
    order = subsetter.order([f"endpoint-{i}" for i in range(10)])
    assert order[:5] == ["endpoint-6", "endpoint-0", "endpoint-1", "endpoint-7", "endpoint-3"]


def test_hash_is_xxh64_of_the_address_with_the_seed() -> None:
    """A68's input: XXH64(address, seed); the reference value of XXH64("", 0) from the xxHash
    spec's test vectors is 0xEF46DB3751D8E999."""
    assert RandomSubset(1, seed=0).rank("") == 0xEF46DB3751D8E999
    import xxhash

    assert RandomSubset(1, seed=99).rank("10.0.0.1:80") == xxhash.xxh64_intdigest(
        b"10.0.0.1:80", 99
    )


@settings(max_examples=1000)
@given(ADDRESSES, st.integers(1, 40), SEEDS, st.data())
def test_one_server_added_or_removed_changes_at_most_one_member(
    addresses: list[str], k: int, seed: int, data: st.DataObject
) -> None:
    """A68's churn property: adding or removing one server changes at most one member of the
    subset (one joins and at most one leaves, or the reverse)."""
    subsetter = RandomSubset(k, seed=seed)
    before = {e.address for e in subsetter.subset(addresses)}
    if len(addresses) > 1 and data.draw(st.booleans(), label="remove"):
        gone = data.draw(st.sampled_from(addresses), label="removed")
        changed = [a for a in addresses if a != gone]
    else:
        extra = data.draw(
            st.builds("192.168.{}.{}:{}".format, st.integers(0, 255), st.integers(0, 255),
                      st.integers(1, 65535)),
            label="added",
        )  # fmt: skip
        changed = [*addresses, extra]
    after = {e.address for e in subsetter.subset(changed)}
    assert len(after) == min(k, len(changed))
    assert len(before - after) <= 1
    assert len(after - before) <= 1


@given(ADDRESSES, st.integers(1, 40), SEEDS, st.randoms(use_true_random=False))
def test_subset_is_the_k_lowest_hashes_whatever_the_order(
    addresses: list[str], k: int, seed: int, rng: object
) -> None:
    subsetter = RandomSubset(k, seed=seed)
    chosen = subsetter.subset(addresses)
    shuffled = list(addresses)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert subsetter.subset(shuffled) == chosen
    assert len(chosen) == min(k, len(addresses))
    if len(addresses) > k:
        kept = max(subsetter.rank(e.address) for e in chosen)
        dropped = {a for a in addresses} - {e.address for e in chosen}
        assert all(subsetter.rank(a) >= kept for a in dropped)
    else:
        assert {e.address for e in chosen} == set(addresses)


def test_same_subset_in_another_process() -> None:
    """No salted hash: a fresh interpreter (another PYTHONHASHSEED) picks the same subset."""
    pool = [f"10.0.{i // 250}.{i % 250}:80" for i in range(300)]
    here = [e.address for e in RandomSubset(20, seed=7).subset(pool)]
    code = (
        "import balancekit.subset as s;"
        f"print(','.join(e.address for e in s.RandomSubset(20, seed=7).subset({pool!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": ":".join(sys.path)},
    )
    assert out.stdout.strip().split(",") == here


def test_default_seed_is_random_per_client() -> None:
    pool = [f"10.0.0.{i}:80" for i in range(1, 201)]
    subsets = {tuple(e.address for e in RandomSubset(10).subset(pool)) for _ in range(5)}
    assert len(subsets) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"k": -1},
        {"k": True},
        {"k": 2.5},
        {"k": 10**400},
        {"k": 3, "seed": -1},
        {"k": 3, "seed": 2**64},
        {"k": 3, "seed": "7"},
        {"k": 3, "compat": "java"},
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        RandomSubset(**kwargs)  # type: ignore[arg-type]


def test_hostile_addresses_are_refused_before_hashing() -> None:
    subsetter = RandomSubset(2, seed=1)
    with pytest.raises(bk.InvalidOption):
        subsetter.rank("\ud800:80")
    with pytest.raises(bk.InvalidOption):
        subsetter.rank("a" * 10**6)
    with pytest.raises(bk.InvalidOption):
        subsetter.rank(b"10.0.0.1:80")  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption):
        subsetter.order(["a:1", "a:1"])
    with pytest.raises(bk.InvalidEndpoint):
        subsetter.subset(["\ud800:80"])
    with pytest.raises(bk.DuplicateEndpoint):
        subsetter.subset(["10.0.0.1:80", "10.0.0.1:80"])
    with pytest.raises(bk.InvalidEndpoint):
        subsetter.subset("10.0.0.1:80")  # one string, not a list


def test_subset_source_feeds_a_watcher_only_the_subset() -> None:
    everyone = [f"10.0.0.{i}:80" for i in range(1, 51)]
    subsetter = RandomSubset(6, seed=3)
    lb = bk.PowerOfTwoChoices(seed=1)
    source = SubsetSource(bk.discovery.Static(everyone), subsetter)
    with bk.discovery.Watcher(lb, source):
        assert {e.address for e in lb.endpoints} == {e.address for e in subsetter.subset(everyone)}
    with pytest.raises(bk.InvalidOption):
        SubsetSource(object(), subsetter)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption):
        SubsetSource(bk.discovery.Static(everyone), object())  # type: ignore[arg-type]


async def _resolve(source: SubsetSource) -> bk.discovery.Snapshot:
    return await source.resolve_async()


def test_subset_source_async_passes_ttl_through() -> None:
    import asyncio

    source = SubsetSource(bk.discovery.Static(["a:1", "b:1", "c:1"]), RandomSubset(2, seed=5))
    snapshot = asyncio.run(_resolve(source))
    assert len(snapshot.endpoints) == 2
    assert snapshot.ttl == float("inf")
