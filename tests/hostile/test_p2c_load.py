"""PowerOfTwoChoices' ``load=`` function returning a number no float holds (issue 10, breaker).

The result was checked with ``math.isnan`` and divided by the weight: an int such as 10**400
raised OverflowError from both, out of ``select``, instead of the InvalidOption a non-number
gets.
"""

from __future__ import annotations

from typing import Any

import pytest

import balancekit as bk


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["huge", "-huge"])
def test_a_load_beyond_any_float_is_refused_and_counts_nothing(value: Any) -> None:
    lb = bk.PowerOfTwoChoices(["10.0.0.1:80", "10.0.0.2:80"], load=lambda stats: value, seed=1)
    with pytest.raises(bk.InvalidOption, match="load function returned an int"):
        lb.select()
    assert all(s.in_flight == 0 and s.selected == 0 for s in lb.stats().values())


@pytest.mark.parametrize("value", [2**1023, 10**300, 0, 7], ids=["2^1023", "1e300", "0", "7"])
def test_a_large_int_load_that_a_float_holds_is_used(value: int) -> None:
    lb = bk.PowerOfTwoChoices(["10.0.0.1:80", "10.0.0.2:80"], load=lambda stats: value, seed=1)
    lb.release(lb.select())
