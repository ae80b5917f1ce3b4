"""Maglev(compat="envoy") against the tables Envoy's own tests expect.

The expected assignments are those of Envoy's ``maglev_lb_test.cc`` (tests ``Basic``,
``BasicStability`` and ``Weighted``): hosts ``tcp://127.0.0.1:90`` .. ``:95``, a table of 7 slots,
and a request whose hash is i goes to ``table[i % 7]``.
"""

from __future__ import annotations

import random

import pytest
import xxhash

import balancekit as bk
from balancekit.strategies.hashing.maglev_envoy import (
    envoy_maglev_table,
    envoy_permutation,
)

HOSTS = [f"127.0.0.1:{port}" for port in range(90, 96)]


def slots(lb: bk.Maglev, hosts: list[str]) -> list[int]:
    """The table as indices into ``hosts`` (what Envoy's tests call expected_assignments)."""
    table, owners = lb._table[:2]
    return [hosts.index(owners[i].endpoint.address) for i in table]


def test_basic_table_is_envoys() -> None:
    lb = bk.Maglev(HOSTS, table_size=7, compat="envoy")
    assert slots(lb, HOSTS) == [2, 4, 0, 1, 5, 0, 3]  # Envoy: MaglevLoadBalancerTest.Basic


def test_the_table_does_not_depend_on_the_order_of_hosts() -> None:
    shuffled = HOSTS[:]
    random.Random(7).shuffle(shuffled)
    lb = bk.Maglev(shuffled, table_size=7, compat="envoy")
    assert slots(lb, HOSTS) == [2, 4, 0, 1, 5, 0, 3]  # Envoy: BasicStability


def test_weighted_table_is_envoys() -> None:
    hosts = ["127.0.0.1:90", "127.0.0.1:91"]
    lb = bk.Maglev([hosts[0], bk.Endpoint(hosts[1], weight=2)], table_size=17, compat="envoy")
    assert slots(lb, hosts) == [1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1]  # Weighted


def test_a_single_weighted_host_owns_every_slot() -> None:
    lb = bk.Maglev([bk.Endpoint("127.0.0.1:90", weight=7)], table_size=17, compat="envoy")
    assert slots(lb, ["127.0.0.1:90"]) == [0] * 17  # Envoy: WeightedSingleHost


def test_keys_hash_with_xxhash64_as_envoys_hash_policies() -> None:
    lb = bk.Maglev(HOSTS, table_size=7, compat="envoy")
    expected = [2, 4, 0, 1, 5, 0, 3]
    for key in ("session-1", "user-42", "203.0.113.7", "Ωmega"):
        slot = xxhash.xxh64_intdigest(key.encode()) % 7
        assert lb.lookup(key).address == HOSTS[expected[slot]]
        assert lb.lookup(key.encode()).address == HOSTS[expected[slot]]


def test_the_functions_match_the_class() -> None:
    permutations = [envoy_permutation(address, 7) for address in HOSTS]
    assert [HOSTS[i] for i in envoy_maglev_table(permutations, [1] * 6, 7)] == [
        HOSTS[i] for i in [2, 4, 0, 1, 5, 0, 3]
    ]


def test_compat_is_validated() -> None:
    with pytest.raises(bk.InvalidOption, match="compat"):
        bk.Maglev(HOSTS, compat="nginx")  # type: ignore[arg-type]
