"""LeastConnections and LeastResponseTime under threads (issue 15): every count exact.

Their pure-Python select and release count in the state's ``n_*`` ints under the balancer's lock
(balancekit._state: exact only because every ``+= 1`` on them runs under that lock), and the
general path (``avoid``, ``select_override``, ``cancel``) counts in the ``itertools.count``
parts; compiled, both count natively. Many threads select, hold and release out of order (ok,
failed, with and without ``elapsed``) and cancel, while one changes membership (down/up,
weights, remove and add back): every lease counts once, in the endpoint's stats or, for an
endpoint removed and dropped, in the balancer's tally; in flight is back to 0 and equals each
strategy's own load; and a reader racing the workers never sees a negative or inconsistent
count.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import balancekit as bk
from balancekit.strategies import least_conn, least_time

STRATEGIES = ["LeastConnections", "LeastResponseTime"]


def _endpoints(n: int) -> list[bk.Endpoint]:
    return [bk.Endpoint(f"10.4.{i // 256}.{i % 256}:80", weight=1 + i % 3) for i in range(n)]


@pytest.mark.usefixtures("switch_often")
@pytest.mark.parametrize("name", STRATEGIES)
def test_counts_exact_under_threads_with_churn(name: str) -> None:
    endpoints = _endpoints(12)
    lb = getattr(bk, name)(endpoints)
    threads, rounds = 6, 1500
    start = threading.Barrier(threads + 2)
    done = threading.Event()
    errors: list[BaseException] = []
    outcomes = [[0, 0, 0, 0] for _ in range(threads)]  # selected, ok, failed, cancelled

    def worker(n: int) -> None:
        held: list[bk.Lease] = []
        try:
            start.wait(timeout=30)
            for i in range(rounds):
                if i % 11 == 5:  # the general path: counted in the itertools.count parts
                    held.append(lb.select(avoid={endpoints[i % 12].address}))
                elif i % 13 == 7:
                    lease = lb.select_override(endpoints[(i + n) % 12])
                    if lease is not None:
                        held.append(lease)
                        outcomes[n][0] += 1
                    held.append(lb.select())
                else:
                    held.append(lb.select())
                outcomes[n][0] += 1
                while len(held) > i % 4:  # up to 3 held: released out of order
                    lease = held.pop(i % len(held))
                    if i % 17 == 3:
                        lb.cancel(lease)
                        outcomes[n][3] += 1
                    else:
                        ok = i % 5 != 0
                        lb.release(lease, ok=ok, elapsed=None if i % 3 == 0 else 0.001 * (i % 7))
                        outcomes[n][1 if ok else 2] += 1
            for lease in held:
                lb.release(lease, ok=True, elapsed=0.001)
                outcomes[n][1] += 1
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def churn() -> None:
        try:
            start.wait(timeout=30)
            i = 0
            while not done.is_set():
                victim = endpoints[i % 6]
                lb.mark_down(victim.address)
                lb.mark_up(victim.address)
                lb.set_weight(victim.address, 1 + i % 4)
                if i % 3 == 0:  # removed with leases out (retired), or dropped; back at once
                    lb.remove(victim.address)
                    lb.add(victim)
                i += 1
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def reader() -> None:  # stats() racing the workers: one instant's counts, never negative
        try:
            while not done.is_set():
                for s in lb.stats().values():
                    assert s.in_flight >= 0 and s.succeeded >= 0
                    assert s.selected == s.succeeded + s.failed + s.cancelled + s.in_flight
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    extra = [threading.Thread(target=churn)]
    watcher = threading.Thread(target=reader)
    for thread in [*pool, *extra, watcher]:
        thread.start()
    start.wait(timeout=30)
    for thread in pool:
        thread.join(timeout=600)
    done.set()
    for thread in [*extra, watcher]:
        thread.join(timeout=60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in [*pool, *extra, watcher])
    stats = lb.stats().values()
    gone = lb._tally
    assert all(s.in_flight == 0 for s in stats)
    selected, ok, failed, cancelled = (sum(o[k] for o in outcomes) for k in range(4))
    assert sum(s.selected for s in stats) + gone.gone_selected == selected
    assert (
        sum(s.succeeded for s in stats)
        + (gone.gone_released - gone.gone_failed - gone.gone_cancelled)
        == ok
    )
    assert sum(s.failed for s in stats) + gone.gone_failed == failed
    assert sum(s.cancelled for s in stats) + gone.gone_cancelled == cancelled
    assert not lb._retired  # every removed endpoint with leases out was forgotten when idle
    for state in lb._members.values():  # the strategy's own load agrees with the counts
        assert state.load == state.in_flight() == 0
    lb._check_invariants()


@pytest.mark.skipif(bk.compiled, reason="compiled, the module's _next is a C static")
@pytest.mark.parametrize("module", [least_conn, least_time], ids=STRATEGIES)
def test_remove_after_the_locked_count_keeps_the_lease(
    module: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pure select picks and counts under the lock, then takes a token: a remove there (as
    # another thread's) finds the lease counted, so the state is kept retired and the lease
    # stays valid (BalancerBase._select_again); its release forgets the state, counted once.
    name = STRATEGIES[[least_conn, least_time].index(module)]  # type: ignore[arg-type]
    lb = getattr(bk, name)(["a:80", "b:80", "c:80"])
    removed: list[str] = []

    def remove_then_next(counter: Iterator[int]) -> int:
        if not removed:
            state = max(lb._members.values(), key=lambda s: s.in_flight())  # the one picked
            removed.append(state.endpoint.address)
            lb.remove(state.endpoint.address)
        return next(counter)

    monkeypatch.setattr(module, "_next", remove_then_next)
    lease = lb.select()
    assert removed == [lease.address] and lease.address not in lb
    assert [s.in_flight() for s in lb._retired.values()] == [1]
    lb.release(lease, ok=True, elapsed=0.001)
    assert not lb._retired and lb._tally.gone_selected == 1
    assert all(s.in_flight == 0 and s.selected == 0 for s in lb.stats().values())
    lb._check_invariants()
