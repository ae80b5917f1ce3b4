"""Review7 (issue 15, session 7) findings on integ7, as tests (both fixed before the merge).

1. PowerOfTwoChoices / PeakEWMA take the lock as ``type(threading.RLock()).acquire(lock)``
   (p2c._acquire): a ``_lock`` of any other type (a wrapper, or the RLock a green-thread patch
   such as gevent's ``monkey.patch_all()`` makes when it runs after balancekit was imported)
   is refused with TypeError; ``lock.acquire()`` (main, and every other strategy) takes it.
2. The pure-Python build binds ``_release_pure`` / ``_select_pure`` in place of ``release`` /
   ``select``: ``help()``, ``inspect.getdoc`` and IDEs show their internal notes instead of the
   public docstrings (the mkdocs site reads the source statically and is unaffected).
"""

from __future__ import annotations

import inspect
import threading

import pytest

import balancekit as bk
from balancekit._core import BalancerBase

TWO_CHOICES = [bk.PowerOfTwoChoices, bk.PeakEWMA]


class _CountingLock:
    """A wrapper that counts acquisitions (contention metrics, tracing)."""

    def __init__(self) -> None:
        self._inner = threading.RLock()
        self.acquired = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.acquired += 1
        return self._inner.acquire(blocking, timeout)

    def release(self) -> None:
        self._inner.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.parametrize("factory", TWO_CHOICES)
def test_a_wrapped_lock_is_taken(factory: type[BalancerBase]) -> None:
    lb = factory(["a:1", "b:1", "c:1"])
    lock = _CountingLock()
    lb._lock = lock  # type: ignore[assignment]
    lb.release(lb.select(), elapsed=0.01)
    assert lock.acquired >= 2
    lb._check_invariants()


@pytest.mark.parametrize("factory", TWO_CHOICES)
def test_an_rlock_patched_after_import_is_taken(
    factory: type[BalancerBase], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What gevent's patch_thread does (threading.RLock then returns the pure-Python _RLock).
    monkeypatch.setattr(threading, "RLock", threading._PyRLock)  # type: ignore[attr-defined]
    lb = factory(["a:1", "b:1", "c:1"])
    assert type(lb._lock) is threading._PyRLock  # type: ignore[attr-defined]
    lb.release(lb.select(), elapsed=0.01)
    lb._check_invariants()


@pytest.mark.skipif(bk.compiled, reason="compiled (mypyc) methods carry no docstrings")
def test_the_public_methods_keep_their_docstrings() -> None:
    assert (inspect.getdoc(BalancerBase.release) or "").startswith("Report how the request")
    for cls in (bk.RoundRobin, bk.WeightedRoundRobin):
        assert (inspect.getdoc(cls.select) or "").startswith("Choose an endpoint")
        assert cls.select.__name__ == "select"
    assert BalancerBase.release.__name__ == "release"


class _NoTruth:
    """An ``ok`` whose truth raises (a numpy array of several values, a strict mock)."""

    def __bool__(self) -> bool:
        raise ValueError("the truth value is ambiguous")


RELEASING = [
    bk.RoundRobin,
    bk.WeightedRoundRobin,
    bk.LeastConnections,
    bk.LeastResponseTime,
    bk.PowerOfTwoChoices,
    bk.PeakEWMA,
    bk.BoundedLoadHash,
    bk.IPHash,
    bk.Random,
]


@pytest.mark.parametrize("elapsed", [0.01, None, float("nan")])
@pytest.mark.parametrize("factory", RELEASING)
def test_an_ok_whose_truth_raises_changes_nothing(
    factory: type[BalancerBase], elapsed: float | None
) -> None:
    """Review7 finding 4 (both builds, on main too): LeastConnections, PowerOfTwoChoices and
    PeakEWMA took the lease, counted it succeeded and never gave its load back when ``ok``'s
    truth raised. Now every release takes the truth first: the error, and nothing changed (the
    lease is still outstanding and releases normally after)."""
    lb = factory(["a:1", "b:1", "c:1"])
    lease = lb.select("key")
    before = {address: (s.in_flight, s.succeeded, s.failed) for address, s in lb.stats().items()}
    with pytest.raises((ValueError, bk.InvalidOption)):
        lb.release(lease, ok=_NoTruth(), elapsed=elapsed)
    after = {address: (s.in_flight, s.succeeded, s.failed) for address, s in lb.stats().items()}
    assert after == before
    lb._check_invariants()
    lb.release(lease, ok=False, elapsed=0.01)
    assert lb.stats()[lease.address].in_flight == 0
    assert lb.stats()[lease.address].failed == 1
    lb._check_invariants()
