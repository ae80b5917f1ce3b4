"""Maglev's fast fill (issue 11) builds the paper's table, slot for slot, with less work.

- Property: over random permutations (any offset, any skip), weights and small prime table
  sizes, ``maglev_table`` equals Pseudocode 1 of Eisenbud et al. (NSDI 2016) written out
  plainly below, and ``envoy_maglev_table`` equals Envoy's ``MaglevTable`` loop written out
  plainly — with the late-fill searches forced on (slices everywhere, scans everywhere) so
  small tables exercise them too.
- Work, counted (never timed): the Python-level reads of the taken-slot table are well under the
  paper's loop's ~M H(M), and skewed weights cost reads in proportion to the table, not to
  rounds x endpoints.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from balancekit.strategies.hashing import maglev
from balancekit.strategies.hashing.maglev import is_prime, maglev_steps, maglev_table
from balancekit.strategies.hashing.maglev_envoy import envoy_maglev_table, envoy_steps

PRIMES = [p for p in range(7, 1200) if is_prime(p)]


def paper_populate(permutations: list[tuple[int, int]], weights: list[int], size: int) -> list[int]:
    """Pseudocode 1 (``Populate``), weighted as balancekit documents it: each round endpoint i
    earns weights[i] credit and takes a turn per max(weights) of credit."""
    following = [0] * len(permutations)
    entry = [-1] * size
    credit = [0] * len(permutations)
    top = max(weights)
    filled = 0
    while True:
        for i, (offset, skip) in enumerate(permutations):
            credit[i] += weights[i]
            while credit[i] >= top:
                credit[i] -= top
                candidate = (offset + following[i] * skip) % size
                while entry[candidate] >= 0:
                    following[i] += 1
                    candidate = (offset + following[i] * skip) % size
                entry[candidate] = i
                following[i] += 1
                filled += 1
                if filled == size:
                    return entry


def envoy_populate(permutations: list[tuple[int, int]], weights: list[int], size: int) -> list[int]:
    """Envoy's ``MaglevTable`` constructor loop (maglev_lb.cc), written out plainly."""
    total = sum(weights)
    normalized = [w / total for w in weights]
    top = max(normalized)
    target = [0.0] * len(weights)
    following = [0] * len(weights)
    entry = [-1] * size
    filled, iteration = 0, 1
    while filled < size:
        for i, (offset, skip) in enumerate(permutations):
            if filled == size:
                break
            if iteration * normalized[i] < target[i]:
                continue
            target[i] += top
            candidate = (offset + following[i] * skip) % size
            while entry[candidate] >= 0:
                following[i] += 1
                candidate = (offset + following[i] * skip) % size
            entry[candidate] = i
            following[i] += 1
            filled += 1
        iteration += 1
    return entry


@st.composite
def fills(draw: Any) -> tuple[list[tuple[int, int]], list[int], int]:
    size = draw(st.sampled_from(PRIMES))
    count = draw(st.integers(1, min(40, size)))
    permutations = [
        (draw(st.integers(0, size - 1)), draw(st.integers(1, size - 1))) for _ in range(count)
    ]
    kind = draw(st.sampled_from(["equal", "small", "wide", "skewed"]))
    if kind == "equal":
        weights = [draw(st.integers(1, 5))] * count
    elif kind == "small":
        weights = draw(st.lists(st.integers(1, 6), min_size=count, max_size=count))
    elif kind == "wide":  # max weight > 64: rounds computed one at a time
        weights = draw(st.lists(st.integers(60, 400), min_size=count, max_size=count))
    else:  # one heavy endpoint: the heap of next turns
        weights = [1] * count
        weights[draw(st.integers(0, count - 1))] = draw(st.integers(100, 10**6))
    return permutations, weights, size


SEARCHES = {  # (SLICE_AT, SCAN, SLICE): the shipped thresholds, then each late search forced on
    "default": (None, None, None),
    "slices": (1, 0.0, 0),  # every step sliced, however few its small multiples
    "probes": (1, 0.0, 10**9),  # every late turn probes slot by slot (and pauses mid-search)
    "scans": (1, 1e9, None),
}


