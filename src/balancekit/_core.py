"""The ``Balancer`` protocol and the base class every strategy builds on.

The base owns what all strategies share: membership (add, remove, set_weight, update, mark_down,
mark_up), per-endpoint live state (:class:`~balancekit._state.EndpointState`, one per address,
kept across membership changes), lease bookkeeping (every lease is released at most once), stats
and ``acquire``. A strategy supplies an index built from the eligible endpoints (``_rebuild``)
and kept up to date from each change's delta (``_apply``, see :mod:`balancekit._delta`), a
pick over that index (``_pick``), and optionally an outcome hook (``_on_release``).

Thread safety: every public method of every balancer may be called from many threads at once.
Membership changes take the balancer's lock and swap the strategy's index in with one
assignment. Strategies whose index is immutable between changes (round robin, hashing) select
and release without a lock, using only operations that are atomic in CPython (``next()`` on an
``itertools.count``, one ``dict`` store or pop); load-aware strategies take the lock in their
pick and release hooks. See docs/architecture.md.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Final, final

from mypy_extensions import mypyc_attr

from ._clock import Clock, check_clock, holding, within_float
from ._delta import Delta, sync
from ._endpoint import Endpoint, EndpointLike, as_endpoint, as_endpoints, canonical_address
from ._errors import (
    DuplicateEndpoint,
    InvalidEndpoint,
    InvalidLease,
    InvalidOption,
    NoEndpointAvailable,
    UnknownEndpoint,
)
from ._lease import EndpointStats, Lease
from ._options import describe
from ._protocols import Balancer, HealthHook, acquired
from ._state import NATIVE as NATIVE_BUILD
from ._state import EndpointState
from ._tally import Tally

__all__ = ["Balancer", "BalancerBase", "Clock", "Delta", "HealthHook"]


# One token sequence for the whole process, so a lease from another balancer is never mistaken
# for one of ours: odd numbers from TOKENS (the pure-Python build's, atomic as a C call), even
# ones from NATIVE_TOKENS (the compiled build's: see balancekit._state on atomicity), so the two
# can never give the same token. Strategies that inline ``select`` import both.
TOKENS: Final = itertools.count(1, 2)


@final
class NativeTokens:
    """The compiled build's token source: even numbers, one per :meth:`take`.

    Compiled (mypyc), ``take`` is a direct C call whose read and write of ``last`` never give up
    the GIL, so no two threads get the same token; the pure-Python build never calls it (two
    bytecodes there could interleave) and takes :data:`TOKENS` instead.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = 0

    def take(self) -> Any:  # Any: compiled, the token is boxed once, for the dict and the lease
        last = self.last + 2
        self.last = last
        return last


NATIVE_TOKENS: Final = NativeTokens()
#: Whether the hot paths count in the native parts (``balancekit._state.NATIVE``), as a ``Final``
#: of this module: compiled, an imported name is looked up by name on every read.
NATIVE: Final = NATIVE_BUILD
# The hot path's names as module constants (issue 15). Compiled (mypyc), ``next(x)`` looks up
# ``builtins.next`` by name on every call; a ``Final`` is read from a C static. ``NEXT`` returns
# ``Any`` so the compiled code keeps the int object it gets for the dict key. Pure Python reads
# it from the module's globals, as fast as the builtin. ``DICT_POP`` is ``dict.pop`` called as
# a function: compiled, ``d.pop(k)`` looks the method up on every call.
NEXT: Final[Callable[[Iterator[Any]], Any]] = next
#: Pure Python builds a :class:`Lease` as ``NEW_LEASE(Lease)`` and three slot stores: ~40 ns
#: less than calling the class (3.11 runs ``__init__`` in a frame of its own). Compiled, the
#: class is native and is called (``object.__new__`` refuses a native class).
NEW_LEASE: Final = object.__new__
DICT_POP: Final[Callable[[dict[Any, Any], Any], Any]] = dict.pop
#: ``super`` under another name, for the fast paths' hand-over to the general path:
#: ``SUPER(Class, self).select(...)`` follows the MRO (a cooperative mixin between a strategy
#: and BalancerBase is called), and the function gets no ``__class__`` cell (CPython gives one
#: to every function that names ``super``, copied in on every call: COPY_FREE_VARS). Compiled,
#: it is the builtin called at run time, so the MRO is followed there too.
SUPER: Final[Callable[[type, object], Any]] = super


def _address_of(item: EndpointLike) -> str:
    if isinstance(item, Endpoint):
        return item.address
    if isinstance(item, str):
        return item
    raise InvalidOption(f"expected an address string or an Endpoint, not {describe(item)}")


def _canonical(address: str) -> str:
    """``address`` in the form :class:`Endpoint` stores (``A.:080`` -> ``a:80``), or unchanged
    if it is no address at all (it then matches no member)."""
    try:
        return canonical_address(address)
    except InvalidEndpoint:
        return address


