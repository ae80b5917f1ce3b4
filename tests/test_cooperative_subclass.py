"""A class between a strategy and BalancerBase in a subclass's MRO (a cooperative mixin over
BalancerBase, e.g. tracing) sees the general path's select and release: the fast paths hand
over with ``super(Class, self)`` (no ``__class__`` cell on the fast path, unlike ``super()``),
not by naming BalancerBase, which skipped such a mixin.

Found by review4 of 082bbe7 for the four load-aware strategies; RoundRobin, WeightedRoundRobin,
Random and WeightedRandom had named BalancerBase since issue 15's first session. Pure Python
only: compiled (mypyc), ``super()`` in a native class is bound when the class is compiled, so a
mixin added by an interpreted subclass is not seen there (README, "Compiled build").
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
]
pytestmark = pytest.mark.skipif(
    bool(getattr(bk, "compiled", False)), reason="mypyc binds super() when it compiles the class"
)


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
    lease = lb.select(avoid={"a:1"})  # avoid: the general path
    lb.release(lease, elapsed=1)  # an int elapsed: the general path
    assert calls == ["select", "release"]
