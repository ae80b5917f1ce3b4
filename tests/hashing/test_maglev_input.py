"""Hostile input to Maglev's public table functions ends in InvalidOption, before any loop runs.

A composite table size lets a preference list cycle through taken slots for ever (a skip that
shares a factor with M visits M / gcd slots), an offset or skip out of range indexes past the
table or never moves, and ``is_prime`` / ``next_prime`` by trial division took ~sqrt(n) steps
on a huge n. Every public entry now checks its input (``_maglev_size``) in O(N).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from balancekit import InvalidOption
from balancekit.strategies.hashing.maglev import (
    MAX_TABLE_SIZE,
    is_prime,
    maglev_permutation,
    maglev_steps,
    maglev_table,
    next_prime,
)
from balancekit.strategies.hashing.maglev_envoy import (
    envoy_maglev_table,
    envoy_permutation,
    envoy_steps,
)

FILLS: list[Callable[[Any, Any, Any], Any]] = [
    maglev_table,
    envoy_maglev_table,
    maglev_steps,  # refused at the call, not at the generator's first step
    envoy_steps,
]


def trial_division(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


@given(st.integers(-5, 200_000))
def test_is_prime_is_trial_division(n: int) -> None:
    assert is_prime(n) == trial_division(n)


@pytest.mark.parametrize(
    "n",  # strong pseudoprimes to the first bases (Jaeschke 1993; OEIS A014233)
    [2047, 1_373_653, 25_326_001, 3_215_031_751, 2_152_302_898_747, 3_825_123_056_546_413_051],
)
def test_is_prime_is_not_fooled_by_strong_pseudoprimes(n: int) -> None:
    assert not is_prime(n)


def test_is_prime_and_next_prime_refuse_non_ints_and_huge_ints() -> None:
    for bad in (2.5, 7.0, "7", None, True):
        with pytest.raises(InvalidOption):
            is_prime(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidOption):
            next_prime(bad)  # type: ignore[arg-type]
    assert is_prime(2**61 - 1) and is_prime(2**64 - 59) and not is_prime(2**64 - 1)
    assert next_prime(2**64 - 94) == 2**64 - 83 and next_prime(2**64 - 82) == 2**64 - 59
    for huge in (2**64, 10**400 + 1):
        with pytest.raises(InvalidOption, match="2\\*\\*64"):
            is_prime(huge)
        with pytest.raises(InvalidOption, match="2\\*\\*64"):
            next_prime(huge)


@pytest.mark.parametrize("fill", FILLS)
@given(size=st.integers(-3, 400) | st.sampled_from([65_536, 65_535, 1_000_001, 10**12 + 39]))
def test_fills_refuse_sizes_that_are_not_prime_table_sizes(fill: Any, size: int) -> None:
    if 2 <= size <= MAX_TABLE_SIZE and trial_division(size):
        assert len(list(maglev_table([(0, 1)], [1], size))) == size
        return
    with pytest.raises(InvalidOption, match="prime"):
        fill([(0, 1)], [1], size)  # skip 1 reaches every slot: main filled a composite size
    for permutation in (maglev_permutation, envoy_permutation):
        with pytest.raises(InvalidOption, match="prime"):
            permutation("10.0.0.1:80", size)


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("size", [7.0, "7", True, None])
def test_fills_refuse_sizes_that_are_not_ints(fill: Any, size: Any) -> None:
    with pytest.raises(InvalidOption, match="prime"):
        fill([(0, 1)], [1], size)


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize(
    ("permutations", "weights"),
    [
        ([(7, 1)], [1]),  # offset past the table
        ([(-1, 1)], [1]),
        ([(0, -1)], [1]),  # skip out of 1..M-1
        ([(0, 8)], [1]),
        ([(0, 1.0)], [1]),
        ([(0, 1, 2)], [1]),
        ([[0, 1]], [1]),
        ([(0, 1)], [0]),  # weights 1..MAX_WEIGHT, one each
        ([(0, 1), (1, 2)], [1, 0]),
        ([(0, 1)], [True]),
        ([(0, 1)], [1.5]),
        ([(0, 1)], [10**400]),
        ([(0, 1)], []),
        ([(0, 1)], [1, 1]),
        ({(0, 1)}, [1]),
    ],
)
def test_fills_refuse_permutations_and_weights_out_of_range(
    fill: Any, permutations: Any, weights: Any
) -> None:
    with pytest.raises(InvalidOption):
        fill(permutations, weights, 7)
