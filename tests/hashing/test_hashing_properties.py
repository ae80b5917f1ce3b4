"""Unit and property tests of the consistent hashes beyond the shared conformance suite."""

from __future__ import annotations

import math
from collections import Counter

import jump
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uhashring import HashRing

import balancekit as bk
from balancekit.strategies.hashing._keyed import hash64
from balancekit.strategies.hashing.jump import jump_hash
from balancekit.strategies.hashing.maglev import is_prime, next_prime

KEYS = [f"user-{i}" for i in range(3000)]


def pool(count: int, weights: list[int] | None = None) -> list[bk.Endpoint]:
    weights = weights or [1] * count
    return [bk.Endpoint(f"10.4.{i // 200}.{i % 200}:80", weight=w) for i, w in enumerate(weights)]


def mapping(lb: object, keys: list[str] = KEYS) -> dict[str, str]:
    return {k: lb.lookup(k).address for k in keys}  # type: ignore[attr-defined]


# -- JumpHash -------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(key=st.integers(0, 2**64 - 1), buckets=st.integers(1, 2**31 - 1))
def test_jump_hash_is_bit_for_bit_the_reference(key: int, buckets: int) -> None:
    assert jump_hash(key, buckets) == jump.hash(key, buckets)


def test_jump_hash_small_bucket_counts_exhaustively() -> None:
    for key in range(0, 2**64 - 1, 2**64 // 997):
        for buckets in range(1, 70):
            assert jump_hash(key, buckets) == jump.hash(key, buckets)


def test_jump_removal_of_any_endpoint_moves_only_its_keys_evenly() -> None:
    endpoints = pool(10)
    for victim in (0, 4, 9):
        lb = bk.JumpHash(endpoints)
        before = mapping(lb)
        gone = endpoints[victim].address
        lb.remove(gone)
        after = mapping(lb)
        moved = {k for k in KEYS if before[k] != after[k]}
        assert moved == {k for k in KEYS if before[k] == gone}
        spread = Counter(after[k] for k in moved)  # over the 9 others, evenly
        assert len(spread) == 9 and max(spread.values()) < 2.2 * len(moved) / 9


def test_jump_stays_balanced_through_churn_and_restores_on_add() -> None:
    lb = bk.JumpHash(pool(20))
    original = mapping(lb)
    for i in (3, 17, 8, 11, 0):
        lb.remove(f"10.4.0.{i}:80")
    counts = Counter(mapping(lb, [f"k{i}" for i in range(30000)]).values())
    assert len(counts) == 15
    assert max(counts.values()) / min(counts.values()) < 1.2  # sampling noise only (~3%)
    for i in (0, 11, 8, 17, 3):  # re-added in reverse order: the same buckets, the same keys
        lb.add(f"10.4.0.{i}:80")
    assert mapping(lb) == original
    assert lb._memento == {} and len(lb._holders) == 20
    lb._check_invariants()


def test_jump_without_removals_is_plain_jump_hash() -> None:
    lb = bk.JumpHash(pool(13))
    lb.remove(lb.endpoints[-1].address)  # the last bucket: jump hash's own removal
    assert lb._memento == {}
    names = [state.endpoint.address for state in lb._holders if state is not None]
    assert len(names) == 12
    assert all(lb.lookup(k).address == names[jump.hash(hash64(k), 12)] for k in KEYS)


def test_jump_add_moves_keys_only_to_the_newcomer() -> None:
    lb = bk.JumpHash(pool(10))
    before = mapping(lb)
    lb.add("10.9.9.9:80")
    after = mapping(lb)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(after[k] == "10.9.9.9:80" for k in moved)
    assert abs(len(moved) / len(KEYS) - 1 / 11) < 0.02


def test_jump_weights_hold_buckets() -> None:
    lb = bk.JumpHash(pool(3, [1, 3, 2]))
    assert [len(lb.bucket_of(e.address)) for e in lb.endpoints] == [1, 3, 2]
    lb.set_weight(lb.endpoints[1].address, 1)
    assert [len(lb.bucket_of(e.address)) for e in lb.endpoints] == [1, 1, 2]
    lb._check_invariants()


# -- Ketama ---------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(weights=st.lists(st.integers(1, 20), min_size=1, max_size=25), salt=st.integers(0, 999))
def test_ketama_uhashring_mode_agrees_with_uhashring(weights: list[int], salt: int) -> None:
    nodes = [(f"mc{salt}-{i}.local:11211", w) for i, w in enumerate(weights)]
    ring = HashRing(dict(nodes), hash_fn="ketama")
    lb = bk.Ketama([bk.Endpoint(a, weight=w) for a, w in nodes], compat="uhashring")
    for i in range(300):
        key = f"{salt}:{i}"
        assert lb.lookup(key).address == ring.get_node(key)
    assert len(lb.continuum()) == len(set(ring.runtime._keys))


def test_ketama_accepts_bytes_keys_as_utf8() -> None:
    lb = bk.Ketama(pool(5))
    assert all(lb.lookup(k).address == lb.lookup(k.encode()).address for k in KEYS[:200])


# -- Rendezvous -----------------------------------------------------------------------------------


def test_rendezvous_weights_give_proportional_shares() -> None:
    lb = bk.Rendezvous(pool(4, [1, 2, 3, 4]))
    counts = Counter(mapping(lb, [f"k{i}" for i in range(20000)]).values())
    for endpoint in lb.endpoints:
        assert abs(counts[endpoint.address] / 20000 - endpoint.weight / 10) < 0.015


def test_rendezvous_weight_change_moves_keys_only_to_that_endpoint() -> None:
    lb = bk.Rendezvous(pool(6, [2] * 6))
    before = mapping(lb)
    target = lb.endpoints[2].address
    lb.set_weight(target, 3)
    after = mapping(lb)
    assert all(after[k] == target for k in KEYS if before[k] != after[k])
    assert any(before[k] != after[k] for k in KEYS)


# -- Maglev ---------------------------------------------------------------------------------------


def test_maglev_validates_table_size() -> None:
    assert is_prime(65537) and not is_prime(65536) and next_prime(65536) == 65537
    for bad in (65536, 1, True, 2.5, "65537", 10**9):
        with pytest.raises(bk.InvalidOption, match="prime"):
            bk.Maglev(table_size=bad)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption, match="too small"):
        bk.Maglev(pool(20), table_size=101)