def _invalid_lease(lease: object) -> InvalidLease:
    """Why ``release(lease)`` is refused: not a lease, or not an outstanding one of ours."""
    if type(lease) is not Lease:
        return InvalidLease(f"release takes the Lease that select returned, not {describe(lease)}")
    # A hand-made Lease may hold anything, or nothing (pure Python: ``object.__new__(Lease)``).
    endpoint: Any = getattr(lease, "_endpoint", None)
    on = endpoint.address if isinstance(endpoint, Endpoint) else describe(endpoint)
    return InvalidLease(
        f"lease {describe(getattr(lease, '_token', None))} on {on} was already released or was"
        " not issued by this balancer"
    )


def not_its_state(state: EndpointState, endpoint: Any) -> bool:
    """Whether a lease on ``endpoint``, whose token found ``state``, is on another endpoint: a
    hand-made lease carrying another outstanding lease's token. Called only when the state's
    Endpoint is not the lease's object: a reweight or ``update()`` gave the state a new one, or
    the lease was pickled and sent back; both keep the address (states are keyed by it).
    Callers read the lease's endpoint before they take the token's entry out (a blank
    hand-made lease has none: AttributeError, the entry left in place)."""
    return not isinstance(endpoint, Endpoint) or endpoint.address != state.endpoint.address


_PLAIN_COLLECTIONS = frozenset({set, frozenset, list, tuple, dict})


def check_avoid(avoid: object) -> None:
    """Refuse an ``avoid=`` that is not a collection of addresses: one string (``in`` would
    match substrings), or something without ``in``/``len`` (an int, a generator ``in`` would
    consume)."""
    if type(avoid) in _PLAIN_COLLECTIONS:
        return  # the common case, without the ABC check below (~0.2 us)
    if isinstance(avoid, str | bytes):
        raise InvalidOption(
            f"avoid must be a collection of addresses, not one string: use"
            f" avoid={{{describe(avoid)}}}"
        )
    if not isinstance(avoid, Collection) or isinstance(avoid, range):
        # A range holds no address, yet is a Collection of any length in O(1) memory:
        # avoid=range(10**12) would be scanned item by item on every select.
        raise InvalidOption(f"avoid must be a collection of addresses, not {describe(avoid)}")


def check_endpoints(endpoints: object) -> Iterable[EndpointLike]:
    """Refuse endpoints that are not an iterable (``update(5)``) with :class:`InvalidOption`."""
    if not isinstance(endpoints, Iterable):
        raise InvalidOption(f"endpoints must be a list of endpoints, not {describe(endpoints)}")
    return endpoints


#: The largest finite float: ``x <= FLOAT_MAX`` is False for inf and NaN.
FLOAT_MAX: Final = sys.float_info.max


def checked_elapsed(elapsed: object) -> float:
    """A ``release(elapsed=...)`` as a float: a finite number of seconds >= 0 (an int too, a
    bool not), else :class:`InvalidOption`. ``release`` accepts a finite float >= 0 inline and
    calls this for anything else: the ``isinstance`` checks with a union and ``sys.float_info``
    cost ~3x the inline ``type() is float`` test on every release (measured, issue 15)."""
    # <= the largest float, not < inf: an int such as 10**400 is finite to Python but
    # is no float, and a latency-aware strategy storing it overflowed on every pick.
    if not (
        isinstance(elapsed, int | float)
        and not isinstance(elapsed, bool)
        and 0 <= elapsed <= FLOAT_MAX
    ):
        raise InvalidOption(
            f"elapsed must be a finite number of seconds >= 0, not {describe(elapsed)}"
        )
    return float(elapsed)


def clock_reading(now: object) -> float | None:
    """A ``now=`` option of a read-only method: None (read the clock), or a finite number of
    seconds; anything else (NaN, ``10**400``, a str, a bool) raises :class:`InvalidOption`."""
    if now is None:
        return None
    if (
        isinstance(now, bool)
        or not isinstance(now, int | float)
        or not -sys.float_info.max <= now <= sys.float_info.max  # NaN too
    ):
        shown = f"an int of {now.bit_length()} bits" if isinstance(now, int) else repr(now)
        raise InvalidOption(f"now must be a clock reading in seconds (finite), not {shown}")
    return float(now)


