"""What a ``clock=`` returns: refused unless a finite number, taken as a float, held still while
membership changes (balancekit._clock).

Regressions, every strategy of the conformance registry, both builds:

- one ``-inf`` reading made LeastResponseTime's estimate infinite, then NaN, and its select
  looped for ever holding the lock (review7b, seed 202 of its probe); NaN, ``inf`` and
  ``-inf`` readings now raise :class:`InvalidOption` where they are read and change nothing;
- finite readings far apart (``-1e308`` then ``1e308``) gave an infinite elapsed time, and a
  blend of estimates near the largest float rounded past it: NaN estimates and the same hang;
- a Decimal clock made LeastResponseTime and PeakEWMA raise ``TypeError`` on the first sample,
  and a Fraction clock left Fraction estimates in ``stats()``;
- a clock that raised in the middle of a membership change (LeastResponseTime's new endpoint
  "picked now", PeakEWMA's join time, a slow-start ramp's step, an ejection's end) left the
  change half-made: ``_check_invariants`` failed, later picks raised ``KeyError`` or
  ``IndexError``. A change now reads the clock once, first.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit._clock import CheckedClock, within_float

from ..conformance.registry import Case, all_cases

FLOAT_MAX = sys.float_info.max
CASES = all_cases()
REFUSED = [
    math.nan,
    math.inf,
    -math.inf,
    10**400,
    -(10**400),
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    True,
    "12.5",
    None,
    complex(1, 0),
]


class Readings:
    """A clock returning ``now`` (settable), or raising/returning ``bad`` once when armed."""

    def __init__(self) -> None:
        self.now: Any = 0.0
        self.calls = 0
        self._bad: list[Any] = []

    def arm(self, bad: Any) -> None:
        self._bad = [bad]

    def disarm(self) -> None:
        self._bad = []

    def __call__(self) -> Any:
        self.calls += 1
        if self._bad:
            bad = self._bad.pop()
            if isinstance(bad, BaseException):
                raise bad
            return bad
        return self.now


def _endpoints(n: int = 4, prefix: str = "10.8.0") -> list[bk.Endpoint]:
    return [bk.Endpoint(f"{prefix}.{i}:80", weight=1 + i % 3) for i in range(n)]


def _context(case: Case, i: int = 0) -> str | None:
    return f"key-{i}" if case.keyed else None


def _snapshot(lb: bk.BalancerBase) -> tuple[Any, ...]:
    return (lb.endpoints, lb.stats())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@pytest.mark.parametrize("bad", REFUSED, ids=repr)
def test_a_refused_reading_raises_and_changes_nothing(case: Case, bad: object) -> None:
    clock = Readings()
    lb = case.factory(_endpoints(), clock)
    assert isinstance(lb, bk.BalancerBase)
    held = lb.select(_context(case))
    clock.now = 0.25
    before = _snapshot(lb)
    clock.arm(bad)
    with pytest.raises(bk.InvalidOption, match=r"clock= returned .*finite number of seconds"):
        lb.select(_context(case, 1))
    assert _snapshot(lb) == before
    lb._check_invariants()
    # a release whose clock reading is refused: counted, nothing learned, the load given back
    clock.arm(bad)
    with contextlib.suppress(bk.InvalidOption):  # from those that read the clock at release
        lb.release(held)
    clock.disarm()  # (unread by those that do not)
    assert all(stats.in_flight == 0 for stats in lb.stats().values())
    with pytest.raises(bk.InvalidLease):
        lb.release(held)  # given back once, whatever the clock did
    lb._check_invariants()
    lb.release(lb.select(_context(case, 2)))
    for stats in lb.stats().values():
        assert stats.latency is None or 0.0 <= stats.latency <= FLOAT_MAX


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@pytest.mark.parametrize(
    "change",
    ["add", "remove", "set_weight", "update", "mark_down", "mark_up"],
)
@pytest.mark.parametrize("bad", [RuntimeError("clock failed"), math.nan], ids=repr)
def test_a_membership_change_whose_clock_fails_changes_nothing(
    case: Case, change: str, bad: object
) -> None:
    clock = Readings()
    endpoints = _endpoints()
    lb = case.factory(endpoints, clock)
    assert isinstance(lb, bk.BalancerBase)
    lb.mark_down(endpoints[3].address)
    leases = [lb.select(_context(case, i)) for i in range(3)]
    clock.now = 1.0
    lb.release(leases.pop())
    before = _snapshot(lb)
    newcomer = bk.Endpoint("10.8.1.1:80", weight=2)
    calls: dict[str, Callable[[], object]] = {
        "add": lambda: lb.add(newcomer),
        "remove": lambda: lb.remove(endpoints[0].address),
        "set_weight": lambda: lb.set_weight(endpoints[1].address, 5),
        "update": lambda: lb.update([*endpoints[1:], newcomer]),
        "mark_down": lambda: lb.mark_down(endpoints[2].address),
        "mark_up": lambda: lb.mark_up(endpoints[3].address),
    }
    clock.arm(bad)
    try:
        calls[change]()
    except (RuntimeError, bk.InvalidOption):  # refused: nothing changed
        assert _snapshot(lb) == before
        lb._check_invariants()
        calls[change]()  # and the same change with a working clock
    clock.disarm()  # (a change that never read it)
    lb._check_invariants()
    for lease in leases:
        lb.release(lease)
    for i in range(12):
        lb.release(lb.select(_context(case, i)))
    lb._check_invariants()
    assert all(stats.in_flight == 0 for stats in lb.stats().values())


def test_a_change_reads_the_clock_once() -> None:
    """Held: every reading inside a change is the one taken as it began."""
    clock = Readings()
    lb = bk.LeastResponseTime(_endpoints(), clock=clock)
    lb = bk.with_health(lb, slow_start=bk.SlowStart(window=10.0))
    clock.calls = 0
    lb.update(_endpoints(6))
    assert clock.calls == 1
    clock.calls = 0
    lb.add("10.8.2.1:80")
    assert clock.calls == 1


@pytest.mark.parametrize(
    "reading",
    [7, 2**40, 10**18 + 1, 1.5, Fraction(3, 2), Decimal("2.25"), -3],
    ids=repr,
)
@pytest.mark.parametrize(
    "name", ["RoundRobin", "LeastConnections", "LeastResponseTime", "PeakEWMA", "IPHash"]
)
def test_a_number_is_taken_as_a_float(name: str, reading: object) -> None:
    """Any real number type is read as a float, alike in both builds (a Decimal clock raised
    TypeError in the latency-aware strategies; a Fraction one left Fraction estimates)."""
    clock = Readings()
    clock.now = reading
    lb = getattr(bk, name)(["a:1", "b:1"], clock=clock)
    context = "k" if name == "IPHash" else None
    for _ in range(3):
        lease = lb.select(context)
        assert type(lease.started) is float and lease.started == float(reading)  # type: ignore[arg-type]
        lb.release(lease)
        lb.release(lb.select(context), ok=False)
    for stats in lb.stats().values():
        assert stats.latency is None or type(stats.latency) is float


def test_int_readings_past_2_53_round_alike_in_both_builds() -> None:
    """An int clock beyond 2**53 (``time.time_ns``) is read as the nearest float in both
    builds: the estimate is the float difference (the compiled build learned in floats and the
    pure one in ints before, review7b)."""
    now = [10**18 + 1]
    lb = bk.LeastResponseTime(["a:1", "b:1"], clock=lambda: now[0])
    expected = set()
    for _ in range(4):
        lease = lb.select()
        now[0] += 1001
        expected.add(float(now[0]) - float(now[0] - 1001))
        lb.release(lease)
    assert {stats.latency for stats in lb.stats().values()} <= expected


def test_standard_clocks_are_not_wrapped() -> None:
    """The default and the standard library's clocks are read directly (no Python frame on the
    hot path); any other clock is checked."""
    for clock in (time.monotonic, time.perf_counter, time.time):
        assert bk.RoundRobin(["a:1"], clock=clock)._clock is clock
    assert bk.RoundRobin(["a:1"])._clock is time.monotonic
    mine = Readings()
    wrapped = bk.RoundRobin(["a:1"], clock=mine)._clock
    assert type(wrapped) is CheckedClock and wrapped.clock is mine
    again = bk.RoundRobin(["a:1"], clock=wrapped)._clock  # another balancer's: its own hold
    assert type(again) is CheckedClock and again is not wrapped and again.clock is mine


def test_within_float() -> None:
    assert within_float(0.5) == 0.5
    assert within_float(FLOAT_MAX) == FLOAT_MAX
    assert within_float(math.inf) == FLOAT_MAX
    assert within_float(-1.0) == 0.0
    assert within_float(-math.inf) == 0.0
    assert within_float(math.nan) == 0.0
    assert within_float(0.0) == 0.0


_EXTREME = st.one_of(
    st.sampled_from([FLOAT_MAX, -FLOAT_MAX, 1e308, -1e308, 0.0, 5e-324, 2.0**80, -(2.0**80)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, max_value=100.0),
)


def _run_with_deadline(work: Callable[[], None], seconds: float = 20.0) -> None:
    """``work`` in a daemon thread; fails if it has not returned in ``seconds`` (a hang)."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as error:  # reported below
            errors.append(error)

    worker = threading.Thread(target=guarded, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "hung (a select or release looped holding the lock)"
    if errors:
        raise errors[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(CASES),
    readings=st.lists(_EXTREME, min_size=1, max_size=60),
    program=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 7)), min_size=1, max_size=80),
)
def test_extreme_finite_readings_keep_every_estimate_finite(
    case: Case, readings: list[float], program: list[tuple[int, int]]
) -> None:
    """Finite readings of any size, in any order (a clock set back or jumping by 1e308): every
    estimate stays a finite float >= 0, the invariants hold and nothing hangs."""
    feed: Iterator[float] = iter(readings * (1 + 400 // len(readings)))
    lb = case.factory(_endpoints(), lambda: next(feed, 0.0))
    assert isinstance(lb, bk.BalancerBase)
    extra = _endpoints(3, "10.8.3")

    def drive() -> None:
        held: list[bk.Lease] = []
        for op, arg in program:
            try:
                if op < 4 or not held:
                    held.append(lb.select(_context(case, arg)))
                elif op < 7:
                    elapsed = [None, None, 0.001, FLOAT_MAX, 0.0][arg % 5]
                    lb.release(held.pop(arg % len(held)), ok=arg % 3 > 0, elapsed=elapsed)
                elif op == 7:
                    lb.cancel(held.pop(arg % len(held)))
                elif op == 8:
                    if extra[arg % 3] in lb:
                        lb.remove(extra[arg % 3].address)
                    else:
                        lb.add(extra[arg % 3])
                else:
                    lb.set_weight(_endpoints()[arg % 4].address, 1 + arg)
            except bk.NoEndpointAvailable:
                pass
        lb._check_invariants()
        for lease in held:
            lb.release(lease)

    _run_with_deadline(drive)
    for stats in lb.stats().values():
        assert stats.latency is None or (
            type(stats.latency) is float and 0.0 <= stats.latency <= FLOAT_MAX
        )
        assert stats.in_flight == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "soon"], ids=repr)
