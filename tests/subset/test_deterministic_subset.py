"""DeterministicSubset: the SRE book's deterministic subsetting (Site Reliability Engineering,
chapter 20, "A Subset Selection Algorithm: Deterministic Subsetting")."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.subset import DeterministicSubset


def book_subset(backends: list[str], client_id: int, subset_size: int) -> list[str]:
    """The book's pseudocode, transcribed literally (integer division as in its Python 2)."""
    subset_count = len(backends) // subset_size
    round_ = client_id // subset_count
    rng = random.Random()
    rng.seed(round_)
    shuffled = list(backends)
    rng.shuffle(shuffled)
    subset_id = client_id % subset_count
    start = subset_id * subset_size
    return shuffled[start : start + subset_size]


@given(st.integers(2, 120), st.integers(1, 30), st.integers(0, 10_000))
def test_matches_the_books_function(servers: int, k: int, client_id: int) -> None:
    pool = sorted(f"b{i:03d}:80" for i in range(servers))
    got = [e.address for e in DeterministicSubset(k, client_id=client_id).subset(pool)]
    if servers <= k:
        assert got == pool
    else:
        assert got == book_subset(pool, client_id, k)


@settings(max_examples=200)
@given(st.integers(1, 20), st.integers(1, 12), st.integers(1, 6), st.integers(0, 2**64 - 1))
def test_equal_connection_counts_when_clients_divide_evenly(
    subsets_per_round: int, k: int, rounds: int, seed: int
) -> None:
    """The book's property: with n = k x (n / k) backends and a whole number of rounds of
    clients, every backend has exactly clients x k / n clients."""
    servers = subsets_per_round * k
    clients = subsets_per_round * rounds
    pool = [f"10.1.{i // 200}.{i % 200}:80" for i in range(servers)]
    counts: Counter[str] = Counter()
    for client in range(clients):
        chosen = DeterministicSubset(k, client_id=client, seed=seed).subset(pool)
        assert len(chosen) == min(k, servers)
        assert len({e.address for e in chosen}) == len(chosen)
        counts.update(e.address for e in chosen)
    assert set(counts.values()) == {clients * k // servers} if servers > k else {clients}
    assert len(counts) == servers


def test_three_hundred_clients_and_backends() -> None:
    """The book's example scale: 300 clients x 300 backends, subset 10 -> exactly 10 each."""
    pool = [f"10.2.{i // 200}.{i % 200}:80" for i in range(300)]
    counts: Counter[str] = Counter()
    for client in range(300):
        counts.update(e.address for e in DeterministicSubset(10, client_id=client).subset(pool))
    assert set(counts.values()) == {10}


def test_seed_changes_the_shuffle() -> None:
    pool = [f"10.3.0.{i}:80" for i in range(1, 101)]
    a = DeterministicSubset(10, client_id=3).subset(pool)
    b = DeterministicSubset(10, client_id=3, seed=1).subset(pool)
    assert a != b


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0, "client_id": 0},
        {"k": 3, "client_id": -1},
        {"k": 3, "client_id": 1.0},
        {"k": 3, "client_id": 0, "seed": -5},
        {"k": 3, "client_id": 10**400},
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        DeterministicSubset(**kwargs)  # type: ignore[arg-type]
