"""Retry: distinct endpoints per call, attempts, budget, backoff with jitter, sync and async."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk

POOL = [f"10.0.0.{i}:80" for i in range(1, 6)]


def no_sleep(seconds: float) -> None:
    pass


class Failing:
    """fn(endpoint) that fails on the given addresses and records every attempt."""

    def __init__(self, bad: set[str], error: type[Exception] = ConnectionError) -> None:
        self.bad = bad
        self.error = error
        self.tried: list[str] = []

    def __call__(self, endpoint: bk.Endpoint) -> str:
        self.tried.append(endpoint.address)
        if endpoint.address in self.bad:
            raise self.error(endpoint.address)
        return endpoint.address


def test_first_success_is_one_attempt() -> None:
    lb = bk.RoundRobin(POOL)
    fn = Failing(set())
    assert bk.Retry(sleep=no_sleep).call(lb, fn) == POOL[0]
    assert fn.tried == [POOL[0]]


def test_a_failure_is_retried_on_another_endpoint_and_counted() -> None:
    lb = bk.RoundRobin(POOL)
    fn = Failing({POOL[0], POOL[1]})
    assert bk.Retry(attempts=3, sleep=no_sleep).call(lb, fn) == POOL[2]
    assert fn.tried == POOL[:3]
    stats = lb.stats()
    assert (stats[POOL[0]].failed, stats[POOL[1]].failed, stats[POOL[2]].succeeded) == (1, 1, 1)
    assert all(s.in_flight == 0 for s in stats.values())


@pytest.mark.parametrize("strategy", [bk.RoundRobin, bk.LeastConnections, bk.IPHash])
def test_never_the_same_endpoint_twice_in_one_call(strategy: type[bk.BalancerBase]) -> None:
    lb = strategy(POOL[:3])
    fn = Failing(set(POOL))
    with pytest.raises(ConnectionError):
        bk.Retry(attempts=10, sleep=no_sleep).call(lb, fn, "some-key")
    assert sorted(fn.tried) == POOL[:3]  # every endpoint once, then no one left to try


def _tokens_and_backoffs_spent(lb: bk.Balancer) -> tuple[int, int]:
    """Retry tokens taken and backoffs slept by a call of 5 attempts that all fail."""
    slept: list[float] = []
    budget = bk.RetryBudget(burst=5)
    with pytest.raises(ConnectionError):
        bk.Retry(attempts=5, budget=budget, sleep=slept.append).call(lb, Failing(set(POOL)))
    return budget.retries, len(slept)


def test_no_token_or_backoff_is_spent_when_every_endpoint_was_tried() -> None:
    lb = bk.RoundRobin(POOL[:2])
    assert _tokens_and_backoffs_spent(lb) == (1, 1)


def test_no_token_or_backoff_is_spent_when_the_rest_are_down_or_held_out() -> None:
    lb = bk.with_health(bk.RoundRobin(POOL[:4]), bk.PassiveHealth(consecutive_failures=None))
    tracker = bk.health_of(lb)
    assert tracker is not None
    lb.mark_down(POOL[2])
    tracker.set_check(POOL[3], False, "refused")  # members, but none of them selectable
    assert _tokens_and_backoffs_spent(lb) == (1, 1)


def test_no_retry_starts_past_the_timeout() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def slow_failure(endpoint: bk.Endpoint) -> str:
        now[0] += 0.4  # each attempt takes 0.4 s and fails
        raise ConnectionError(endpoint.address)

    budget = bk.RetryBudget(burst=10)
    retry = bk.Retry(
        attempts=10, backoff=0.1, timeout=1.0, budget=budget, sleep=sleep, clock=lambda: now[0]
    )
    lb = bk.RoundRobin(POOL)
    with pytest.raises(ConnectionError):
        retry.call(lb, slow_failure)
    # attempts at 0 and ~0.4-0.5 s; a third would start at ~0.8-1.0 s + its backoff: only if
    # that ends by 1.0 s. Never more than 1.0 s of waiting and trying before the last start.
    attempts = sum(s.selected for s in lb.stats().values())
    assert 2 <= attempts <= 3
    assert budget.retries == attempts - 1 == len(slept)
    assert now[0] - 0.4 <= 1.0  # the last attempt started within the timeout


def test_retries_go_on_in_panic_where_the_balancer_still_picks() -> None:
    lb = bk.with_health(
        bk.RoundRobin(["a:1", "b:1", "c:1"], clock=lambda: 0.0),
        bk.PassiveHealth(consecutive_failures=1, max_ejection_share=1.0, panic_threshold=0.5),
    )
    lb.release(lb.select(avoid={"b:1", "c:1"}), ok=False)  # eject a
    lb.release(lb.select(avoid={"a:1", "c:1"}), ok=False)  # eject b: 1 of 3 healthy, panic
    tracker = bk.health_of(lb)
    assert tracker is not None and tracker.panic
    fn = Failing({"c:1"})
    retry = bk.Retry(attempts=3, budget=None, sleep=no_sleep)
    results = [retry.call(lb, fn) for _ in range(3)]  # round robin: one call starts on c
    assert "c:1" in fn.tried
    assert set(results) <= {"a:1", "b:1"}  # c's failure was retried where panic still picks


@pytest.mark.parametrize("name", ["sleep", "async_sleep", "clock"])
def test_functions_are_required_where_they_are_called(name: str) -> None:
    with pytest.raises(bk.InvalidOption, match=f"{name} must be a function"):
        bk.Retry(**{name: None})  # type: ignore[arg-type]


def test_one_string_as_avoid_is_refused_by_the_flow() -> None:
    with pytest.raises(bk.InvalidOption, match="collection of addresses"):
        next(bk.Retry(sleep=no_sleep).flow(bk.RoundRobin(POOL), avoid=POOL[0]))


def test_timeout_is_validated() -> None:
    for bad in (0, -1, float("inf"), "1", True):
        with pytest.raises(bk.InvalidOption, match="timeout"):
            bk.Retry(timeout=bad)  # type: ignore[arg-type]


def test_attempts_bound_the_call_and_the_last_error_propagates() -> None:
    lb = bk.RoundRobin(POOL)
    fn = Failing(set(POOL))
    with pytest.raises(ConnectionError, match=POOL[1]):
        bk.Retry(attempts=2, sleep=no_sleep).call(lb, fn)
    assert len(fn.tried) == 2


def test_errors_outside_retry_on_are_not_retried_but_count_as_failures() -> None:
    lb = bk.RoundRobin(POOL)
    fn = Failing({POOL[0]}, error=ValueError)
    with pytest.raises(ValueError):
        bk.Retry(retry_on=(ConnectionError,), sleep=no_sleep).call(lb, fn)
    assert fn.tried == [POOL[0]]
    assert lb.stats()[POOL[0]].failed == 1 and lb.stats()[POOL[0]].in_flight == 0


def test_cancellation_releases_without_a_failure() -> None:
    lb = bk.RoundRobin(POOL)

    def interrupted(endpoint: bk.Endpoint) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bk.Retry(sleep=no_sleep).call(lb, interrupted)
    stats = lb.stats()[POOL[0]]  # neither a success nor a failure (issue 10, item 9)
    assert (stats.failed, stats.succeeded, stats.cancelled, stats.in_flight) == (0, 0, 1, 0)


def test_retry_result_retries_and_discards_replaced_results() -> None:
    lb = bk.RoundRobin(POOL)
    discarded: list[int] = []
    codes = iter([503, 502, 200])
    retry = bk.Retry(attempts=3, retry_result=lambda code: code >= 500, sleep=no_sleep)
    assert retry.call(lb, lambda ep: next(codes), discard=discarded.append) == 200
    assert discarded == [503, 502]
    codes = iter([503, 503])
    retry = bk.Retry(attempts=2, retry_result=lambda code: code >= 500, sleep=no_sleep)
    assert retry.call(lb, lambda ep: next(codes), discard=discarded.append) == 503  # the last one
    assert discarded == [503, 502, 503]


def test_no_endpoint_at_all_raises_no_endpoint_available() -> None:
    with pytest.raises(bk.NoEndpointAvailable):
        bk.Retry(sleep=no_sleep).call(bk.RoundRobin([]), lambda ep: 1)


def test_backoff_is_jittered_below_an_exponential_cap_and_reproducible() -> None:
    def delays(seed: int) -> list[float]:
        slept: list[float] = []
        retry = bk.Retry(
            attempts=5,
            backoff=0.1,
            max_backoff=0.3,
            budget=None,
            rng=random.Random(seed),
            sleep=slept.append,
        )
        with pytest.raises(ConnectionError):
            retry.call(bk.RoundRobin(POOL), Failing(set(POOL)))
        return slept

    slept = delays(7)
    assert len(slept) == 4
    for n, delay in enumerate(slept, start=1):
        assert 0 <= delay <= min(0.3, 0.1 * 2 ** (n - 1))
    assert slept == delays(7) and slept != delays(8)


def test_total_outage_retries_add_at_most_the_budget() -> None:
    """Under a total outage retries stop after the burst: extra load <= burst, well under ratio."""
    budget = bk.RetryBudget(ratio=0.1, burst=10)
    retry = bk.Retry(attempts=3, budget=budget, sleep=no_sleep)
    lb = bk.RoundRobin(POOL)
    fn = Failing(set(POOL))
    calls = 1000
    for _ in range(calls):
        with pytest.raises(ConnectionError):
            retry.call(lb, fn)
    extra = len(fn.tried) - calls
    assert extra == budget.retries == 10
    assert extra <= budget.ratio * calls
    assert budget.denied == calls - 5  # the first 5 calls retried twice each


def test_partial_outage_retries_stay_within_the_share_of_successes() -> None:
    budget = bk.RetryBudget(ratio=0.1, burst=5)
    retry = bk.Retry(attempts=3, budget=budget, sleep=no_sleep)
    lb = bk.RoundRobin(POOL)
    fn = Failing({POOL[0], POOL[1]})  # two of five endpoints down: 40 % of first tries fail
    for _ in range(2000):
        with contextlib.suppress(ConnectionError):
            retry.call(lb, fn)
    assert budget.retries <= budget.burst + budget.ratio * budget.successes
    assert budget.retries == len(fn.tried) - 2000
    assert budget.denied > 0  # the budget, not the attempts, was the binding limit


def test_flow_closed_early_releases_its_lease() -> None:
    lb = bk.RoundRobin(POOL)
    flow = bk.Retry().flow(lb)
    lease = next(flow)
    assert isinstance(lease, bk.Lease)
    flow.close()
    assert lb.stats()[lease.address].in_flight == 0


def test_flow_protocol_by_hand() -> None:
    lb = bk.RoundRobin(POOL)
    flow = bk.Retry(backoff=0, budget=None).flow(lb, avoid={POOL[0]})
    first = next(flow)
    assert isinstance(first, bk.Lease) and first.address == POOL[1]
    assert flow.send(bk.Outcome.FAILED) == 0.0
    second = next(flow)
    assert isinstance(second, bk.Lease) and second.address == POOL[2]
    with pytest.raises(StopIteration):
        flow.send(bk.Outcome.SUCCEEDED)
    assert lb.stats()[POOL[1]].failed == 1 and lb.stats()[POOL[2]].succeeded == 1


def test_acall_is_the_same_policy_driven_by_asyncio() -> None:
    lb = bk.RoundRobin(POOL)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def send(endpoint: bk.Endpoint) -> str:
        if endpoint.address == POOL[0]:
            raise ConnectionError
        return endpoint.address

    retry = bk.Retry(async_sleep=fake_sleep, rng=random.Random(1))
    assert asyncio.run(retry.acall(lb, send)) == POOL[1]
    assert len(slept) == 1 and 0 <= slept[0] <= 0.025
    assert lb.stats()[POOL[0]].failed == 1


@pytest.mark.parametrize(
    "options",
    [
        {"attempts": 0},
        {"attempts": True},
        {"backoff": -1},
        {"max_backoff": float("inf")},
        {"multiplier": 0.5},
        {"retry_on": ConnectionError},
        {"budget": 3},
        {"rng": 3},
        {"sleep": 3},
    ],
)
def test_invalid_options_are_refused_at_once(options: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        bk.Retry(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [{"ratio": -0.1}, {"burst": 0.5}, {"burst": float("nan")}])
def test_invalid_budgets_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(bk.InvalidOption):
        bk.RetryBudget(**options)


@settings(max_examples=60, deadline=None)
@given(
    ratio=st.sampled_from([0.0, 0.1, 0.5]),
    burst=st.integers(1, 5),
    outcomes=st.lists(st.booleans(), max_size=300),
)
def test_budget_bound_holds_for_any_sequence(
    ratio: float, burst: int, outcomes: list[bool]
) -> None:
    """retries <= burst + ratio * successes, whatever the order of outcomes."""
    budget = bk.RetryBudget(ratio=ratio, burst=burst)
    retry = bk.Retry(attempts=4, budget=budget, sleep=no_sleep)
    lb = bk.RoundRobin(POOL)
    fate = iter(outcomes)

    def fn(endpoint: bk.Endpoint) -> str:
        if next(fate, True):
            return endpoint.address
        raise ConnectionError

    for _ in range(len(outcomes)):
        with contextlib.suppress(ConnectionError):
            retry.call(lb, fn)
    assert budget.retries <= burst + ratio * budget.successes + 1e-9
    assert all(s.in_flight == 0 for s in lb.stats().values())


# -- issue 10, items 9 and 10: cancellation is uncounted; a raising hook never leaks a lease ------


def _counts(lb: bk.Balancer, address: str) -> tuple[int, int, int, int]:
    stats = lb.stats()[address]
    return stats.succeeded, stats.failed, stats.cancelled, stats.in_flight


def test_acall_cancelled_in_flight_is_uncounted() -> None:
    lb = bk.LeastResponseTime(POOL)

    async def cancelled(endpoint: bk.Endpoint) -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(bk.Retry().acall(lb, cancelled))
    assert _counts(lb, POOL[0]) == (0, 0, 1, 0)
    assert lb.stats()[POOL[0]].latency is None


@pytest.mark.parametrize("driver", ["call", "acall"])
def test_an_interrupted_backoff_leaks_no_lease_and_discards_the_held_result(driver: str) -> None:
    lb = bk.RoundRobin(POOL)
    discarded: list[int] = []

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    async def cancelled(seconds: float) -> None:
        raise asyncio.CancelledError

    retry = bk.Retry(
        retry_result=lambda code: code >= 500, sleep=interrupted, async_sleep=cancelled
    )
    if driver == "call":
        with pytest.raises(KeyboardInterrupt):
            retry.call(lb, lambda endpoint: 503, discard=discarded.append)
    else:

        async def send(endpoint: bk.Endpoint) -> int:
            return 503

        with pytest.raises(asyncio.CancelledError):
            asyncio.run(retry.acall(lb, send, discard=discarded.append))
    assert discarded == [503]  # the caller never gets it: handed to discard (closed)
    assert _counts(lb, POOL[0]) == (0, 1, 0, 0)  # the rejected attempt, a failure
    assert sum(s.selected for s in lb.stats().values()) == 1  # no lease taken for the retry


@pytest.mark.parametrize("driver", ["call", "acall"])
def test_a_raising_retry_result_releases_its_lease_once_as_a_failure(driver: str) -> None:
    lb = bk.LeastResponseTime(POOL)
    discarded: list[str] = []

    def broken(result: str) -> bool:
        raise ValueError("a bug in the predicate")

    retry = bk.Retry(retry_result=broken, sleep=no_sleep)
    with pytest.raises(ValueError, match="a bug"):
        if driver == "call":
            retry.call(lb, lambda endpoint: "answer", discard=discarded.append)
        else:

            async def send(endpoint: bk.Endpoint) -> str:
                return "answer"

            asyncio.run(retry.acall(lb, send, discard=discarded.append))
    assert _counts(lb, POOL[0]) == (0, 1, 0, 0)  # released once, as a failure: no leak
    assert sum(s.selected for s in lb.stats().values()) == 1
    assert discarded == ["answer"]


def test_a_raising_discard_gives_the_unused_lease_back_uncounted() -> None:
    lb = bk.RoundRobin(POOL)
    tried: list[str] = []

    def send(endpoint: bk.Endpoint) -> int:
        tried.append(endpoint.address)
        return 503

    def broken(result: int) -> None:
        raise OSError("could not close")

    retry = bk.Retry(retry_result=lambda code: code >= 500, sleep=no_sleep)
    with pytest.raises(OSError, match="could not close"):
        retry.call(lb, send, discard=broken)
    assert tried == [POOL[0]]
    assert _counts(lb, POOL[0]) == (0, 1, 0, 0)  # the rejected attempt
    assert _counts(lb, POOL[1]) == (0, 0, 1, 0)  # taken for the retry, never used: uncounted
    assert all(s.in_flight == 0 for s in lb.stats().values())


@pytest.mark.parametrize("how", ["close", "throw", "next", "garbage"])
def test_a_flow_left_without_an_outcome_gives_its_lease_back_uncounted(how: str) -> None:
    lb = bk.LeastResponseTime(POOL)
    flow = bk.Retry().flow(lb)
    lease = next(flow)
    assert isinstance(lease, bk.Lease)
    if how == "close":
        flow.close()
    elif how == "throw":
        with pytest.raises(RuntimeError):
            flow.throw(RuntimeError("the driver broke"))
    elif how == "next":
        with pytest.raises(StopIteration):
            next(flow)
    else:
        with pytest.raises(bk.InvalidOption, match="takes an Outcome"):
            flow.send(True)  # type: ignore[arg-type]
    assert _counts(lb, lease.address) == (0, 0, 1, 0)


def test_an_acall_closed_mid_attempt_gives_its_lease_back_uncounted() -> None:
    lb = bk.LeastResponseTime(POOL)

    class Pending:
        def __await__(self):  # type: ignore[no-untyped-def]
            yield  # suspends the coroutine once

    async def send(endpoint: bk.Endpoint) -> str:
        await Pending()
        return endpoint.address

    call = bk.Retry().acall(lb, send)
    call.send(None)  # in flight, awaiting
    call.close()  # GeneratorExit at the await: nobody will see the outcome
    assert _counts(lb, POOL[0]) == (0, 0, 1, 0)
