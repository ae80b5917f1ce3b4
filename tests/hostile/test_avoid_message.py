"""Why a pick found nothing when ``avoid`` holds more than addresses (issue 10, breaker).

``select(avoid=...)`` takes any collection; entries that are no member's address simply match
nothing. When every eligible endpoint was avoided, the NoEndpointAvailable message sorted the
whole of ``avoid``: a TypeError for ``["10.0.0.1:80", 5]`` (str and int do not compare), and a
message as long as the collection for a huge one.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

import balancekit as bk
from tests.conformance.registry import Case, all_cases

CASES = all_cases()
by_case = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
ONLY = "10.0.0.1:80"


@by_case
@pytest.mark.parametrize(
    "extra", [5, None, b"10.0.0.1:80", ("a", 1)], ids=["int", "none", "bytes", "tuple"]
)
def test_every_endpoint_avoided_is_no_endpoint_available_whatever_else_avoid_holds(
    case: Case, extra: Any
) -> None:
    lb = case.factory([bk.Endpoint(ONLY)], time.monotonic)
    context = "key" if case.keyed else None
    with pytest.raises(bk.NoEndpointAvailable, match=re.escape(ONLY)):
        lb.select(context, avoid=[ONLY, extra])
    assert lb.stats()[ONLY].in_flight == 0
    lb.release(lb.select(context, avoid=[extra]))  # it matches nothing: the endpoint is picked


@by_case
def test_the_message_names_the_avoided_endpoints_not_all_of_avoid(case: Case) -> None:
    lb = case.factory([bk.Endpoint(ONLY)], time.monotonic)
    context = "key" if case.keyed else None
    avoid = {ONLY, *(f"10.9.{i // 250}.{i % 250}:80" for i in range(20_000))}
    with pytest.raises(bk.NoEndpointAvailable) as raised:
        lb.select(context, avoid=avoid)
    assert len(str(raised.value)) < 300
