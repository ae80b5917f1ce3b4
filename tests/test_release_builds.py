"""Each build's own ``select``/``release`` steps, chosen once at import (issue 15).

The pure-Python build binds ``BalancerBase._release_pure`` as ``release`` and
``_ScheduleBalancer._select_pure`` as the schedule strategies' ``select``, so no pick tests the
build; compiled (mypyc), the classes are native and keep the compiled steps. The suites run
against both builds (``.ci/run``), so both sets of steps are held to the same contract; these
tests check that the binding happened in the build that runs, and the one state change it
brings: in pure Python a schedule's fast positions (``_fast``) are off while a health tracker is
attached, and attaching one mid-rotation neither skips nor repeats a position.
"""

from __future__ import annotations

import pytest

import balancekit as bk
from balancekit._core import BalancerBase
from balancekit.strategies.round_robin import _ScheduleBalancer


def test_the_build_that_runs_has_its_own_steps_bound() -> None:
    release = BalancerBase.__dict__["release"]
    select = _ScheduleBalancer.__dict__["select"]
    if bk.compiled:
        assert release is not BalancerBase.__dict__["_release_pure"]
        assert select is not _ScheduleBalancer.__dict__["_select_pure"]
    else:
        assert release is BalancerBase.__dict__["_release_pure"]
        assert select is _ScheduleBalancer.__dict__["_select_pure"]


def _addresses(count: int) -> list[str]:
    return [f"h{i}:1" for i in range(count)]


@pytest.mark.parametrize("factory", [bk.RoundRobin, bk.WeightedRoundRobin])
@pytest.mark.parametrize("before", [0, 1, 4, 7, 23])
def test_attaching_health_mid_rotation_goes_on_where_the_rotation_stood(
    factory: type[BalancerBase], before: int
) -> None:
    endpoints = [bk.Endpoint(address, weight=1 + i % 3) for i, address in enumerate(_addresses(5))]
    plain = factory(endpoints)
    watched = factory(endpoints)
    expected = [plain.select().address for _ in range(before + 40)]
    picked = [watched.select().address for _ in range(before)]
    bk.with_health(watched, passive=bk.PassiveHealth(consecutive_failures=3))
    if not bk.compiled:
        assert watched._fast is None  # type: ignore[attr-defined]
    picked += [watched.select().address for _ in range(40)]
    assert picked == expected


def test_health_keeps_the_fast_positions_off_across_changes() -> None:
    lb = bk.RoundRobin(_addresses(3))
    bk.with_health(lb, passive=bk.PassiveHealth(consecutive_failures=1))
    lb.add("h9:1")
    lb.remove("h0:1")
    if not bk.compiled:
        assert lb._fast is None  # type: ignore[attr-defined]
    lease = lb.select()
    lb.release(lease, ok=False)  # ejected: the picks skip it
    picks = {lb.select().address for _ in range(12)}
    assert lease.address not in picks
    lb._check_invariants()
