"""Issue 15: what the schedule strategies' select/release path binds at import, and what it keeps.

The hot path calls ``next``, ``dict.pop`` and the ``Lease`` type through module constants
(``balancekit._core.NEXT``, ``DICT_POP``, ``LEASE``): compiled (mypyc), a call of the builtin
``next`` looked ``builtins.next`` up by name on every call. These tests pin what that must keep:

- the picks, counts and leases do not depend on the name ``next`` in :mod:`builtins` after
  import (on main, replacing it broke every select: each call resolved the name again);
- ``Lease.started`` is the clock's reading as a float in both builds: compiled, main unboxed it
  to a C double and boxed it again, so an ``int`` clock gave a ``float`` there and an ``int``
  in the pure build, and a clock returning another number type raised ``TypeError``;
- the fast path (no ``avoid``, no health) and the general path pick alike (hypothesis).

Speed itself is measured by ``benchmarks/bench_speed.py``, never in a test.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk

NOBODY = frozenset({"nobody:0"})  # a non-empty avoid that avoids nothing: the general path

FACTORIES: dict[str, Callable[..., bk.BalancerBase]] = {
    "RoundRobin": bk.RoundRobin,
    "WeightedRoundRobin": bk.WeightedRoundRobin,
    "WeightedRoundRobin-envoy": lambda eps, **kw: bk.WeightedRoundRobin(eps, order="envoy", **kw),
}


def _endpoints(weights: list[int]) -> list[bk.Endpoint]:
    return [bk.Endpoint(f"10.9.{i >> 8}.{i & 255}:80", weight=w) for i, w in enumerate(weights)]


def _drive(lb: bk.BalancerBase, picks: int, avoid: Collection[str]) -> list[object]:
    """Select ``picks`` times (every third lease kept out until the end), release the rest
    with every outcome form, then refuse a double release; the addresses and stats."""
    log: list[object] = []
    held: list[bk.Lease] = []
    for i in range(picks):
        lease = lb.select(avoid=avoid) if avoid else lb.select()
        log.append(lease.address)
        if i % 3 == 0:
            held.append(lease)
            continue
        lb.release(lease, ok=i % 5 != 0, elapsed=0.001 if i % 2 else None)
        with pytest.raises(bk.InvalidLease):
            lb.release(lease)
    for lease in held:
        lb.cancel(lease) if len(held) % 2 else lb.release(lease)
    log.append(
        sorted(
            (a, s.selected, s.succeeded, s.failed, s.cancelled, s.in_flight)
            for a, s in lb.stats().items()
        )
    )
    return log


class _Refused(AssertionError):
    pass


def _no_next(*args: object) -> object:
    raise _Refused("builtins.next looked up by name on the select/release path")


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("weights", [[1, 1, 1], [5, 1, 1], [3, 1] * 40, [1, 2, 3, 4, 5] * 30])
def test_select_release_do_not_resolve_next_by_name(name: str, weights: list[int]) -> None:
    """With ``builtins.next`` replaced after import, the fast and the general path (avoid)
    pick and count as an untouched twin does (80 and 150 endpoints: WRR steps NGINX's loop
    online, then finds its cycle)."""
    picks = 3 * sum(weights) + 7
    expected = [_drive(FACTORIES[name](_endpoints(weights)), picks, a) for a in ((), NOBODY)]
    balancers = [FACTORIES[name](_endpoints(weights)) for _ in range(2)]
    original = builtins.next  # (not monkeypatch.context(): contextlib's exit calls next)
    builtins.next = _no_next  # type: ignore[assignment]
    try:
        got = [_drive(lb, picks, a) for lb, a in zip(balancers, ((), NOBODY), strict=True)]
    finally:
        builtins.next = original
    assert got == expected


class _Ticks:
    """A clock returning the readings given, of whatever type they are."""

    def __init__(self, readings: list[Any]) -> None:
        self._readings: Iterator[Any] = iter(readings)

    def __call__(self) -> Any:
        return next(self._readings)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("reading", [7, 2**40, 1.5, Fraction(3, 2), Decimal("2.25")])
def test_started_is_the_clocks_reading_as_a_float(name: str, reading: object) -> None:
    """``lease.started`` is the clock's reading as a float, in both builds (the compiled one
    turned an int into a float and refused other numbers with TypeError; then both kept the
    clock's own object, until a Decimal one broke the latency-aware strategies:
    tests/hostile/test_clock_readings.py)."""
    lb = FACTORIES[name](["a:1", "b:1"], clock=_Ticks([reading] * 4))
    for _ in range(2):
        lease = lb.select()
        assert type(lease.started) is float and lease.started == float(reading)  # type: ignore[arg-type]
        lb.release(lease, ok=True, elapsed=0.001)
    assert sum(s.succeeded for s in lb.stats().values()) == 2


@given(
    name=st.sampled_from(sorted(FACTORIES)),
    weights=st.lists(st.integers(1, 6), min_size=1, max_size=12),
    picks=st.integers(1, 60),
)
def test_fast_path_picks_as_the_general_path(name: str, weights: list[int], picks: int) -> None:
    """Without ``avoid`` (the inlined fast path) and with an ``avoid`` naming no member (the
    base class's general path), two twins pick the same endpoints and count the same."""
    fast = _drive(FACTORIES[name](_endpoints(weights)), picks, frozenset())
    general = _drive(FACTORIES[name](_endpoints(weights)), picks, NOBODY)
    assert fast == general


def test_lease_behaves_as_the_documented_triple() -> None:
    """The Lease (a NamedTuple until issue 15's native Lease) still unpacks, indexes, has a
    length of 3, compares and hashes by its fields and has ``address``; it is a final class of
    its own now (compiled: a native class), not a tuple."""
    lb = bk.RoundRobin(["a:1"], clock=lambda: 4.0)
    lease = lb.select()
    endpoint, token, started = lease
    assert type(lease) is bk.Lease and not isinstance(lease, tuple) and len(lease) == 3
    assert (
        (lease[0], lease[1], lease[2], lease[-1])
        == (endpoint, token, started, started)
        == (lease.endpoint, lease.token, lease.started, lease.started)
    )
    twin = bk.Lease(endpoint, token, 4.0)
    assert lease == twin and hash(lease) == hash(twin) and lease != (endpoint, token, 4.0)
    assert lease != bk.Lease(endpoint, token + 1, 4.0) and lease.address == "a:1"
    assert type(token) is int and started == 4.0
    assert repr(lease) == f"Lease(endpoint={endpoint!r}, token={token!r}, started=4.0)"
    with pytest.raises(IndexError):
        lease[3]
    with pytest.raises(AttributeError):
        lease.token = 5  # type: ignore[misc]
    lb.release(lease)
