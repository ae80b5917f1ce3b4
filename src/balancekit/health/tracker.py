"""The health tracker one balancer carries: ejections, panic, slow-start ramps, check verdicts.

:func:`with_health` attaches it; the base class calls it through the ``HealthHook`` protocol of
``balancekit._core`` (see that protocol for when each hook runs). What it decides, and the
sources of its defaults, are described in :mod:`balancekit.health.passive` and
:mod:`balancekit.health.slow_start`.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, TypeVar

from .._clock import holding
from .._errors import InvalidOption
from .._options import describe
from .._state import EndpointState
from ._journal import note
from .events import (
    CheckFailed,
    CheckPassed,
    Ejected,
    HealthEvent,
    PanicDisengaged,
    PanicEngaged,
    Returned,
)
from .passive import PassiveHealth
from .slow_start import SlowStart

if TYPE_CHECKING:
    from .._core import BalancerBase

__all__ = ["HealthTracker", "health_of", "with_health"]

B = TypeVar("B", bound="BalancerBase")

_log = logging.getLogger("balancekit.health")


class _Record:
    """What the tracker keeps per endpoint (in ``EndpointState.health``)."""

    __slots__ = (
        "check_down",
        "consecutive",
        "ejections",
        "outcomes",
        "ramp_start",
        "ramp_step",
        "returned_at",
        "serial",
        "until",
    )

    def __init__(self) -> None:
        self.consecutive = 0  # failed releases in a row
        # The last `window` outcomes, True = failed (given its maxlen by the first observation).
        self.outcomes: deque[bool] = deque()
        self.ejections = 0  # the ejection-time multiplier
        self.until = 0.0  # end of the current ejection
        self.returned_at = -math.inf  # when the last ejection ended
        self.ramp_start = 0.0
        self.ramp_step = 0
        self.check_down = False  # active checks say it is down
        self.serial = 0  # which ejection `until` belongs to (the tracker's ejection heap)

    def forget_outcomes(self) -> None:
        self.consecutive = 0
        self.outcomes.clear()


def _record(state: EndpointState) -> _Record:
    record: _Record | None = state.health
    if record is None:
        record = state.health = _Record()
    return record


def _healthy(state: EndpointState) -> bool:
    return not state.ejected and not (state.health is not None and state.health.check_down)


class HealthTracker:
    """One balancer's health: ejections, panic, slow-start ramps and active-check verdicts.

    Built by :func:`with_health`; read it with :func:`health_of`. All mutation happens under the
    balancer's lock. ``panic`` says whether selection currently fails open;
    ``ejections_refused`` counts ejections the max ejection share prevented.
    """

    def __init__(
        self,
        balancer: BalancerBase,
        passive: PassiveHealth,
        slow_start: SlowStart | None,
        on_event: Callable[[HealthEvent], object] | None,
    ) -> None:
        self._lb = balancer
        self.passive = passive
        self.slow_start = slow_start
        self._on_event = on_event
        self.due = math.inf  # the next clock reading with work to do (the base reads it)
        self.panic = False
        self.ejections_refused = 0
        #: Events emitted so far by kind (``balancekit.health._journal.event_key``), and the
        #: ejections the max ejection share refused by detection method: read by metrics.
        self.event_counts: dict[str, int] = {}
        self._pending: deque[HealthEvent] = deque()  # emitted, not yet delivered (deliver)
        self.refused_by_reason: dict[str, int] = {}
        self._ejected: dict[int, EndpointState] = {}
        # (until, serial, state) of every ejection, earliest end first; an entry whose serial
        # is not its record's any more (returned early, removed) is dropped when it surfaces.
        self._ends: list[tuple[float, int, EndpointState]] = []
        self._serial = 0
        self._ramping: dict[int, EndpointState] = {}
        self._started = False  # False until the first sync: no ramp then
        self._scale = 1  # the factor every steady weight is multiplied by (slow start)
        self._detects = passive.consecutive_failures is not None or passive.failure_rate is not None
        self._streaks_only = passive.failure_rate is None  # a success without a streak is no news
        self._window = passive.window

    # -- the hooks the base calls -----------------------------------------------------------------

    def eligible(self, up: list[EndpointState]) -> list[EndpointState]:
        """The healthy endpoints among ``up``, or all of ``up`` in panic (pure)."""
        healthy = [state for state in up if _healthy(state)]
        return up if self.passive.in_panic(len(healthy), len(up)) else healthy

    @staticmethod
    def healthy(state: EndpointState) -> bool:
        """Not ejected and not held down by active checks."""
        return _healthy(state)

    def observe(self, state: EndpointState, ok: bool) -> None:
        """Learn a release's outcome; eject the endpoint when a threshold is crossed."""
        if ok:
            record = state.health
            if self._streaks_only:
                if record is None or record.consecutive == 0:
                    return  # the common case: nothing to learn, no lock
            elif (
                record is not None
                and record.consecutive == 0
                and record.outcomes.maxlen == self._window
            ):
                # The common case with a rate window: no lock either. deque.append is atomic in
                # CPython and its maxlen drops the oldest outcome; failures are counted under the
                # lock. A success landing while the endpoint is ejected is wiped at its return.
                record.outcomes.append(False)
                return
        if not self._detects or state.retired:
            return
        lb = self._lb
        with lb._lock, holding(lb._clock):  # (balancekit._clock)
            if state.ejected or lb._members.get(state.endpoint.address) is not state:
                return  # late outcomes of an ejected or removed endpoint are not news
            record = _record(state)
            passive = self.passive
            record.consecutive = 0 if ok else record.consecutive + 1
            outcomes = record.outcomes
            if passive.failure_rate is not None:
                if outcomes.maxlen != passive.window:  # a fresh record: give it its window
                    outcomes = record.outcomes = deque(outcomes, maxlen=passive.window)
                outcomes.append(not ok)
            if ok:
                return
            if (
                passive.consecutive_failures is not None
                and record.consecutive >= passive.consecutive_failures
            ):
                self._eject(state, record, "consecutive_failures")
            elif (
                passive.failure_rate is not None
                and len(outcomes) >= passive.minimum_requests
                and outcomes.count(True) >= passive.failure_rate * len(outcomes)
            ):
                self._eject(state, record, "failure_rate")

    def advance(self) -> None:
        """End the ejections that are due and step the ramps, then apply the change once."""
        lb = self._lb
        with lb._lock, holding(lb._clock):  # (balancekit._clock)
            now = lb._clock()
            if now < self.due:
                return  # another thread got here first
            ends, returning = self._ends, []
            while ends and ends[0][0] <= now:
                _, serial, state = heapq.heappop(ends)
                record = _record(state)
                if record.serial == serial and self._ejected.get(id(state)) is state:
                    returning.append((serial, state, record))
            returning.sort(key=lambda item: item[0])  # in the order they were ejected
            for _, state, record in returning:
                self._return(state, record, now)
            lb._sync([state for _, state, _ in returning])  # after_sync steps ramps, sets due

    def before_sync(self, touched: list[EndpointState]) -> None:
        """Under the lock, before a delta is applied: an ejected endpoint that was removed
        returns (its ejection ends with its membership)."""
        members = self._lb._members
        now = None
        for state in touched:
            if state.ejected and members.get(state.endpoint.address) is not state:
                if now is None:
                    now = self._lb._clock()
                state.ejected = False
                _record(state).returned_at = now
                del self._ejected[id(state)]

    def panic_now(self, healthy: int, up: int) -> bool:
        """Whether selection fails open with these counts; emits the transitions."""
        panic = self.passive.in_panic(healthy, up)
        if panic != self.panic:
            self.panic = panic
            event = PanicEngaged if panic else PanicDisengaged
            self._emit(event(at=self._lb._clock(), healthy=healthy, total=up))
        return panic

    def after_sync(
        self,
        added: list[EndpointState],
        removed: list[EndpointState],
        touched: list[EndpointState],
        full: bool,
    ) -> Iterable[EndpointState] | None:
        """Step the slow-start ramps and set the effective weights; set ``due``.

        Returns the endpoints whose weight may have changed: None (the touched ones) without
        slow start; the touched and ramping ones; every member when the scale changes (the
        first ramp starts or the last ends: every steady weight is multiplied or divided by
        ``steps``, see :mod:`balancekit.health.slow_start`).
        """
        ends = self._ends
        while ends:
            _, serial, state = ends[0]
            if _record(state).serial == serial and self._ejected.get(id(state)) is state:
                break
            heapq.heappop(ends)
        if len(ends) > 2 * len(self._ejected) + 32:  # dropped entries outnumber live ones
            self._ends = ends = [e for e in ends if _record(e[2]).serial == e[1] and e[2].ejected]
            heapq.heapify(ends)
        due = ends[0][0] if ends else math.inf
        started, self._started = self._started, True
        slow_start = self.slow_start
        if slow_start is None:
            self.due = due
            return None
        now = self._lb._clock()
        if started:
            for state in added:
                record = _record(state)
                record.ramp_start, record.ramp_step = now, 0
                self._ramping[id(state)] = state
        changed = list(touched)
        for key, state in list(self._ramping.items()):
            record = _record(state)
            while record.ramp_step < slow_start.steps and now >= record.ramp_start + (
                slow_start.step_time(record.ramp_step + 1)
            ):
                record.ramp_step += 1
            changed.append(state)
            if state.applied is None or record.ramp_step >= slow_start.steps:
                del self._ramping[key]  # done, or out of rotation (a return ramps afresh)
            else:
                due = min(due, record.ramp_start + slow_start.step_time(record.ramp_step + 1))
        self.due = due
        scale = slow_start.steps if self._ramping else 1
        members = self._lb._members
        if scale != self._scale or full:
            self._scale = scale
            changed = list(members.values())
        for state in changed:
            if members.get(state.endpoint.address) is not state:
                continue
            weight = state.endpoint.weight
            if id(state) in self._ramping:
                state.weight = slow_start.effective_weight(weight, _record(state).ramp_step)
            else:
                state.weight = weight * scale
        return changed

    # -- active checks --------------------------------------------------------------------------

    def set_check(self, address: str, healthy: bool, detail: str = "") -> None:
        """Record an active checker's verdict (after its rise/fall thresholds) for ``address``.

        A verdict that brings an ejected endpoint back up (down, then up) ends its ejection now,
        with ``check_ends_ejection`` (Envoy ``successful_active_health_check_uneject_host``)."""
        lb = self._lb
        lb._refuse_reentry("health_of(balancer).set_check")
        with lb._lock, holding(lb._clock):  # (balancekit._clock)
            state = lb._members.get(address)
            if state is None:
                return  # removed since the check started
            record = _record(state)
            if record.check_down == (not healthy):
                return
            record.check_down = not healthy
            now = lb._clock()
            if healthy:
                self._emit(CheckPassed(address=address, at=now))
                if state.ejected and self.passive.check_ends_ejection:
                    self._return(state, record, now, early=True)
            else:
                self._emit(CheckFailed(address=address, at=now, detail=detail))
            lb._sync((state,))

    # -- connection failures --------------------------------------------------------------------

    def connect_failed(self, address: str) -> bool:
        """A connection to ``address`` failed before anything was sent: eject it at once.

        What the HTTP client integrations report for a refused (or timed-out) connection: the
        endpoint cannot be reached, so no failure streak is waited for (Envoy outlier
        detection's local-origin errors with ``consecutive_local_origin_failure: 1``). The
        ejection is like any other (reason ``"connect_failure"``): its time grows with repeats,
        the max ejection share and panic apply, and it ends by clearing ``ejected`` only, so an
        endpoint an operator marked down stays down until ``mark_up``. Returns whether it is
        ejected now; an address that is not a member, or is ejected already, changes nothing.
        O(1), plus one index rebuild when it ejects.
        """
        lb = self._lb
        lb._refuse_reentry("health_of(balancer).connect_failed")
        with lb._lock, holding(lb._clock):  # (balancekit._clock)
            state = lb._members.get(address)
            if state is None or state.ejected:
                return False
            self._eject(state, _record(state), "connect_failure")
            return state.ejected

    # -- reading --------------------------------------------------------------------------------

    def ejected(self) -> list[str]:
        """The addresses ejected now, in the order they joined the balancer."""
        with self._lb._lock:
            states = sorted(self._ejected.values(), key=lambda state: state.order)
            return [state.endpoint.address for state in states]

    def checked_down(self) -> list[str]:
        """The addresses active checks hold down now, in the order they joined the balancer."""
        with self._lb._lock:
            states = sorted(self._lb._members.values(), key=lambda state: state.order)
            return [
                state.endpoint.address
                for state in states
                if state.health is not None and state.health.check_down
            ]

    def ramping(self) -> dict[str, float]:
        """Each ramping endpoint's current share of its weight."""
        if self.slow_start is None:
            return {}
        with self._lb._lock:
            return {
                state.endpoint.address: self.slow_start.share(_record(state).ramp_step)
                for state in self._ramping.values()
            }

    # -- internals ------------------------------------------------------------------------------

    def _emit(self, event: HealthEvent) -> None:
        """Queue ``event`` for :meth:`deliver`: events arise in the middle of a change, and
        delivered there, a callback that raised a ``BaseException`` (``KeyboardInterrupt``, a
        cancelling timeout) left an endpoint marked ejected and still picked (review8)."""
        self._pending.append(event)

    def deliver(self) -> None:
        """Deliver the queued events, in order, once the change that made them is whole (the
        end of ``BalancerBase._sync``, still under the lock): each is counted, logged in one
        line and passed to ``on_event``. A callback's ``Exception`` is logged; any other
        exception propagates, and the events after it wait for the next change."""
        pending = self._pending
        while pending:
            event = pending.popleft()
            note(self.event_counts, event)  # count it and log its one line
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:
                    _log.exception("balancekit health on_event callback failed on %r", event)

    def _eject(
        self,
        state: EndpointState,
        record: _Record,
        reason: Literal["consecutive_failures", "failure_rate", "connect_failure"],
    ) -> None:
        passive = self.passive
        if len(self._ejected) >= passive.ejection_limit(len(self._lb._members)):
            self.ejections_refused += 1
            self.refused_by_reason[reason] = self.refused_by_reason.get(reason, 0) + 1
            return
        now = self._lb._clock()
        if record.ejections:  # one step of the multiplier forgiven per interval back in rotation
            forgiven = max(0.0, now - record.returned_at) / passive.interval  # may be inf
            record.ejections = (
                0 if forgiven >= record.ejections else record.ejections - int(forgiven)
            )
        record.ejections += 1
        ceiling = max(passive.max_ejection, passive.base_ejection)
        record.until = now + min(ceiling, passive.base_ejection * record.ejections)
        record.forget_outcomes()
        state.ejected = True
        self._ejected[id(state)] = state
        self._serial += 1
        record.serial = self._serial
        heapq.heappush(self._ends, (record.until, record.serial, state))
        self._emit(
            Ejected(
                address=state.endpoint.address,
                at=now,
                until=record.until,
                ejections=record.ejections,
                reason=reason,
            )
        )
        self._lb._sync((state,))

    def _return(
        self, state: EndpointState, record: _Record, now: float, *, early: bool = False
    ) -> None:
        state.ejected = False
        del self._ejected[id(state)]
        record.returned_at = now if early else record.until
        record.until = min(record.until, now)
        record.forget_outcomes()
        self._emit(Returned(address=state.endpoint.address, at=now))

    def _check_invariants(self) -> None:
        members = self._lb._members
        for state in self._ejected.values():
            assert state.ejected and members.get(state.endpoint.address) is state
        assert sum(1 for state in members.values() if state.ejected) == len(self._ejected)
        for state in self._ramping.values():
            assert members.get(state.endpoint.address) is state
        for state in members.values():  # a rate window never holds more than `window` outcomes
            assert state.health is None or len(state.health.outcomes) <= self._window
        for state in self._ejected.values():  # every ejection has its end in the heap
            record = _record(state)
            assert (record.until, record.serial, state) in self._ends