def test_maglev_balance_and_disruption_at_the_papers_ratio() -> None:
    lb = bk.Maglev(pool(10), table_size=1009)
    table, owners = lb._table[:2]
    shares = Counter(table)
    assert max(shares.values()) - min(shares.values()) <= 1  # equal weights: 100 or 101 slots
    before = list(table)
    lb.remove(owners[3].endpoint.address)
    after, new_owners = lb._table[:2]
    moved = sum(1 for a, b in zip(before, after, strict=True) if owners[a] is not new_owners[b])
    assert 1009 // 10 <= moved <= 1.5 * 1009 / 10  # the victim's slots and few others


def test_maglev_weighted_slots_follow_weights() -> None:
    lb = bk.Maglev(pool(3, [1, 2, 5]), table_size=8009)
    table, owners = lb._table[:2]
    shares = Counter(owners[i].weight for i in table)
    for weight in (1, 2, 5):
        assert abs(shares[weight] / 8009 - weight / 8) < 0.002


# -- BoundedLoadHash ------------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.25, 1.0])
def test_bounded_load_never_exceeds_the_cap(epsilon: float) -> None:
    lb = bk.BoundedLoadHash(pool(7, [1, 1, 2, 1, 3, 1, 1]), epsilon=epsilon)
    held = []
    for i in range(700):
        held.append(lb.select("hot" if i % 2 else f"k{i % 13}"))
        loads = Counter(lease.address for lease in held)
        for endpoint in lb.endpoints:
            cap = math.ceil((1 + epsilon) * len(held) * endpoint.weight / 10)
            assert loads[endpoint.address] <= cap
    for lease in held:
        lb.release(lease)
    assert lb.capacity(lb.endpoints[0].address) == math.ceil((1 + epsilon) * 1 / 10)
    lb._check_invariants()


def test_bounded_load_without_load_is_iphash_and_lookup_does_not_count() -> None:
    lb = bk.BoundedLoadHash(pool(9))
    ring = bk.IPHash(pool(9))
    assert mapping(lb) == mapping(ring)
    assert all(s.in_flight == 0 for s in lb.stats().values())


def test_bounded_load_validates_epsilon() -> None:
    for bad in (-0.1, "0.2", True, float("nan"), 1000):
        with pytest.raises(bk.InvalidOption, match="epsilon"):
            bk.BoundedLoadHash(epsilon=bad)  # type: ignore[arg-type]


def test_ketama_validates_compat() -> None:
    with pytest.raises(bk.InvalidOption, match="compat"):
        bk.Ketama(compat="libmemcached")  # type: ignore[arg-type]


def test_keys_hash_as_documented() -> None:
    lb = bk.Maglev(pool(5), table_size=1009)
    table, owners = lb._table[:2]
    assert all(lb.lookup(k) is owners[table[hash64(k) % 1009]].endpoint for k in KEYS[:100])


def test_jump_balancer_pure_python_path_equals_the_c_accelerator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from balancekit.strategies.hashing import jump as jump_module

    if getattr(bk, "compiled", False):  # _jump_c is Final: a C static, not the module's dict
        pytest.skip("the compiled build reads _jump_c from a C static: patch the pure build")
    lb = bk.JumpHash(pool(37, [1 + i % 3 for i in range(37)]))
    with_c = mapping(lb)
    monkeypatch.setattr(jump_module, "_jump_c", None)
    assert mapping(lb) == with_c


KEYED = [bk.IPHash, bk.Ketama, bk.Rendezvous, bk.Maglev, bk.JumpHash, bk.BoundedLoadHash]


@pytest.mark.parametrize("strategy", KEYED)
def test_a_missing_or_mistyped_key_says_which_and_what_to_do(strategy: type[bk.Balancer]) -> None:
    lb = strategy(["a:1", "b:1"])
    with pytest.raises(bk.InvalidOption, match="needs a key"):
        lb.select()
    with pytest.raises(bk.InvalidOption, match="str or bytes; got int 7"):
        lb.select(7)
    by_cookie = strategy(["a:1", "b:1"], key=bk.keys.cookie("session"))
    with pytest.raises(bk.InvalidOption, match=r"found no key.*or_else"):
        by_cookie.select(bk.Request())
    odd = strategy(["a:1", "b:1"], key=lambda context: 7)
    with pytest.raises(bk.InvalidOption, match="the key function returned int 7"):
        odd.select("x")
    assert by_cookie.select(bk.Request(headers={"Cookie": "session=s1"})).address in {"a:1", "b:1"}


@pytest.mark.parametrize("compat", [None, "envoy"])
def test_maglev_refuses_to_grow_past_its_table(compat: str | None) -> None:
    lb = bk.Maglev(pool(2), table_size=23, compat=compat)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption, match="too small for 24 endpoints"):
        lb.update(pool(24))
    lb.update(pool(23))  # one slot each still works
    with pytest.raises(bk.InvalidOption, match="too small"):
        lb.add("10.9.9.9:80")
    assert len(lb.endpoints) == 23
    assert {lb.lookup(f"k{i}").address for i in range(3000)} == {e.address for e in lb.endpoints}
