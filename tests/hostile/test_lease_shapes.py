"""Issue 15's Lease (a final class since, native when compiled) against what its NamedTuple was.

It is documented to unpack, index, have a length of 3 and compare like the triple; these pin the
sequence behaviour the tuple had and the compiled class lacked, so both builds behave alike
(CI runs tests/hostile against the compiled build too): slices and ``__index__`` objects as
indices, ``reversed``, ``copy.copy``; and, in the pure build, a hand-made Lease whose slots were
never set (``object.__new__(Lease)``, as ``select`` itself starts one) is refused with
``InvalidLease``, not ``AttributeError``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import balancekit as bk


class _Index:
    """An index that is not an int (a NumPy integer, say): the tuple took it."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def _lease() -> tuple[bk.BalancerBase, bk.Lease]:
    lb = bk.RoundRobin(["a:1", "b:2"], clock=lambda: 7.0)
    return lb, lb.select()


@pytest.mark.parametrize(
    "index", [slice(0, 2), slice(None, None, -1), slice(1, None), slice(5, 9), slice(-2, -1)]
)
def test_a_lease_slices_as_the_triple(index: slice) -> None:
    _, lease = _lease()
    assert lease[index] == tuple(lease)[index]


@pytest.mark.parametrize("value", [0, 1, 2, -1, -3])
def test_a_lease_takes_any_index_as_the_triple(value: int) -> None:
    _, lease = _lease()
    assert lease[_Index(value)] == tuple(lease)[value]


@pytest.mark.parametrize("index", ["0", 1.0, None])
def test_a_lease_refuses_a_non_index_as_the_triple(index: Any) -> None:
    _, lease = _lease()
    with pytest.raises(TypeError):
        lease[index]


def test_a_lease_reverses_as_the_triple() -> None:
    _, lease = _lease()
    assert list(reversed(lease)) == list(reversed(tuple(lease)))


def test_a_copied_lease_is_an_equal_lease_and_releases_once() -> None:
    """A copy (shallow or deep: endpoints copy too, tests/test_pickle.py) is the same lease."""
    lb, lease = _lease()
    for twin in (copy.copy(lease), copy.deepcopy(lease)):
        assert type(twin) is bk.Lease and twin == lease and tuple(twin) == tuple(lease)
    lb.release(copy.deepcopy(lease))
    with pytest.raises(bk.InvalidLease):
        lb.release(lease)


@pytest.mark.parametrize("give_back", ["release", "cancel"])
@pytest.mark.parametrize(
    "make",  # the base class's release and the strategies' own fast releases
    [bk.RoundRobin, bk.LeastConnections, bk.PowerOfTwoChoices, bk.PeakEWMA, bk.LeastResponseTime],
)
def test_a_lease_never_initialised_is_an_invalid_lease(make: Any, give_back: str) -> None:
    lb = make(["a:1", "b:2"], clock=lambda: 7.0)
    lease = lb.select()
    try:
        blank = object.__new__(bk.Lease)
    except TypeError:  # compiled: a native class is only ever built with its fields
        pytest.skip("the compiled Lease cannot be built without its fields")
    with pytest.raises(bk.InvalidLease):
        getattr(lb, give_back)(blank)
    lb.release(lease)  # nothing changed: the real lease is still out, once
    assert sum(s.in_flight for s in lb.stats().values()) == 0
