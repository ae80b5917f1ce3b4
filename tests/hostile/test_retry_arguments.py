"""Retry.call / acall arguments that are not functions (issue 10: the breaker's pass).

``fn`` was only called inside the attempt: a non-callable raised TypeError there, which is an
Exception, so it counted as a failure of the endpoint, was retried on every endpoint (each one
failed in ``stats()``, fuel for passive health's ejections) and only then propagated. A
non-callable ``discard`` raised TypeError when a retry replaced a result.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import balancekit as bk


def balancer() -> bk.RoundRobin:
    return bk.RoundRobin(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])


@pytest.mark.parametrize("fn", [None, 5, "send"], ids=["none", "int", "str"])
def test_call_refuses_a_fn_that_is_not_a_function_and_selects_nothing(fn: Any) -> None:
    lb = balancer()
    with pytest.raises(bk.InvalidOption, match="fn"):
        bk.Retry(sleep=lambda s: None).call(lb, fn)
    assert all(s.selected == 0 for s in lb.stats().values())


@pytest.mark.parametrize("fn", [None, 5], ids=["none", "int"])
def test_acall_refuses_a_fn_that_is_not_a_function_and_selects_nothing(fn: Any) -> None:
    lb = balancer()

    async def main() -> None:
        await bk.Retry().acall(lb, fn)

    with pytest.raises(bk.InvalidOption, match="fn"):
        asyncio.run(main())
    assert all(s.selected == 0 for s in lb.stats().values())


def test_call_refuses_a_discard_that_is_not_a_function() -> None:
    lb = balancer()
    with pytest.raises(bk.InvalidOption, match="discard"):
        bk.Retry().call(lb, lambda endpoint: 1, discard=5)  # type: ignore[arg-type]
    assert all(s.selected == 0 for s in lb.stats().values())
