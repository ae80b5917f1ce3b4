"""Findings of review6 (an adversarial review of the sixth session's merged tree), fixed and
pinned; the last is an accepted limitation, a strict xfail. Its reproducers were kept on the
review6 branch (probes/)."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from typing import Any

import pytest

import balancekit as bk
from balancekit._lease import Lease, _unpickled_lease


def test_faster_than_returns_for_an_infinite_reference() -> None:
    """probes/lrt_inf_reference_hang.py, probes/lrt_inf_clock_hang.py: an inf estimate (a clock
    reading -1e308 then 1e308, or a pickled lease edited to started=-inf) hangs
    LeastResponseTime at its next look at the reference, holding its lock (compiled: the GIL)."""
    code = (
        "import math; from balancekit.strategies.least_time import faster_than as f;"
        " f(math.inf, 1.5)"
    )
    try:
        subprocess.run([sys.executable, "-c", code], timeout=10, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("faster_than(inf, 1.5) still running after 10 s")


class _Edited:
    """The stream of a lease's pickle edited in ``started`` only."""

    def __init__(self, lease: bk.Lease, started: Any) -> None:
        self.args = (lease.endpoint, lease.token, started)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickled_lease, self.args)


@pytest.mark.parametrize(
    "started", ["x", None, -math.inf, math.nan, 10**400], ids=["str", "None", "-inf", "nan", "huge"]
)
def test_an_edited_started_is_refused(started: Any) -> None:
    """probes/pickle_lease_started.py: accepted, then release() raises TypeError/OverflowError
    (not InvalidLease) or learns an inf latency."""
    lb = bk.LeastResponseTime(["a:1", "b:1"])
    lease = lb.select()
    with pytest.raises(bk.InvalidLease):
        pickle.loads(pickle.dumps(_Edited(lease, started)))


@pytest.mark.skipif(bk.compiled, reason="pure: the put-back window runs Python code")
@pytest.mark.xfail(
    strict=True,
    reason="accepted limitation (README): pure, a forged lease's release holds the token it popped"
    " while it checks the endpoint; a genuine release in that window is refused (before the check,"
    " the forged lease was accepted and the genuine one always refused)",
)
@pytest.mark.parametrize("give_back", ["release", "cancel"])
def test_a_forged_lease_never_makes_the_genuine_one_refused(give_back: str) -> None:
    """probes/forged_putback.py (deterministic), probes/forged_putback_threads.py (threads only):
    while a forged lease's release holds the popped token, the genuine lease's release is
    refused with InvalidLease and its lease stays in flight."""
    lb = bk.LeastConnections(["a:1", "b:1"])
    real = lb.select()
    refused: list[bool] = []

    class Sneaky:
        @property
        def __class__(self) -> type:  # type: ignore[override]
            if not refused:  # once: not_its_state's isinstance()
                try:
                    getattr(lb, give_back)(real)
                    refused.append(False)
                except bk.InvalidLease:
                    refused.append(True)
            return object

    forged = object.__new__(Lease)
    forged._endpoint, forged._token, forged._started = Sneaky(), real.token, 0.0  # type: ignore[assignment]
    with pytest.raises(bk.InvalidLease):
        lb.release(forged)
    assert refused == [False]
