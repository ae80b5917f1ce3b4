"""review8: an ``on_event`` that raises a BaseException (KeyboardInterrupt, SystemExit, a
gevent or trio-style timeout) in the middle of an ejection.

``HealthTracker._emit`` catches ``Exception`` only, and ``_eject`` emits ``Ejected`` after
marking the endpoint ejected but before ``_sync`` applies it: the balancer is left with the
endpoint listed as ejected and still picked (``_check_invariants`` fails) until the ejection
ends. Fails on main too (not clock8's). A fix: apply the change, then emit (or deliver events
after the change, out of the balancer's lock and the clock's hold).
"""

from __future__ import annotations

import pytest

import balancekit as bk


class Interrupt(BaseException):
    """What a Ctrl-C or a cancelling timeout raises inside a handler."""


@pytest.mark.parametrize("name", ["RoundRobin", "LeastResponseTime", "PeakEWMA", "Random"])
def test_an_interrupted_event_handler_leaves_no_half_ejection(name: str) -> None:
    def on_event(event: object) -> None:
        raise Interrupt

    lb = bk.with_health(
        getattr(bk, name)(["a:1", "b:1", "c:1"], clock=lambda: 1.0), on_event=on_event
    )
    with pytest.raises(Interrupt):
        lb._health.connect_failed("a:1")
    lb._check_invariants()
    ejected = lb._health.ejected()
    picked = {lb.select().endpoint.address for _ in range(30)}
    assert not set(ejected) & picked, (ejected, picked)