# allow_interpreted_subclasses on it and every strategy class: in the compiled build (mypyc)
# custom strategies and the tests' twins subclass them in Python.
@mypyc_attr(allow_interpreted_subclasses=True)
class BalancerBase:
    """Membership, live state, lease bookkeeping and stats shared by every strategy.

    Subclasses implement :meth:`_rebuild` and :meth:`_pick`; they may set ``_observes_release``
    and implement :meth:`_on_release` to learn outcomes, and extend :meth:`_check_invariants`.
    """

    #: Set by strategies that learn from outcomes; stateless ones keep release to a dict pop.
    _observes_release: ClassVar[bool] = False
    #: The attached health tracker (``balancekit.with_health``), or None: one check per call.
    _health: HealthHook | None

    def __init__(self, endpoints: Iterable[EndpointLike] = (), *, clock: Clock = time.monotonic):
        self._clock = check_clock(clock)
        self._lock = threading.RLock()
        self._members: dict[str, EndpointState] = {}
        self._retired: dict[str, EndpointState] = {}
        self._outstanding: dict[int, EndpointState] = {}
        self._order = itertools.count()
        self._eligible_by_address: dict[str, EndpointState] = {}  # what a pick may return
        # The eligible endpoints in join order, and the counts the panic threshold reads, kept
        # by delta refreshes (balancekit._delta): members up, healthy among them, and the up
        # but unhealthy ones (they enter or leave rotation together when panic flips).
        self._eligible_list: list[EndpointState] = []
        self._up_count = 0
        self._healthy_count = 0
        self._unhealthy: dict[int, EndpointState] = {}
        # Instance copies of the class-level defaults that select and release read on every call:
        # CPython 3.11 reads an instance attribute in ~9 ns and a class attribute through the
        # instance in ~24 ns (it does not specialise the latter); ~45 ns per select+release.
        self._health = None
        self._observes = self._observes_release
        # release's one test for "anything beyond the counts": the strategy observes outcomes,
        # or a health tracker is attached (with_health sets _health, then calls _refresh).
        self._hooks = self._observes
        self._tally = Tally()  # membership, rebuild and removed-endpoint counts (metrics)
        for endpoint in as_endpoints(check_endpoints(endpoints)):
            self._members[endpoint.address] = EndpointState(endpoint, next(self._order))

    def _start(self) -> None:
        """Build the first index; subclasses call this at the end of ``__init__``."""
        with self._lock:
            self._refresh()

    # -- the strategy's part -------------------------------------------------------------------

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        """Rebuild the strategy's index from the eligible endpoints (called under the lock)."""
        raise NotImplementedError

    def _apply(self, delta: Delta) -> None:
        """Bring the strategy's index up to date with ``delta`` (called under the lock).

        The default rebuilds from the whole eligible list (join order), so a strategy that
        only defines :meth:`_rebuild` keeps working; the built-in ones override this to cost
        O(what changed). ``self._eligible_list`` is already the new list: read it, never keep
        it (the base changes it in place).
        """
        self._rebuild(list(self._eligible_list))

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        """Choose among the eligible endpoints, skipping ``avoid``; raise if none is left."""
        raise NotImplementedError

    def _claim(self, state: EndpointState) -> None:
        """Count a pick of ``state`` made by :meth:`select_override`, not by ``_pick`` (the
        load-aware strategies' in-flight bookkeeping; nothing for the others). Called under the
        lock, with ``state`` eligible."""

    def _on_release(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        """Learn from an outcome (only called when ``_observes_release`` is set)."""

    def _on_cancel(self, state: EndpointState) -> None:
        """Give back a cancelled pick's load without learning anything from it.

        Only called when ``_observes_release`` is set: every strategy that observes releases
        keeps load of its own and overrides this to give it back, and nothing else (no latency
        sample, no probe or reference bookkeeping). Raising here, rather than reusing
        :meth:`_on_release`, keeps a new strategy from learning from cancellations by accident.
        """
        raise NotImplementedError(f"{type(self).__name__} observes releases: define _on_cancel")

    def _check_invariants(self) -> None:
        """Assert the structures agree with each other; the stateful tests call it every step."""
        with self._lock:
            for address, state in self._members.items():
                assert state.endpoint.address == address
                assert not state.retired
                assert state.in_flight() >= 0
            for address, state in self._retired.items():
                assert state.retired and address not in self._members
            assert set(self._members).isdisjoint(self._retired)
            # the delta-kept structures equal what a from-scratch computation gives
            eligible = self._eligible()
            assert [id(s) for s in self._eligible_list] == [id(s) for s in eligible]
            assert self._eligible_by_address == {s.endpoint.address: s for s in eligible}
            up = [state for state in self._members.values() if state.up]
            assert self._up_count == len(up)
            health = self._health
            healthy = [s for s in up if health is None or health.healthy(s)]
            assert self._healthy_count == len(healthy)
            assert {id(s) for s in self._unhealthy.values()} == {id(s) for s in up} - {
                id(s) for s in healthy
            }
            for state in eligible:
                assert state.applied == state.weight
            assert self._hooks == (self._observes or self._health is not None)

    # -- selection ------------------------------------------------------------------------------

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it.

        ``context`` is what the strategy keys on (a hash strategy's key; ignored by others);
        ``avoid`` is a collection of addresses to skip. Raises :class:`NoEndpointAvailable` when
        the pool is empty, every endpoint is down, or every eligible one is avoided.

        Pass ``avoid`` by keyword, as the :class:`Balancer` protocol has it. It is not
        keyword-only here, on purpose: CPython 3.11 fills a keyword-only default with a dict
        lookup on every call (~14 ns, 3 % of a round robin's select + release; issue 15).
        """
        if avoid:
            check_avoid(avoid)
            avoid = self._as_stored(avoid)
        health = self._health  # _catch_up_health, inlined on the hot path
        if health is not None and self._clock() >= health.due:
            health.advance()  # an ejection ended or a slow-start ramp stepped: rebuild first
        clock: Any = self._clock  # LOAD_ATTR, not LOAD_METHOD: 3.11 specialises only the former
        # (Any: compiled, a float result was unboxed and boxed again for the lease)
        started = clock()  # before the pick counts: a clock that raises leaves nothing in flight
        state = self._pick(context, avoid)
        # One test of the build (pure Python, each is ~85 instructions): the branches differ in
        # how they count and build the lease, and must otherwise stay the same.
        if NATIVE:  # counted where this build makes it atomic (balancekit._state)
            token = NATIVE_TOKENS.take()
            state.n_selected += 1
            self._outstanding[token] = state
            if state.retired:  # removed while we picked it: see _select_again
                return self._select_again(state, token, started, context, avoid)
            return Lease(state.endpoint, token, started)  # a native class: one C call
        token = NEXT(TOKENS)
        NEXT(state.selected)
        self._outstanding[token] = state
        if state.retired:  # removed while we picked it: see _select_again
            return self._select_again(state, token, started, context, avoid)
        lease = NEW_LEASE(Lease)  # pure Python: ~40 ns less than calling the class (_core)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = started
        return lease

    def _select_again(
        self,
        state: EndpointState,
        token: int,
        started: float | Any,
        context: Any,
        avoid: Collection[str],
    ) -> Lease:
        """Finish a select whose pick was removed (``remove``/``update``) while it was made.

        Picks read an index without the lock, so one may return an endpoint a concurrent
        ``remove`` has just taken out. ``_retire`` marks the state retired *before* it reads the
        in-flight count, and ``select`` counts the pick before it reads the mark, so either the
        removal saw this lease (the state is kept in ``_retired``: the select happened before the
        removal, the lease is valid and counted) or the state was dropped: then the pick never
        counted anywhere, and it is made again under the lock, where membership cannot change.
        ``started``: the select's clock reading, taken before the pick. Read here, after the
        pick was counted, a clock that raised left an in-flight request no lease could release.
        """
        with self._lock:
            address = state.endpoint.address
            if self._members.get(address) is state or self._retired.get(address) is state:
                return Lease(state.endpoint, token, started)
            del self._outstanding[token]  # the dropped state is garbage: nothing refers to it
            state = self._pick(context, avoid)
            if NATIVE:  # counted where this build makes it atomic (balancekit._state)
                token = NATIVE_TOKENS.take()
                state.n_selected += 1
            else:
                token = NEXT(TOKENS)
                NEXT(state.selected)
            self._outstanding[token] = state
            return Lease(state.endpoint, token, started)

    def _catch_up_health(self) -> None:
        """Let an attached health tracker do what is due (an ejection ends, a ramp steps)."""
        health = self._health
        if health is not None and self._clock() >= health.due:
            health.advance()

    def can_select(self, avoid: Collection[str] = ()) -> bool:
        """Whether ``select(avoid=avoid)`` would find an endpoint now (panic included).

        What :class:`~balancekit.Retry` asks before it spends a budget token and a backoff.
        ``avoid`` is checked as ``select`` checks it (one string is refused, not matched as
        substrings); O(len(avoid)).
        """
        check_avoid(avoid)
        items: Collection[object] = avoid  # not Collection[str]: compiled, mypyc checks each item
        for address in items:  # as str on the way in (a TypeError, not this InvalidOption)
            if not isinstance(address, str):
                raise InvalidOption(f"avoid holds addresses (str), not {describe(address)}")
        avoid = self._as_stored(avoid)
        self._catch_up_health()
        eligible = self._eligible_by_address  # one read: a concurrent rebuild swaps it whole
        if len(avoid) < len(eligible):
            return True  # fewer addresses avoided than eligible: one is left
        return len(eligible) > len({address for address in avoid if address in eligible})

    def select_override(self, address: EndpointLike) -> Lease | None:
        """A lease on ``address`` if a pick could return it now, else ``None``; O(1).

        For sticky sessions: the endpoint a client is pinned to is used while it is a member,
        up and eligible (not ejected or held down by a health check, unless in panic), exactly
        as Envoy's override host is; otherwise the caller falls back to :meth:`select`. The
        lease is counted like any other (in-flight, load-aware scores), so the strategy's view
        of load stays true. Raises :class:`InvalidOption` for something that is not an address.
        """
        key = _address_of(address)
        self._catch_up_health()
        started = self._clock()  # before anything counts (a clock that raises changes nothing)
        with self._lock:  # membership changes take it too: the state stays eligible until claimed
            eligible = self._eligible_by_address
            state = eligible.get(key)
            if state is None:
                state = eligible.get(_canonical(key))  # "A:80" for "a:80": parsed on a miss only
                if state is None:
                    return None
            self._claim(state)
            if NATIVE:  # counted where this build makes it atomic (balancekit._state)
                token = NATIVE_TOKENS.take()
                state.n_selected += 1  # under the lock: a remove cannot drop it between
            else:
                token = NEXT(TOKENS)
                NEXT(state.selected)
            self._outstanding[token] = state
        return Lease(state.endpoint, token, started)

    # ``| Any`` on release's and cancel's parameters: the compiled build (mypyc) checks argument
    # types on entry and would refuse a str or a bool with a TypeError, where the documented
    # answer is InvalidLease / InvalidOption (raised below, as in the pure-Python modules).
    def release(
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """Report how the request on ``lease`` ended.

        ``elapsed`` (seconds) defaults to the clock's reading minus ``lease.started`` (0 if the
        clock went back meanwhile). A lease is
        released exactly once: a second release, or a lease this balancer never issued, raises
        :class:`InvalidLease` and changes nothing. A lease on an endpoint removed since is valid.
        """
        if elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= FLOAT_MAX):
            elapsed = checked_elapsed(elapsed)  # the common case (a finite float) skips the call
        # ``type(...) is Lease`` first: compiled, the token is then a native field read (a
        # lease typed ``Lease | Any`` is a generic attribute lookup), and anything else is
        # refused before it is read (None, a str, a tuple shaped like a lease).
        if type(lease) is not Lease:
            raise _invalid_lease(lease)
        failed = not ok  # first: an ok whose truth raises changes nothing (review7)
        # The compiled build's steps; the pure-Python build binds _release_pure in this
        # method's place at import (see the end of the class), so neither tests the build here.
        try:  # two native dict operations, not a call of dict.pop (~190 instructions less)
            outstanding = self._outstanding
            token = lease._token
            state: EndpointState = outstanding[token]
            endpoint = lease._endpoint
            if state.endpoint is not endpoint and not_its_state(state, endpoint):
                raise KeyError(token)  # another lease's token: refused, nothing changed
            del outstanding[token]  # two releases that both read it: one del fails (KeyError)
        except (TypeError, LookupError, AttributeError):  # not ours
            raise _invalid_lease(lease) from None
        state.n_released += 1  # counted where this build makes it atomic (balancekit._state)
        if failed:
            state.n_failed += 1
        if self._hooks:  # one flag for the strategy's hook and a health tracker (issue 15)
            self._after_release(state, lease, not failed, elapsed)
        elif state.retired:
            self._forget_if_idle(state)

    def _release_pure(
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """:meth:`release` in the pure-Python build, bound in its place at import: the same
        checks and outcome, counted in the tally parts (balancekit._state)
        and popped with one call of ``dict.pop`` (cheaper than a subscript and a ``del`` in
        pure Python, ~15 ns). Keep the two in step (tests/test_release_builds.py)."""
        if elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= FLOAT_MAX):
            elapsed = checked_elapsed(elapsed)
        if type(lease) is not Lease:
            raise _invalid_lease(lease)
        failed = not ok  # first: an ok whose truth raises changes nothing (review7)
        try:  # (states are never None: no default)
            endpoint = lease._endpoint  # (before the pop: a blank lease has none)
            state = DICT_POP(self._outstanding, lease._token)
        except (TypeError, LookupError, AttributeError):  # not ours (or a hand-made lease's
            # unhashable token, or one never initialised: ``object.__new__(Lease)``, no _token)
            raise _invalid_lease(lease) from None
        if state.endpoint is not endpoint and not_its_state(state, endpoint):
            self._outstanding[lease._token] = state  # another lease's token: put back
            raise _invalid_lease(lease)
        NEXT(state.released)
        if failed:
            NEXT(state.failed)
        if self._hooks:
            self._after_release(state, lease, not failed, elapsed)
        elif state.retired:
            self._forget_if_idle(state)

    def _after_release(
        self, state: EndpointState, lease: Lease, ok: bool, elapsed: float | None
    ) -> None:
        """The rest of :meth:`release` when the strategy learns from outcomes or a health
        tracker is attached (``_hooks``): kept out of the common path of the stateless ones."""
        try:
            if self._observes:
                if elapsed is None:  # a clock set back while the request ran: 0, never negative
                    try:
                        elapsed = self._clock() - lease._started
                    except BaseException:  # a clock that raises: the load back, nothing
                        self._on_cancel(state)  # learned (as the strategies' fast paths)
                        raise
                    elapsed = within_float(elapsed)
                self._on_release(state, ok, elapsed)
            if self._health is not None:
                self._health.observe(state, ok)
        finally:  # a removed endpoint is forgotten even if a hook raised
            if state.retired:
                self._forget_if_idle(state)

    def cancel(self, lease: Lease | Any) -> None:
        """Give back a lease whose request has no outcome: the caller gave up on it.

        For a cancellation (``asyncio.CancelledError``, a caller's own timeout,
        ``KeyboardInterrupt``) that ends a request before its answer: the endpoint's in-flight
        count goes down, and nothing else changes. It counts as neither a success nor a failure
        (``stats()`` counts it in ``cancelled``), the strategy takes no latency sample from it,
        and passive health sees no outcome. So a call cancelled after 10 ms never teaches the
        balancer that a 50 ms server is fast, and a client with tight deadlines never ejects a
        server for its own impatience. Like :meth:`release`, a lease is given back exactly once
        (:class:`InvalidLease` for a second time or a foreign lease, changing nothing). O(1),
        plus the strategy's release cost.
        """
        if type(lease) is not Lease:  # not a lease at all (None, a str, ...)
            raise _invalid_lease(lease)
        try:
            endpoint = lease._endpoint  # (before the pop: a blank lease has none)
            state = self._outstanding.pop(lease._token)
        except (TypeError, LookupError, AttributeError):  # not ours (or a hand-made lease's
            # unhashable token, or a pure-Python one never initialised: no _token)
            raise _invalid_lease(lease) from None
        if state.endpoint is not endpoint and not_its_state(state, endpoint):
            self._outstanding[lease._token] = state  # another lease's token: put back
            raise _invalid_lease(lease)
        if NATIVE:  # counted where this build makes it atomic (balancekit._state)
            state.n_released += 1  # before ``cancelled``, as release counts before ``failed``
            state.n_cancelled += 1
        else:
            NEXT(state.released)
            NEXT(state.cancelled)
        if self._observes:
            self._on_cancel(state)
        if state.retired:
            self._forget_if_idle(state)

    def acquire(
        self, context: Any = None, *, avoid: Collection[str] = ()
    ) -> AbstractContextManager[Endpoint]:
        """Select an endpoint for the ``with`` block and release it when the block ends.

        An exception (a subclass of :class:`Exception`) releases with ``ok=False`` and propagates;
        a cancellation or interrupt (``asyncio.CancelledError``, ``KeyboardInterrupt``,
        ``GeneratorExit``: any other :class:`BaseException`) gives the lease back with
        :meth:`cancel`, uncounted, and propagates.
        """
        return acquired(self, context, avoid)  # a generator of an uncompiled module: see there

    # -- membership -----------------------------------------------------------------------------

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every member endpoint, up or down, in the order it joined."""
        return tuple(state.endpoint for state in list(self._members.values()))

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, address: object) -> bool:
        if isinstance(address, Endpoint):
            address = address.address
        members = self._members
        return address in members or (isinstance(address, str) and _canonical(address) in members)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.endpoints)!r})"

    def add(self, endpoint: EndpointLike) -> None:
        """Add an endpoint (a string means weight 1). Raises :class:`DuplicateEndpoint`."""
        endpoint = as_endpoint(endpoint)
        self._refuse_reentry("add")
        with self._lock, holding(self._clock):  # (balancekit._clock)
            if endpoint.address in self._members:
                raise DuplicateEndpoint(f"{describe(endpoint.address)} is already a member")
            self._check_room(len(self._members) + 1)
            self._sync((self._admit(endpoint),))
            self._tally.membership(1, 0)

    def remove(self, address: EndpointLike) -> None:
        """Remove an endpoint; its outstanding leases may still be released."""
        self._refuse_reentry("remove")
        with self._lock, holding(self._clock):  # (balancekit._clock)
            state = self._member(address)
            self._retire(state)
            self._sync((state,))
            self._tally.membership(0, 1)

    def set_weight(self, address: EndpointLike | Any, weight: int | Any) -> None:
        """Change an endpoint's weight, keeping its live state."""
        self._refuse_reentry("set_weight")
        with self._lock, holding(self._clock):  # (balancekit._clock)
            state = self._member(address)
            state.set_endpoint(state.endpoint.with_weight(weight))
            self._sync((state,), reweighted=(state,))

    def update(self, endpoints: Iterable[EndpointLike]) -> None:
        """Replace the whole membership (service discovery).

        Survivors keep their live state and up/down status and take the new weight and metadata;
        missing ones are removed; new ones are added. Validated before anything changes.
        """
        endpoints = check_endpoints(endpoints)
        if not isinstance(endpoints, str | Endpoint):  # (as_endpoints refuses one endpoint)
            endpoints = map(self._known, endpoints)
        wanted = as_endpoints(endpoints)
        self._refuse_reentry("update")
        with self._lock, holding(self._clock):  # (balancekit._clock)
            self._check_room(len(wanted))
            keep = {endpoint.address for endpoint in wanted}
            touched = [state for a, state in self._members.items() if a not in keep]
            leaving = len(touched)
            for gone in touched:
                self._retire(gone)
            joined = 0
            reweighted = []
            for endpoint in wanted:
                survivor = self._members.get(endpoint.address)
                if survivor is None:
                    touched.append(self._admit(endpoint))
                    joined += 1
                elif survivor.endpoint.weight != endpoint.weight:
                    touched.append(survivor)
                    reweighted.append(survivor)
                    survivor.set_endpoint(endpoint)
                else:  # new metadata only: the effective weight (slow start's) stays
                    survivor.endpoint = endpoint
            self._sync(touched, reweighted=reweighted)
            self._tally.membership(joined, leaving)

    def mark_down(self, address: EndpointLike) -> None:
        """Take an endpoint out of rotation (it stays a member; its leases may be released)."""
        self._refuse_reentry("mark_down")
        with self._lock, holding(self._clock):  # (balancekit._clock)
            state = self._member(address)
            state.up = False
            self._sync((state,))

    def mark_up(self, address: EndpointLike) -> None:
        """Put an endpoint marked down back into rotation."""
        self._refuse_reentry("mark_up")
        with self._lock, holding(self._clock):  # (balancekit._clock)
            state = self._member(address)
            state.up = True
            self._sync((state,))

    def _check_room(self, count: int) -> None:
        """Refuse (under the lock, before anything changes) a membership of ``count`` members
        the strategy cannot hold; any size by default (Maglev's table has a size)."""

    def _refuse_reentry(self, method: str) -> None:
        """Refuse a membership change made from inside one of the balancer's own calls, while
        this thread holds its lock: by a ``clock=``, an ``avoid`` collection's ``in`` or a
        health ``on_event`` callback. The lock is reentrant, so the change would run in the
        middle of a pick, release or change whose structures are half-updated: an avoid that
        removed the endpoint it was asked about left LeastResponseTime's and LeastConnections'
        heaps holding it (``_check_invariants`` failed, then ``KeyError`` on every pick). From
        another thread, or from a lock-free pick (round robin's clock), a change is an ordinary
        concurrent one and goes ahead."""
        if getattr(self._lock, "_is_owned", _not_owned)():
            raise InvalidOption(
                f"{type(self).__name__}.{method}() was called from inside one of the balancer's"
                " own calls (a clock=, an avoid collection or an on_event callback): membership"
                " cannot change in the middle of a pick, release or change; change it after"
                " that call returns"
            )

    def stats(self) -> dict[str, EndpointStats]:
        """A snapshot of every member's live state, keyed by address."""
        with self._lock:
            return {address: self._stats_of(state) for address, state in self._members.items()}

    def _stats_of(self, state: EndpointState) -> EndpointStats:
        """One endpoint's counters as they were at one instant (:meth:`EndpointState.counts`)."""
        selected, released, failed, cancelled = state.counts()
        return EndpointStats(
            address=state.endpoint.address,
            weight=state.endpoint.weight,
            up=state.up,
            in_flight=selected - released,
            selected=selected,
            succeeded=released - failed - cancelled,
            failed=failed,
            latency=state.latency,
            ejected=state.ejected,
            checked_down=state.health is not None and state.health.check_down,
            cancelled=cancelled,
        )

    # -- internals ------------------------------------------------------------------------------

    def _member(self, address: EndpointLike) -> EndpointState:
        key = _address_of(address)
        members = self._members
        state = members.get(key)
        if state is None:
            state = members.get(_canonical(key))  # "A:80" for "a:80": parsed on a miss only
            if state is None:
                raise UnknownEndpoint(
                    f"{describe(key)} is not a member of this {type(self).__name__}"
                )
        return state

    def _as_stored(self, avoid: Collection[str]) -> Collection[str]:
        """``avoid`` with its addresses as members are stored: unchanged in the common case
        (every item a member's address, e.g. taken from leases), else canonicalised
        (``{"A:80"}`` avoids ``a:80``); O(len(avoid))."""
        members = self._members
        items: Collection[Any] = avoid  # any item: one that is no address matches nothing (a
        for address in items:  # Collection[str] loop compiles to a str check of each item)
            if type(address) is str and address not in members:
                return frozenset(_canonical(a) if type(a) is str else a for a in items)
        return avoid

    def _known(self, item: EndpointLike) -> EndpointLike:
        """``item``, or the member's own :class:`Endpoint` when ``item`` is exactly its address
        and parsing it would give an equal endpoint (weight 1, no metadata): ``update`` of a
        10,000-address list of strings parsed each one again (~30 us each, ~0.3 s)."""
        if type(item) is str:
            state = self._members.get(item)
            if state is not None:
                endpoint = state.endpoint
                if endpoint.weight == 1 and not endpoint.metadata:
                    return endpoint
        return item

    def _admit(self, endpoint: EndpointLike) -> EndpointState:
        endpoint = as_endpoint(endpoint)
        state = self._retired.pop(endpoint.address, None)
        if state is None:
            state = EndpointState(endpoint, next(self._order))
            state.seq = state.order
        else:  # re-added while its old leases are still out: one state, one in-flight count
            state.retired = False
            state.up = True
            state.health = None  # a new member starts healthy, leases out or not
            state.set_endpoint(endpoint)
            state.seq = next(self._order)  # the end of the join order, as the members dict
        self._members[endpoint.address] = state
        return state

    def _retire(self, state: EndpointState) -> None:
        """Take ``state`` out of membership; keep it in ``_retired`` while leases are out.

        The mark comes first, then the in-flight read: a release that counts after the read
        sees the mark and forgets the state (under the lock, after this), and a select that
        counts after it sees the mark and picks again (:meth:`_select_again`). The mark stays
        on a dropped state, so a pick still holding it from an old index never uses it.
        """
        del self._members[state.endpoint.address]
        state.retired = True
        if state.in_flight() > 0:
            self._retired[state.endpoint.address] = state
        else:
            self._tally.absorb(state)

    def _forget_if_idle(self, state: EndpointState) -> None:
        with self._lock:
            address = state.endpoint.address
            if state.retired and state.in_flight() == 0 and self._retired.get(address) is state:
                del self._retired[address]
                self._tally.absorb(state)

    def _eligible(self) -> list[EndpointState]:
        """The endpoints a pick may return, in the order they joined."""
        up = [state for state in self._members.values() if state.up]
        return up if self._health is None else self._health.eligible(up)

    def _sync(
        self,
        touched: Iterable[EndpointState],
        full: bool = False,
        reweighted: Collection[EndpointState] = (),
    ) -> None:
        """Apply a change to the endpoints ``touched`` (under the lock): the base's eligible
        structures and counts in O(touched), then the strategy's :meth:`_apply`.

        ``reweighted``: members whose configured weight changed. Those not eligible (down,
        ejected) are not in the eligible delta, so they are reported in ``moved``: a strategy
        that keeps state for members out of rotation (Maglev's table over the members that are
        up, NGINX's carried ``current_weight``) learns that their weight changed."""
        delta = sync(self, touched, full)
        if reweighted:
            seen = {id(state) for state in delta.moved}
            idle = [
                state
                for state in reweighted
                if state.applied is None and state.cls >= 0 and id(state) not in seen
            ]
            if idle:
                delta = delta._replace(moved=[*delta.moved, *idle])
        if full or not delta.empty:
            started = time.perf_counter()  # rebuild time for metrics (not the injected clock)
            self._apply(delta)
            self._tally.rebuilt(time.perf_counter() - started)
        health = self._health
        if health is not None:  # the change is whole: its events can be seen
            health.deliver()

    def _refresh(self) -> None:
        """Re-examine every member (the first build, a tracker attached); O(n)."""
        self._hooks = self._observes or self._health is not None
        self._sync([*self._members.values(), *self._eligible_list], full=True)

    def _nothing_available(self, avoid: Collection[str] = ()) -> NoEndpointAvailable:
        """The exception to raise when a pick finds nothing, saying why."""
        members = list(self._members.values())
        if not members:
            return NoEndpointAvailable(
                f"{type(self).__name__} has no endpoints: add some, or update() from discovery"
            )
        up = [state for state in members if state.up]
        if not up:
            return NoEndpointAvailable(f"all {len(members)} endpoints are marked down")
        if self._health is not None:
            up = self._health.eligible(up)
            if not up:
                return NoEndpointAvailable(
                    "every endpoint that is up is ejected or failing health checks"
                    " (set a panic_threshold to fail open instead)"
                )
        # The avoided endpoints, not all of avoid: it may hold entries that match nothing,
        # which need not sort (str and int) and may be any number.
        avoided = sorted(state.endpoint.address for state in up if state.endpoint.address in avoid)
        shown = ", ".join(avoided[:5]) + (f", ... ({len(avoided)})" if len(avoided) > 5 else "")
        return NoEndpointAvailable(f"every endpoint that is up ({len(up)}) is avoided: {shown}")


def _not_owned() -> bool:
    """For a lock without ``_is_owned`` (another lock type): reentry cannot be told."""
    return False


def bind_pure(cls: type, name: str, pure: Callable[..., Any]) -> None:
    """Pure Python: make ``pure`` the method ``name`` of ``cls``, under that method's name and
    docstring (``help()``, ``inspect.getdoc``, tracebacks and IDEs show the public method, as in
    the compiled build; review7). Called once at import, and only in the pure-Python build."""
    public = getattr(cls, name)
    pure.__name__ = public.__name__
    pure.__qualname__ = public.__qualname__
    pure.__doc__ = public.__doc__
    setattr(cls, name, pure)


# The pure-Python build tests the build once, here, instead of on every release (a test costs
# ~85 of a round robin's ~6,500 instructions per select + release; issue 15). Compiled (mypyc),
# the class is native and its ``release`` is the compiled steps: nothing is rebound.
if not NATIVE:
    bind_pure(BalancerBase, "release", BalancerBase._release_pure)