def with_health(
    balancer: B,
    passive: PassiveHealth | None = None,
    *,
    slow_start: SlowStart | None = None,
    on_event: Callable[[HealthEvent], object] | None = None,
) -> B:
    """Attach passive health (default :class:`PassiveHealth()`) and optional slow start.

    Returns the same balancer, so ``lb = with_health(WeightedRoundRobin([...]), ...)`` reads well.
    ``on_event`` receives every transition (see :mod:`balancekit.health.events`). A balancer
    takes one tracker; attaching a second raises :class:`InvalidOption`, as does slow start on a
    consistent-hashing strategy (see :mod:`balancekit.health.slow_start`).
    """
    from .._core import BalancerBase
    from ..strategies.hashing._keyed import KeyedBalancer

    if not isinstance(balancer, BalancerBase):
        raise InvalidOption(f"with_health needs a balancekit balancer, not {describe(balancer)}")
    if passive is None:
        passive = PassiveHealth()
    elif not isinstance(passive, PassiveHealth):
        raise InvalidOption(f"passive must be a PassiveHealth, not {describe(passive)}")
    if slow_start is not None and not isinstance(slow_start, SlowStart):
        raise InvalidOption(f"slow_start must be a SlowStart, not {describe(slow_start)}")
    if slow_start is not None and isinstance(balancer, KeyedBalancer):
        raise InvalidOption(
            f"slow start would move keys on {type(balancer).__name__}: its weights decide which"
            " keys an endpoint owns; use slow_start with a weighted strategy instead"
        )
    if on_event is not None and not callable(on_event):
        raise InvalidOption(f"on_event must be a function of one event, not {describe(on_event)}")
    with balancer._lock, holding(balancer._clock):  # (balancekit._clock)
        if balancer._health is not None:
            raise InvalidOption(f"{type(balancer).__name__} already has a health tracker")
        tracker = HealthTracker(balancer, passive, slow_start, on_event)
        balancer._health = tracker
        balancer._refresh()
    return balancer


def health_of(balancer: BalancerBase) -> HealthTracker | None:
    """The tracker :func:`with_health` attached to ``balancer``, or None."""
    health = balancer._health
    return health if isinstance(health, HealthTracker) else None
