"""Keep a balancer's membership current from a discovery source, in a thread or an asyncio task.

>>> import balancekit as bk
>>> from balancekit.discovery import Static, Watcher
>>> lb = bk.RoundRobin()
>>> with Watcher(lb, Static(["10.0.0.1:80", "10.0.0.2:80"])):
...     [e.address for e in lb.endpoints]
['10.0.0.1:80', '10.0.0.2:80']

The first answer is applied before ``start()`` returns (an error there is raised, so a
misconfigured name fails at startup). After that the watcher asks the source again when the
answer's ``ttl`` has passed (clamped to ``[min_interval, max_interval]``) and calls
``balancer.update(endpoints)``. When the source fails, or answers no endpoints at all, the
balancer keeps the endpoints it has (a DNS blip must not empty a pool) and the watcher asks again
after ``error_interval``, doubling up to ``max_interval``; ``allow_empty=True`` applies empty
answers instead. ``update`` keeps the in-flight counts and latency estimates of endpoints that
stay, so refreshing never disturbs accounting.

A watcher survives everything user code does to it: a source that raises or answers nonsense (a
non-number or NaN ``ttl``, endpoints ``update`` refuses) is a failed refresh, and an ``on_error``
hook that raises is logged on the ``balancekit.discovery`` logger; the watcher goes on either way.
Every interval and timeout is validated as a finite number of seconds (at most a day), so no wait
can block forever or overflow the platform's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .._core import Balancer
from .._errors import InvalidOption
from .._options import seconds
from ._source import LONGEST_WAIT, AsyncSource, DiscoveryError, Snapshot, Source, describe

__all__ = ["AsyncWatcher", "Watcher"]

#: Called with each exception a refresh raised (the default does nothing; log it there).
ErrorHook = Callable[[BaseException], object]

_log = logging.getLogger("balancekit.discovery")


#: Addresses a membership-change log line names, of those added and of those removed.
LOGGED_ADDRESSES = 5


def _some(addresses: set[str]) -> str:
    shown = sorted(addresses)[:LOGGED_ADDRESSES]
    more = len(addresses) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def _log_change(source: object, before: set[str], after: set[str]) -> None:
    """One INFO line when an applied answer changed the membership (none when it did not).

    Bounded whatever the answer's size: counts, and at most :data:`LOGGED_ADDRESSES` addresses
    of each side. O(n log n) for the sort, as ``update`` itself.
    """
    added, removed = after - before, before - after
    if added or removed:
        _log.info(
            "balancekit discovery: %s changed the membership: +%d -%d, %d endpoints now%s%s",
            describe(source),
            len(added),
            len(removed),
            len(after),
            f"; added {_some(added)}" if added else "",
            f"; removed {_some(removed)}" if removed else "",
        )


class _Policy:
    """The options, refresh schedule and bookkeeping both watchers share (sans-io)."""

    def __init__(
        self,
        balancer: Balancer,
        source: Source,
        *,
        min_interval: float = 1.0,
        max_interval: float = 300.0,
        error_interval: float = 1.0,
        allow_empty: bool = False,
        on_error: ErrorHook | None = None,
    ) -> None:
        if not isinstance(balancer, Balancer):
            raise InvalidOption(f"expected a balancekit balancer, not {describe(balancer)}")
        if not callable(getattr(source, "resolve", None)):
            raise InvalidOption(f"source must have a resolve() method, not {describe(source)}")
        min_interval = seconds("min_interval", min_interval, high=LONGEST_WAIT)
        max_interval = seconds("max_interval", max_interval, high=LONGEST_WAIT)
        error_interval = seconds("error_interval", error_interval, high=LONGEST_WAIT)
        if max_interval < min_interval:
            raise InvalidOption(f"max_interval {max_interval} is below min_interval {min_interval}")
        if on_error is not None and not callable(on_error):
            raise InvalidOption(
                f"on_error must be a function of the exception, not {describe(on_error)}"
            )
        self.balancer = balancer
        self.source = source
        self.min_interval = float(min_interval)
        self.max_interval = float(max_interval)
        self.error_interval = float(error_interval)
        self.allow_empty = bool(allow_empty)
        self.on_error = on_error
        #: Seconds until the next refresh (``inf`` for a source that never changes).
        self.interval = self.min_interval
        self.refreshes = 0  #: answers applied so far
        self.errors = 0  #: failed refreshes in a row
        self.last_error: BaseException | None = None
        self.snapshot: Snapshot | None = None  #: the last answer applied
        # Held by Watcher's thread to apply an answer and by stop() to set the stop event.
        self._applying = threading.RLock()  # re-entrant: a hook inside update may call stop()

    def apply(self, snapshot: Snapshot) -> None:
        """Hand a snapshot to the balancer and schedule the next refresh from its ttl.

        Raises :class:`DiscoveryError` (and changes nothing) for an answer that is not a
        :class:`Snapshot` with a ``ttl`` >= 0 (``inf``: never ask again), or that has no
        endpoints unless ``allow_empty``; ``update`` refuses bad endpoints likewise.
        """
        ttl = getattr(snapshot, "ttl", None)
        if (
            not isinstance(snapshot, tuple)
            or isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or not ttl >= 0  # NaN too
        ):
            raise DiscoveryError(
                f"{describe(self.source)} answered {type(snapshot).__name__}, not a Snapshot"
                " with a ttl >= 0; keeping the current endpoints"
            )
        if not snapshot.endpoints and not self.allow_empty:
            raise DiscoveryError(
                f"{describe(self.source)} answered no endpoints; keeping the current ones"
                " (pass allow_empty=True to apply empty answers)"
            )
        before = {endpoint.address for endpoint in self.balancer.endpoints}
        self.balancer.update(snapshot.endpoints)
        _log_change(self.source, before, {e.address for e in self.balancer.endpoints})
        self.snapshot = snapshot
        self.refreshes += 1
        self.errors = 0
        self.last_error = None
        self.interval = (
            math.inf if ttl == math.inf else min(max(ttl, self.min_interval), self.max_interval)
        )

    def failed(self, error: BaseException) -> None:
        """Record a failed refresh and back off."""
        self.errors += 1
        self.last_error = error
        self.interval = min(
            self.error_interval * 2.0 ** min(self.errors - 1, 60), self.max_interval
        )
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:  # a hook must never stop the refreshes
                _log.exception(
                    "balancekit discovery: on_error hook of %s raised on %r",
                    describe(self.source),
                    error,
                )


class Watcher(_Policy):
    """Refreshes ``balancer`` from ``source`` in a daemon thread (see the module docs).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Options (keyword-only):
    ``min_interval`` (default 1 s: the floor under a DNS TTL of 0), ``max_interval`` (300 s),
    ``error_interval`` (1 s, doubling), ``allow_empty`` (False), ``on_error`` (a function of
    the exception). Each refresh costs one ``resolve`` and one ``update`` (O(n log n)).
    """

    _thread: threading.Thread | None = None  # the refresh thread, while running
    _stop: threading.Event  # set by stop(); a new one for each start()

    def __init__(
        self,
        balancer: Balancer,
        source: Source,
        *,
        min_interval: float = 1.0,
        max_interval: float = 300.0,
        error_interval: float = 1.0,
        allow_empty: bool = False,
        on_error: ErrorHook | None = None,
    ) -> None:  # its own signature, so a misspelt option names this class, not _Policy
        super().__init__(
            balancer,
            source,
            min_interval=min_interval,
            max_interval=max_interval,
            error_interval=error_interval,
            allow_empty=allow_empty,
            on_error=on_error,
        )

    def refresh(self) -> Snapshot:
        """Resolve and apply once, now, in the calling thread (raises on failure)."""
        snapshot = self.source.resolve()
        self.apply(snapshot)
        return snapshot

    def start(self) -> Watcher:
        """Apply the first answer (raising its error), then refresh in a daemon thread."""
        if self._thread is not None:
            raise InvalidOption("this watcher is already running")
        self.refresh()
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(stop,),
            name=f"balancekit-discovery-{describe(self.source)}",
            daemon=True,
        )
        self._thread.start()
        return self

    def _run(self, stop: threading.Event) -> None:
        """Refresh until ``stop`` (this run's own event: a restart makes a new one) is set.

        An answer that arrives after ``stop()`` (a source blocked in ``resolve`` outlives
        ``stop``'s timeout) is dropped: once ``stop()`` returns the membership is the caller's.
        """
        while not stop.wait(None if self.interval == math.inf else self.interval):
            try:
                snapshot = self.source.resolve()
                with self._applying:
                    if stop.is_set():
                        return
                    self.apply(snapshot)
            except Exception as error:  # keep the membership; back off
                self.failed(error)

    def is_alive(self) -> bool:
        """Whether the refresh thread is running (started and not stopped)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop refreshing and wait up to ``timeout`` seconds for the thread (one resolve).

        Once it returns the watcher changes the balancer no more: an answer from a ``resolve``
        still blocked is dropped, and a ``start()`` later runs a new thread of its own."""
        timeout = seconds("timeout", timeout, zero=True, high=LONGEST_WAIT)
        thread, self._thread = self._thread, None
        if thread is not None:
            with self._applying:  # an update in progress ends first; none starts after
                self._stop.set()
            thread.join(timeout)

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


class AsyncWatcher(_Policy):
    """Refreshes ``balancer`` from ``source`` in an asyncio task; the options of :class:`Watcher`.

    The source's ``resolve_async`` is awaited when it has one, else ``resolve`` runs in a
    thread (:func:`asyncio.to_thread`). Use ``async with``, or ``await start()`` and
    ``await stop()``.
    """

    _task: asyncio.Task[None] | None = None  # the refresh task, while running

    def __init__(
        self,
        balancer: Balancer,
        source: Source,
        *,
        min_interval: float = 1.0,
        max_interval: float = 300.0,
        error_interval: float = 1.0,
        allow_empty: bool = False,
        on_error: ErrorHook | None = None,
    ) -> None:  # its own signature, so a misspelt option names this class, not _Policy
        super().__init__(
            balancer,
            source,
            min_interval=min_interval,
            max_interval=max_interval,
            error_interval=error_interval,
            allow_empty=allow_empty,
            on_error=on_error,
        )

    async def refresh(self) -> Snapshot:
        """Resolve and apply once, now (raises on failure)."""
        if isinstance(self.source, AsyncSource):
            snapshot = await self.source.resolve_async()
        else:
            snapshot = await asyncio.to_thread(self.source.resolve)
        self.apply(snapshot)
        return snapshot

    async def start(self) -> AsyncWatcher:
        """Apply the first answer (raising its error), then refresh in a task."""
        if self._task is not None:
            raise InvalidOption("this watcher is already running")
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def is_alive(self) -> bool:
        """Whether the refresh task is running (started, not stopped, not finished)."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while self.interval != math.inf:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception as error:
                self.failed(error)

    async def stop(self) -> None:
        """Cancel the refresh task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> AsyncWatcher:
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()
