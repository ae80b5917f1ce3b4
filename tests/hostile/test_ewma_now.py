"""PeakEWMA.estimate / cost and A58's weight_at with a hostile ``now=`` (issue 10, breaker).

``now`` went straight into the arithmetic: ``10**400`` raised OverflowError, a str TypeError,
and NaN answered NaN. It is a clock reading: a finite number of seconds, else InvalidOption.
"""

from __future__ import annotations

from typing import Any

import pytest

import balancekit as bk


@pytest.mark.parametrize(
    "now",
    [10**400, float("nan"), float("inf"), -float("inf"), "1.0", True, 0],
    ids=["1e400", "nan", "inf", "-inf", "str", "bool", "zero-int"],
)
@pytest.mark.parametrize("method", ["estimate", "cost", "weight_at"])
def test_now_must_be_a_finite_number_of_seconds(now: Any, method: str) -> None:
    addresses = ["10.0.0.1:80", "10.0.0.2:80"]
    if method == "weight_at":
        lb: Any = bk.LoadReportWeightedRoundRobin(addresses, clock=lambda: 5.0)
    else:
        lb = bk.PeakEWMA(addresses, clock=lambda: 5.0)
    read = getattr(lb, method)
    if isinstance(now, int) and not isinstance(now, bool) and abs(now) < 10**300:
        assert read("10.0.0.1:80", now=now) >= 0  # an ordinary int reading is fine
        return
    with pytest.raises(bk.InvalidOption, match="now"):
        read("10.0.0.1:80", now=now)