@pytest.fixture(params=sorted(SEARCHES))
def search(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    fill = importlib.import_module("balancekit.strategies.hashing._maglev_fill")
    slice_at, scan, cost = SEARCHES[request.param]
    if slice_at is not None:
        monkeypatch.setattr(fill, "SLICE_AT", slice_at)
        monkeypatch.setattr(fill, "SCAN", scan)
    if cost is not None:
        monkeypatch.setattr(fill, "SLICE", cost)
    yield request.param


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=fills())
def test_the_fill_is_pseudocode_1(search: str, case: tuple[Any, list[int], int]) -> None:
    permutations, weights, size = case
    assert list(maglev_table(permutations, weights, size)) == paper_populate(
        permutations, weights, size
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=fills())
def test_the_envoy_fill_is_envoys_loop(search: str, case: tuple[Any, list[int], int]) -> None:
    permutations, weights, size = case
    assert list(envoy_maglev_table(permutations, weights, size)) == envoy_populate(
        permutations, weights, size
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=fills(), chunk=st.integers(1, 64), envoy=st.booleans())
def test_a_fill_paused_every_few_probes_is_the_same_table(
    search: str, case: tuple[Any, list[int], int], chunk: int, envoy: bool
) -> None:
    """Tiny chunks pause the fill between turns and inside a late turn's search (the search
    resumes where it stopped): the table is still the paper's (or Envoy's), slot for slot."""
    permutations, weights, size = case
    steps = (envoy_steps if envoy else maglev_steps)(permutations, weights, size, chunk)
    pauses = 0
    try:
        while True:
            assert next(steps) >= 1  # every pause reports work done
            pauses += 1
    except StopIteration as done:
        table = list(done.value)
    expected = (envoy_populate if envoy else paper_populate)(permutations, weights, size)
    assert table == expected
    assert pauses >= size // max(1, chunk) // 4  # it did pause: at most chunk / TURN turns each


class CountingBytes(bytearray):
    """The taken-slot table, counting the reads the fill makes from Python."""

    reads = 0

    def __getitem__(self, index: Any) -> Any:
        CountingBytes.reads += 1
        return super().__getitem__(index)


def count_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    CountingBytes.reads = 0
    monkeypatch.setattr(maglev, "bytearray", CountingBytes, raising=False)  # main's fill
    try:
        fill = importlib.import_module("balancekit.strategies.hashing._maglev_fill")
    except ImportError:  # pragma: no cover - the tree before issue 11's fill
        return
    monkeypatch.setattr(fill, "bytearray", CountingBytes, raising=False)


@pytest.mark.parametrize("weights", ["equal", "1..4"])
def test_late_turns_read_the_table_far_less_than_the_papers_loop(
    weights: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    size, count = 20_011, 200
    permutations = [maglev.maglev_permutation(f"10.1.0.{i}:80", size) for i in range(count)]
    ws = [1] * count if weights == "equal" else [1 + i % 4 for i in range(count)]
    count_reads(monkeypatch)
    table = maglev_table(permutations, ws, size)
    assert list(table) == paper_populate(permutations, ws, size)
    papers_loop = size * sum(1 / f for f in range(1, size + 1))  # ~M H(M) ~ 10.5 M probes
    assert CountingBytes.reads < 0.6 * papers_loop, (CountingBytes.reads, papers_loop)


class CountingWeights(list[int]):
    """Weights that count how often the fill reads them (the rounds' bookkeeping)."""

    reads = 0

    def __getitem__(self, index: Any) -> Any:
        CountingWeights.reads += 1
        return super().__getitem__(index)

    def __iter__(self) -> Iterator[int]:
        for i in range(len(self)):
            yield self[i]


def test_skewed_weights_cost_rounds_with_turns_only() -> None:
    size, count = 10_007, 100
    permutations = [maglev.maglev_permutation(f"10.2.0.{i}:80", size) for i in range(count)]
    weights = CountingWeights([1] * count)
    weights[0] = 100_000  # one endpoint 100,000 x the others: ~9,900 rounds of 100 endpoints
    CountingWeights.reads = 0
    table = maglev_table(permutations, weights, size)
    assert CountingWeights.reads < 20 * size, CountingWeights.reads  # main: ~100 x size
    assert list(table) == paper_populate(permutations, list(weights), size)