def test_the_other_clock_users_refuse_a_reading_that_is_no_number(bad: object) -> None:
    """Sticky sessions, ban lists, anomaly detectors and Retry check their ``clock=`` alike:
    a NaN reading raised ``ValueError`` from ``math.floor`` (sticky tokens, anomaly buckets),
    an infinite one ``OverflowError``, and in a ban list a NaN end time never came."""
    from balancekit.guard import AnomalyDetector, BanList
    from balancekit.retry import Retry
    from balancekit.sticky import StickySessions

    clock = Readings()
    sticky = StickySessions(b"0123456789abcdef0123456789abcdef", clock=clock)
    bans = BanList(strikes=1, clock=clock)
    anomaly = AnomalyDetector(clock=clock)
    retry, pool = Retry(clock=clock, timeout=5.0), bk.RoundRobin(["a:1"])
    for component in (sticky, bans, anomaly, retry):
        assert type(component._clock) is CheckedClock
    request = bk.Request(client_addr="198.51.100.7")
    for call in (
        lambda: sticky.issue("a:1"),
        lambda: bans.strike(request, "test"),
        lambda: anomaly.check(request),
        lambda: retry.call(pool, lambda endpoint: endpoint),
    ):
        clock.arm(bad)
        with pytest.raises(bk.InvalidOption, match="clock= returned"):
            call()
        clock.disarm()
        call()  # a working clock again: works


@pytest.mark.parametrize("reading", [2.0**64, 1e300])
def test_a_sticky_token_refuses_an_issue_time_past_64_bits(reading: float) -> None:
    """A finite reading the token's header cannot hold raised ``struct.error`` (review8)."""
    from balancekit.sticky import StickySessions

    sticky = StickySessions(b"0123456789abcdef0123456789abcdef", clock=lambda: reading)
    with pytest.raises(bk.InvalidOption, match="at most 18446744073709551615"):
        sticky.issue("a:1")
