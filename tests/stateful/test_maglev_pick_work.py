"""A select+release pays a small constant of Maglev's table fill, however large the table, and a
storm of changes still ends with the table a build from scratch gives (issue 11).

The work is counted, not timed, two ways:

- turns: the fill's claim loop is handed its rounds through :class:`CountedTurns`, which counts
  each slice of turns the loop takes (one slot claimed per turn), in both builds;
- bytecodes: ``sys.settrace`` with opcode events counts the Python instructions a
  select+release executes, the fill's setup, probes, slices and the swap included (the fill
  is interpreted in both builds; the compiled build's Maglev and Envoy rounds run none).

Before (main d4181e0): a pick that did a chunk did PICK_STEP = 16,384 of work with an early
turn counted as one probe (16,384 turns, ~3-6 ms), an ejection inside ``release()`` filled
STEP = 65,536 (~65,000 turns, ~13-50 ms), and the pick that completed a fill begun during a
change sorted the pool for the next one.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable, Iterator, Sequence
from types import FrameType
from typing import Any, overload

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit._native import is_compiled
from balancekit.strategies.hashing import _maglev_fill, maglev, maglev_envoy

#: Turns (slots claimed) one select+release may pay for: PICK_STEP + CHUNK of work at TURN a
#: turn at most, i.e. ~770 with the shipped constants; main claimed up to ~65,000.
MAX_TURNS = 1_024
#: Python instructions one select+release may execute, fill work included (pure build): the
#: shipped constants give ~15,000-25,000 at most; main's chunked picks ran ~250,000.
MAX_OPCODES = 60_000


class CountedTurns(Sequence[int]):
    """A round's turns that count the turns the claim loop takes from them."""

    def __init__(self, turns: Sequence[int], tally: list[int]) -> None:
        self.turns, self.tally = turns, tally

    def __len__(self) -> int:
        return len(self.turns)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...
    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        if isinstance(index, slice):
            taken = list(self.turns[index])
            self.tally[0] += len(taken)
            return taken
        self.tally[0] += 1
        return self.turns[index]


