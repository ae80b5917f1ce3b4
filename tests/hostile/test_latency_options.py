"""Hostile numeric options of the latency-aware strategies end in InvalidOption in both builds.

Compiled (mypyc), a parameter typed ``float`` was checked on entry: ``10**400`` and ``"0.5"``
raised a bare TypeError, and ``True`` was taken as 1.0, where the pure build refuses all three
with :class:`InvalidOption` naming the option (issue 15's compiled build; found by
tests/strategies/test_ewma.py under ``balancekit.compiled``).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import balancekit as bk

OPTIONS: list[tuple[Any, str]] = [
    (bk.LeastResponseTime, "decay"),
    (bk.LeastResponseTime, "default_latency"),
    (bk.LeastResponseTime, "min_step"),
    (bk.LeastResponseTime, "probe_interval"),
    (bk.LeastResponseTime, "tolerance"),
    (bk.PeakEWMA, "decay"),
    (bk.PeakEWMA, "default_latency"),
    (bk.PeakEWMA, "tolerance"),
    (bk.PeakEWMA, "choices"),
]
HOSTILE: list[object] = [10**400, -(10**400), True, "0.5", math.nan, math.inf, None, [1.0]]


@pytest.mark.parametrize(("cls", "option"), OPTIONS, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_option_is_invalid_option(cls: Any, option: str, value: object) -> None:
    with pytest.raises(bk.InvalidOption, match=option):
        cls(["a:1", "b:1"], **{option: value})
