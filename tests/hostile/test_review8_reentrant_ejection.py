"""review8: ``_refuse_reentry`` (clock8 0190711) refuses add/remove/set_weight/update/mark_down/
mark_up from inside the balancer's own calls, but not the health tracker's changes, which go
through the same ``_sync``: an ``avoid`` collection's ``in`` (or a ``clock=``) that ejects an
endpoint (``bk.health_of(lb).connect_failed``) or records a failed check (``set_check``) during
LeastConnections' or LeastResponseTime's locked pick leaves their heaps holding the endpoint:
``_check_invariants`` fails, and LeastResponseTime raises ``KeyError`` on that pick and every
later one. Fails on main and on clock8 (3fddae7). Refused (InvalidOption, nothing changed) or
carried out whole, either would pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

import balancekit as bk

CHANGES: dict[str, Callable[[bk.BalancerBase, str], object]] = {
    "connect_failed": lambda lb, address: bk.health_of(lb).connect_failed(address),  # type: ignore[union-attr]
    "set_check": lambda lb, address: bk.health_of(lb).set_check(address, False),  # type: ignore[union-attr]
}


class EjectingAvoid:
    """Avoids the first address asked about; on the second, makes the tracker's change."""

    def __init__(self, lb: bk.BalancerBase, change: str) -> None:
        self.lb, self.change, self.asked = lb, change, 0

    def __contains__(self, address: object) -> bool:
        self.asked += 1
        if self.asked == 2 and isinstance(address, str):
            CHANGES[self.change](self.lb, address)
        return self.asked <= 1

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[str]:
        return iter(())


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("name", ["LeastConnections", "LeastResponseTime"])
def test_a_health_change_from_inside_a_pick_leaves_the_balancer_whole(
    name: str, change: str
) -> None:
    lb = bk.with_health(getattr(bk, name)([f"10.7.0.{i}:80" for i in range(6)]))
    with contextlib.suppress(bk.InvalidOption):  # refused, as _refuse_reentry's are: fine
        lb.release(lb.select(avoid=EjectingAvoid(lb, change)))
    lb._check_invariants()
    for _ in range(12):
        lb.release(lb.select())