def count_turns(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every fill Maglev starts count its turns into the returned one-item list: the
    claim loop (``fill_by_turns``, interpreted in both builds and called by name from both
    layouts' fills) gets its rounds through :class:`CountedTurns`."""
    tally = [0]
    real = _maglev_fill.fill_by_turns

    def counted(rounds: Iterable[Sequence[int]]) -> Iterator[Sequence[int]]:
        for turns in rounds:
            yield CountedTurns(turns, tally)

    def fill_by_turns(perms: Any, rounds: Any, size: int, chunk: int, *work: Any) -> Any:
        return real(perms, counted(rounds), size, chunk, *work)

    monkeypatch.setattr(_maglev_fill, "fill_by_turns", fill_by_turns)
    monkeypatch.setattr(maglev_envoy, "fill_by_turns", fill_by_turns)
    return tally


def pool(n: int) -> list[str]:
    return [f"10.8.{i >> 8}.{i & 255}:80" for i in range(n)]


def slots(lb: Any) -> list[str]:
    table, owners, _ = lb._table
    return [owners[i].endpoint.address for i in table]


def storm(
    lb: Any, addresses: list[str], bad: set[str], calls: int, churn_every: int, rng: random.Random
) -> Iterator[None]:
    """``calls`` select+release with random keys (the bad endpoints fail, so they are ejected),
    a spare endpoint added or removed every ``churn_every`` calls; yields after each call."""
    spare = "10.9.9.9:80"
    for call in range(calls):
        if churn_every and call % churn_every == churn_every - 1:
            (lb.remove if spare in lb else lb.add)(spare)  # not counted: a change may fill STEP
        yield  # the caller starts counting
        lease = lb.select(f"user-{rng.getrandbits(40)}")
        lb.release(lease, ok=lease.address not in bad)
        yield  # the caller stops counting


@pytest.mark.parametrize("compat", [None, "envoy"])
def test_no_select_release_pays_more_than_a_bounded_number_of_turns_in_a_churning_storm(
    compat: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if compat == "envoy":
        pytest.importorskip("xxhash")
    tally = count_turns(monkeypatch)
    addresses = pool(1_000)
    size = maglev.next_prime(100 * len(addresses))  # 100,003 slots: a fill spans many picks
    health = bk.PassiveHealth(consecutive_failures=2, max_ejection_share=0.1)
    lb: Any = bk.with_health(bk.Maglev(addresses, table_size=size, compat=compat), health)
    rng = random.Random(5)
    bad = set(rng.sample(addresses, 100))
    worst = 0
    steps = storm(lb, addresses, bad, 6_000, 1_500, rng)
    for _ in steps:
        before = tally[0]
        next(steps)
        worst = max(worst, tally[0] - before)
    assert tally[0] > 100_003  # the fills did run, in the calls and the changes
    assert worst <= MAX_TURNS, f"a select+release claimed {worst} slots of the table"
    # the storm ends: picks alone (no settle) bring the table to the final membership's
    for _ in range(200_000):
        if lb._building is None:
            break
        lease = lb.select(f"k{rng.getrandbits(32)}")
        lb.release(lease, ok=True)
    assert lb._building is None, "picks alone never completed the fill"
    up = [s.endpoint for s in lb._members.values() if s.up]
    assert slots(lb) == slots(bk.Maglev(up, table_size=size, compat=compat))
    lb._check_invariants()


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("compat", [None, "envoy"])
def test_a_pick_after_a_change_executes_a_bounded_number_of_instructions(
    compat: str | None, weighted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if is_compiled(_maglev_fill):
        pytest.skip("counts Python instructions: this build's fill runs none")
    if compat == "envoy":
        pytest.importorskip("xxhash")
    monkeypatch.setattr(maglev, "STEP", 0)  # the changes fill nothing: the picks do it all
    addresses = pool(200)
    size = maglev.next_prime(100 * len(addresses))  # 20,011 slots
    endpoints = [
        bk.Endpoint(a, weight=1 + i % 4 if weighted else 1) for i, a in enumerate(addresses)
    ]
    lb: Any = bk.Maglev(endpoints, table_size=size, compat=compat)
    lb.remove(addresses[0])
    lb.add(bk.Endpoint("10.9.9.9:80", weight=3 if weighted else 1))
    lb.remove(addresses[1])  # planned while the first fill runs: the pick completing it starts it
    assert lb._building is not None
    counted = [0]

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            counted[0] += 1
        return tracer

    worst = fills = 0
    for i in range(100_000):
        if lb._building is None:
            break
        counted[0] = 0
        building = lb._building
        sys.settrace(tracer)
        try:
            lb.release(lb.select(f"user-{i}"), ok=True)
        finally:
            sys.settrace(None)
        worst = max(worst, counted[0])
        fills += lb._building is not building
    assert lb._building is None and fills == 2  # both fills ran, and completed, in picks
    assert worst <= MAX_OPCODES, f"a select+release executed {worst} instructions"
    up = [s.endpoint for s in lb._members.values() if s.up]
    assert slots(lb) == slots(bk.Maglev(up, table_size=size, compat=compat))


@settings(max_examples=300, deadline=None, database=None)
@given(
    size=st.integers(2, 20_000_000),
    filled_share=st.floats(0.0, 1.0),
    chunk=st.integers(1, 1 << 16),
)
def test_a_pause_holds_at_most_chunk_over_turn_turns_and_counts_each_turn(
    size: int, filled_share: float, chunk: int
) -> None:
    filled = min(size - 1, int(filled_share * size))
    cost, pause = _maglev_fill.next_pause(filled, size, chunk)
    turns = pause - filled
    assert 1 <= turns <= max(1, chunk // _maglev_fill.TURN)
    assert cost >= _maglev_fill.TURN * turns  # a turn is never counted as less than its loop
    assert turns == 1 or cost <= chunk


ROUND_WEIGHTS = {
    "equal": lambda n: [3] * n,
    "small": lambda n: [1 + i % 4 for i in range(n)],  # the cycle of top = 4 rounds
    "wide": lambda n: [60 + (i * 37) % 341 for i in range(n)],  # one round at a time
    "skewed": lambda n: [10**6 if i == 0 else 1 for i in range(n)],  # the heap; all light
    # endpoints fall due in the same round
}
#: Python instructions one ``next()`` of a round generator may execute (pure build): PIECE =
#: 256 endpoints (64 heap pops) a piece, ~6,000-7,700 measured; main's rounds were whole
#: passes over the pool (80,000-1,045,000 at N = 10,000).
MAX_ROUND_OPCODES = 20_000


@pytest.mark.parametrize("layout", ["paper", "envoy"])
@pytest.mark.parametrize("kind", sorted(ROUND_WEIGHTS))
def test_no_round_piece_looks_at_the_whole_pool(kind: str, layout: str) -> None:
    """A fill pause may hold a round's next piece: it looks at a bounded number of endpoints
    whatever N (10,000 here), so the pick that fetches it pays a bounded amount too."""
    module = _maglev_fill if layout == "paper" else maglev_envoy
    if is_compiled(module):
        pytest.skip("counts Python instructions: this build's rounds run none")
    weights = ROUND_WEIGHTS[kind](10_000)
    if layout == "paper":
        rounds = _maglev_fill.paper_rounds(weights)
    else:
        rounds = maglev_envoy.envoy_iterations(weights)
    counted = [0]

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            counted[0] += 1
        return tracer

    worst = turns = 0
    while turns < 30_000:  # a few rounds, or the skewed pool's first round with light turns
        counted[0] = 0
        sys.settrace(tracer)
        try:
            piece = next(rounds)
        finally:
            sys.settrace(None)
        worst = max(worst, counted[0])
        turns += len(piece)
    assert worst <= MAX_ROUND_OPCODES, f"one next() executed {worst} instructions"
