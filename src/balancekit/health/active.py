"""Active health checks: probe endpoints off the selection path, with rise/fall thresholds.

An :class:`ActiveChecker` probes every member of a balancer on an interval with jitter, counts
consecutive passes and failures per endpoint, and after ``fall`` failures in a row takes the
endpoint out of rotation, after ``rise`` passes in a row puts it back. Its verdicts go to the
same :class:`~balancekit.health.HealthTracker` as passive health, so panic mode counts them too
(a balancer without a tracker gets one with passive detection off), and an endpoint whose
verdict goes from down back to up has any passive ejection ended early. Probes:

- :class:`TcpCheck`: a TCP connect within ``timeout``;
- :class:`HttpCheck`: ``GET path`` over HTTP/1.1, passing when the status is in ``expected``.

``timeout`` bounds a whole probe, sync or async: connect, send and every read share one
deadline, and an HTTP probe reads at most 64 KiB of headers and 1 KiB of body (see
:mod:`balancekit.health._wire`), so a server that drips bytes or promises a huge body fails or
passes within ``timeout``, never holding up a round or the checker's memory.

Run it as a daemon thread (:meth:`ActiveChecker.start` / :meth:`~ActiveChecker.stop`, or
``with checker.running():``), as an asyncio task (``task = checker.start_task()``; probes of one
round run concurrently), or drive it yourself with :meth:`~ActiveChecker.check_once`.

Defaults follow Envoy's health checking (``interval``, ``interval_jitter_percent``,
``healthy_threshold``, ``unhealthy_threshold``) and HAProxy's ``inter``/``rise``/``fall``
(2 s, rise 2, fall 3). Endpoints start healthy: a new checker never empties a working pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from .._core import BalancerBase
from .._endpoint import Endpoint, split_address
from .._errors import InvalidOption
from .._options import describe, integer, number, seconds
from ._wire import ResponseReader, connect, left
from .passive import PassiveHealth
from .tracker import HealthTracker, health_of, with_health

__all__ = ["ActiveChecker", "Check", "HttpCheck", "TcpCheck"]


_log = logging.getLogger("balancekit.health")


class Check(Protocol):
    """A probe: ``check(endpoint)`` and ``await acheck(endpoint)`` return (passed, detail)."""

    def check(self, endpoint: Endpoint) -> tuple[bool, str]: ...
    async def acheck(self, endpoint: Endpoint) -> tuple[bool, str]: ...


#: The longest ``timeout`` or ``interval`` accepted (one day): finite, and far below
#: ``threading.TIMEOUT_MAX``, past which a wait raises OverflowError instead of waiting.
LONGEST_WAIT = 86_400.0


class TcpCheck:
    """Pass when a TCP connection to the endpoint opens within ``timeout`` seconds."""

    def __init__(self, *, timeout: float = 1.0) -> None:
        self.timeout = seconds("timeout", timeout, high=LONGEST_WAIT)

    def check(self, endpoint: Endpoint) -> tuple[bool, str]:
        host, port = split_address(endpoint.address)
        try:
            connect(host, port, time.monotonic() + self.timeout).close()
            return True, "connected"
        except OSError as error:
            return False, f"connect failed: {error}"

    async def acheck(self, endpoint: Endpoint) -> tuple[bool, str]:
        host, port = split_address(endpoint.address)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
        except (TimeoutError, OSError) as error:
            return False, f"connect failed: {describe(error)}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True, "connected"


def _header_safe(value: object) -> bool:
    """A non-empty str of visible ASCII characters (no space, no control character)."""
    return isinstance(value, str) and bool(value) and all("!" <= c <= "~" for c in value)


class HttpCheck:
    """Pass when ``GET path`` answers with a status in ``expected`` within ``timeout`` seconds.

    ``host`` is the Host header (default: the endpoint's address).
    """

    def __init__(
        self,
        *,
        path: str = "/health",
        expected: tuple[int, ...] = (200,),
        timeout: float = 1.0,
        host: str | None = None,
    ) -> None:
        if not _header_safe(path) or not path.startswith("/"):
            raise InvalidOption(
                f"path must be an absolute URL path like '/health' (ASCII, no spaces or control"
                f" characters; percent-encode others), not {describe(path)}"
            )
        if host is not None and not _header_safe(host):
            raise InvalidOption(
                f"host must be a Host header value (ASCII, no spaces or control characters),"
                f" not {describe(host)}"
            )
        if (
            not isinstance(expected, tuple)
            or not expected
            or not all(isinstance(s, int) and 100 <= s <= 599 for s in expected)
        ):
            raise InvalidOption(
                f"expected must be a tuple of HTTP status codes, not {describe(expected)}"
            )
        self.path = path
        self.expected = expected
        self.timeout = seconds("timeout", timeout, high=LONGEST_WAIT)
        self.host = host

    def _verdict(self, status: int) -> tuple[bool, str]:
        passed = status in self.expected
        return passed, f"HTTP {status}" + ("" if passed else f", expected {self.expected}")

    def _request(self, endpoint: Endpoint) -> bytes:
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host or endpoint.address}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("ascii")  # path and host were checked to be visible ASCII

    def check(self, endpoint: Endpoint) -> tuple[bool, str]:
        """Probe once; at most ``timeout`` seconds in all (after name resolution)."""
        host, port = split_address(endpoint.address)
        deadline = time.monotonic() + self.timeout
        response = ResponseReader()
        try:
            with connect(host, port, deadline) as sock:
                sock.settimeout(left(deadline))
                sock.sendall(self._request(endpoint))  # the timeout bounds the whole send
                while not response.done:
                    sock.settimeout(left(deadline))
                    response.feed(sock.recv(4096))
            return self._verdict(response.status)
        except (OSError, ValueError) as error:  # TimeoutError is an OSError
            return False, f"request failed: {describe(error)}"

    async def acheck(self, endpoint: Endpoint) -> tuple[bool, str]:
        """Probe once without blocking the loop; at most ``timeout`` seconds in all."""
        try:
            return await asyncio.wait_for(self._aget(endpoint), self.timeout)
        except (TimeoutError, OSError, ValueError) as error:
            return False, f"request failed: {describe(error)}"

    async def _aget(self, endpoint: Endpoint) -> tuple[bool, str]:
        host, port = split_address(endpoint.address)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(self._request(endpoint))
            await writer.drain()
            response = ResponseReader()
            while not response.done:
                response.feed(await reader.read(4096))
            return self._verdict(response.status)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _verdict_of(result: object) -> tuple[bool, str]:
    """A check's ``(passed, detail)``, or a failed probe saying what it returned instead.

    Unpacking anything else (``True``, ``None``, a 3-tuple) raised out of the round and ended
    the checker's thread or task, leaving the endpoints it held down out for good.
    """
    if (
        type(result) is tuple
        and len(result) == 2
        and isinstance(result[0], bool)
        and isinstance(result[1], str)
    ):
        return result
    return False, f"check returned {type(result).__name__}, not (passed: bool, detail: str)"


class ActiveChecker:
    """Probes a balancer's endpoints and feeds rise/fall verdicts to its health tracker.

    Options (keyword-only, validated at once): ``check`` (default :class:`TcpCheck`),
    ``interval`` seconds between rounds (default 2.0), ``jitter`` the fraction by which each
    wait varies either way (default 0.1), ``rise`` and ``fall`` consecutive results to change
    state (defaults 2 and 3), ``rng`` a :class:`random.Random` for the jitter.

    Cost: one probe per member per round, off the selection path; a verdict change rebuilds the
    balancer's index once. Thread-safe: the checker only calls the tracker, which locks.
    """

    def __init__(
        self,
        balancer: BalancerBase,
        *,
        check: Check | None = None,
        interval: float = 2.0,
        jitter: float = 0.1,
        rise: int = 2,
        fall: int = 3,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(balancer, BalancerBase):
            raise InvalidOption(
                f"ActiveChecker needs a balancekit balancer, not {describe(balancer)}"
            )
        if check is None:
            check = TcpCheck()
        elif not callable(getattr(check, "check", None)) or not callable(
            getattr(check, "acheck", None)
        ):
            raise InvalidOption(
                f"check must have check() and acheck() methods, not {describe(check)}"
            )
        interval = seconds("interval", interval, high=LONGEST_WAIT)
        jitter = number("jitter", jitter, high=1, low_open=False)
        rise, fall = integer("rise", rise, 1, 1000), integer("fall", fall, 1, 1000)
        if rng is not None and not isinstance(rng, random.Random):
            raise InvalidOption(f"rng must be a random.Random, not {describe(rng)}")
        tracker = health_of(balancer)
        if tracker is None:
            with_health(balancer, PassiveHealth(consecutive_failures=None, failure_rate=None))
            tracker = health_of(balancer)
        assert tracker is not None
        self.tracker: HealthTracker = tracker
        self._balancer = balancer
        self._check = check
        self.interval = float(interval)
        self.jitter = float(jitter)
        self.rise = rise
        self.fall = fall
        self._rng = random.Random() if rng is None else rng
        self._streaks: dict[str, int] = {}  # > 0: passes in a row; < 0: failures in a row
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    # -- one round ------------------------------------------------------------------------------

    def check_once(self) -> dict[str, bool]:
        """Probe every member once (sequentially); apply rise/fall. Returns each probe's result."""
        results = {}
        for endpoint in self._balancer.endpoints:
            passed, detail = self._probe(endpoint)
            self._record(endpoint.address, passed, detail)
            results[endpoint.address] = passed
        self._finish_round()
        return results

    async def acheck_once(self) -> dict[str, bool]:
        """Probe every member once, concurrently; apply rise/fall. Returns each probe's result."""
        endpoints = self._balancer.endpoints
        verdicts = await asyncio.gather(*(self._aprobe(e) for e in endpoints))
        for endpoint, (passed, detail) in zip(endpoints, verdicts, strict=True):
            self._record(endpoint.address, passed, detail)
        self._finish_round()
        return {e.address: passed for e, (passed, _) in zip(endpoints, verdicts, strict=True)}

    def _probe(self, endpoint: Endpoint) -> tuple[bool, str]:
        """One probe; a check that raises counts as a failed probe (the checker keeps going)."""
        try:
            return _verdict_of(self._check.check(endpoint))
        except Exception as error:
            return False, f"check raised {describe(error)}"

    async def _aprobe(self, endpoint: Endpoint) -> tuple[bool, str]:
        try:
            return _verdict_of(await self._check.acheck(endpoint))
        except Exception as error:
            return False, f"check raised {describe(error)}"

    def _record(self, address: str, passed: bool, detail: str) -> None:
        streak = self._streaks.get(address, 0)
        streak = max(streak, 0) + 1 if passed else min(streak, 0) - 1
        self._streaks[address] = streak
        # The tracker holds the verdict (set_check ignores a repeat), so an endpoint removed and
        # re-added between rounds starts up, as the tracker's fresh record says.
        if streak >= self.rise:
            self.tracker.set_check(address, True)
        elif -streak >= self.fall:
            self.tracker.set_check(address, False, detail)

    def _finish_round(self) -> None:
        members = {endpoint.address for endpoint in self._balancer.endpoints}
        for address in [a for a in self._streaks if a not in members]:  # removed since
            del self._streaks[address]
        self.rounds += 1

    def down(self) -> set[str]:
        """The addresses the checks hold out of rotation now."""
        return set(self.tracker.checked_down())

    def next_delay(self) -> float:
        """The wait before the next round: ``interval``, varied by up to ``jitter`` either way."""
        return self.interval * (1.0 + self._rng.uniform(-self.jitter, self.jitter))

    # -- as a thread ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run rounds in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            raise InvalidOption("this checker is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="balancekit-health", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._round_survived(self.check_once)
            self._stop.wait(self.next_delay())

    def _round_survived(self, round_: Callable[[], object]) -> None:
        """Run one round; an exception from it (a probe's own failures are already verdicts) is
        logged and the checker goes on, so nothing can leave endpoints held down for good."""
        try:
            round_()
        except Exception:
            _log.exception("balancekit health check round failed; the next round runs as usual")

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread (after its current round) and wait for it, at most ``timeout`` seconds
        (None: until the round ends, which each probe's own timeout bounds)."""
        if timeout is not None:
            timeout = seconds("timeout", timeout, zero=True, high=LONGEST_WAIT)
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)

    @contextlib.contextmanager
    def running(self) -> Iterator[ActiveChecker]:
        """``with checker.running():`` the checker runs in a thread for the block."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # -- as an asyncio task ---------------------------------------------------------------------

    async def run(self) -> None:
        """Run rounds forever in the current event loop (cancel the task to stop)."""
        while True:
            try:
                await self.acheck_once()
            except Exception:  # as _round_survived: logged, and the next round runs
                _log.exception("balancekit health check round failed; the next round runs as usual")
            await asyncio.sleep(self.next_delay())

    def start_task(self) -> asyncio.Task[None]:
        """Start :meth:`run` as a task of the running loop; cancel it to stop."""
        return asyncio.get_running_loop().create_task(self.run(), name="balancekit-health")
