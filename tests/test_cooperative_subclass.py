"""A class between a strategy and BalancerBase in a subclass's MRO (a cooperative mixin over
BalancerBase, e.g. tracing) sees the general path's select and release: the fast paths hand
over with ``_core.SUPER(Class, self)`` (``super`` under another name: no ``__class__`` cell on
the fast path, and compiled, the builtin called at run time), not by naming BalancerBase,
which skipped such a mixin.

Found by review4 of 082bbe7 for the four load-aware strategies; RoundRobin, WeightedRoundRobin,
Random and WeightedRandom had named BalancerBase since issue 15's first session (and compiled, the
zero-argument ``super()`` of 56254ca was bound when the class was compiled). Both builds.
"""

from __future__ import annotations

from typing import Any

import pytest

import balancekit as bk

STRATEGIES = [
    bk.PowerOfTwoChoices,
    bk.PeakEWMA,
    bk.LeastConnections,
    bk.LeastResponseTime,
    bk.RoundRobin,
    bk.WeightedRoundRobin,
    bk.Random,
    bk.WeightedRandom,
    bk.BoundedLoadHash,  # its fast paths since the fifth session (issue 15)
]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda cls: cls.__name__)
def test_a_cooperative_mixin_sees_the_general_path(strategy: type[Any]) -> None:
    calls: list[str] = []

    class Traced(bk.BalancerBase):
        def select(self, context: Any = None, avoid: Any = ()) -> Any:
            calls.append("select")
            return super().select(context, avoid)

        def release(self, lease: Any, *, ok: Any = True, elapsed: Any = None) -> None:
            calls.append("release")
            return super().release(lease, ok=ok, elapsed=elapsed)

    mixed: Any = type("Mixed", (strategy, Traced), {})
    lb = mixed(["a:1", "b:1"])
    key = "client-1" if strategy is bk.BoundedLoadHash else None  # a hash strategy's key
    lease = lb.select(key, avoid={"a:1"})  # avoid: the general path
    lb.release(lease, elapsed=1)  # an int elapsed: the general path
    assert calls == ["select", "release"]
