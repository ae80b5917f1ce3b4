"""Known traffic for the metrics tests: every count it produces is worked out by hand."""

from __future__ import annotations

import random

import balancekit as bk

A, B, C, D = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"
POOL = (A, B, C, D)
SEED = 7


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def only(lb: bk.BalancerBase, address: str) -> bk.Lease:
    """A lease on ``address`` (every other member avoided)."""
    return lb.select(avoid=set(POOL) - {address})


def expected_delay() -> float:
    """The one backoff the policy below hands out: its seeded jitter for the first retry."""
    return random.Random(SEED).uniform(0.0, 0.5)


def known_traffic() -> tuple[bk.BalancerBase, bk.Retry, Clock]:
    """A, B, C, D in round robin with passive health, and a retry policy; the counts:

    1. Two Retry calls (attempts=2, a budget of one token that no success refills): the
       first fails once then succeeds on its retry; the second fails and its retry is denied.
       -> 3 picks, 1 succeeded, 2 failed; attempts: original 2, retry 1; 1 budget denial.
    2. One success on each endpoint (resets every failure streak) -> 7 picks, 5 succeeded.
    3. B fails twice: ejected (consecutive_failures=2) -> 9 picks, 4 failed.
    4. C fails twice: the ejection is refused, one of four may be out (max share 0.25)
       -> 11 picks, 6 failed, one unenforced ejection (consecutive_failures).
    5. A lease on A is kept out, another cancelled -> 13 picks, 1 in flight, 1 cancelled.
    6. A success on D, then D is removed: its counts stay in the totals -> 14 picks,
       6 succeeded; 3 endpoints, 2 healthy (A, C), 1 ejected (B); 1 membership update.
    """
    clock = Clock()
    lb = bk.with_health(
        bk.RoundRobin(list(POOL), clock=clock),
        bk.PassiveHealth(consecutive_failures=2, failure_rate=None, max_ejection_share=0.25),
    )
    retry = bk.Retry(
        attempts=2,
        budget=bk.RetryBudget(ratio=0.0, burst=1.0),
        backoff=0.5,
        max_backoff=0.5,
        rng=random.Random(SEED),
        sleep=lambda seconds: None,
    )
    sent: list[str] = []

    def flaky(endpoint: bk.Endpoint) -> str:
        sent.append(endpoint.address)
        if len(sent) == 1:
            raise ConnectionError("refused")
        return "ok"

    def down(endpoint: bk.Endpoint) -> str:
        raise ConnectionError("refused")

    assert retry.call(lb, flaky) == "ok"
    try:
        retry.call(lb, down)
    except ConnectionError:
        pass
    else:  # pragma: no cover - the budget is empty
        raise AssertionError("the second call should have failed")
    for address in POOL:
        lb.release(only(lb, address))
    for address in (B, C):
        for _ in range(2):
            lb.release(only(lb, address), ok=False)
    only(lb, A)  # kept in flight
    lb.cancel(only(lb, A))
    lb.release(only(lb, D))
    lb.remove(D)
    return lb, retry, clock


#: What the traffic above leaves, by (metric name, extra labels).
EXPECTED: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {
    ("balancekit.lb.picks", ()): 14,
    ("balancekit.lb.requests", (("outcome", "succeeded"),)): 6,
    ("balancekit.lb.requests", (("outcome", "failed"),)): 6,
    ("balancekit.lb.requests", (("outcome", "cancelled"),)): 1,
    ("balancekit.lb.in_flight", ()): 1,
    ("balancekit.lb.endpoints", ()): 3,
    ("balancekit.lb.endpoints.healthy", ()): 2,
    ("balancekit.lb.endpoints.ejected", ()): 1,
    ("balancekit.lb.endpoints.checked_down", ()): 0,
    ("balancekit.lb.endpoints.down", ()): 0,
    ("balancekit.lb.membership.updates", ()): 1,
    ("balancekit.lb.membership.endpoint_changes", (("change", "added"),)): 0,
    ("balancekit.lb.membership.endpoint_changes", (("change", "removed"),)): 1,
    # construction, with_health, B's ejection, D's removal (a refused ejection rebuilds nothing)
    ("balancekit.lb.rebuilds", ()): 4,
    ("balancekit.lb.panic", ()): 0,
    ("balancekit.lb.panic.engaged", ()): 0,
    (
        "balancekit.lb.outlier_detection.ejections_enforced",
        (("detection_method", "consecutive_failures"),),
    ): 1,
    (
        "balancekit.lb.outlier_detection.ejections_enforced",
        (("detection_method", "failure_rate"),),
    ): 0,
    (
        "balancekit.lb.outlier_detection.ejections_unenforced",
        (
            ("detection_method", "consecutive_failures"),
            ("unenforced_reason", "max_ejection_overflow"),
        ),
    ): 1,
    ("balancekit.lb.outlier_detection.returns", ()): 0,
    ("balancekit.client.attempts", (("attempt_type", "original"),)): 2,
    ("balancekit.client.attempts", (("attempt_type", "retry"),)): 1,
    ("balancekit.client.attempts", (("attempt_type", "transparent_retry"),)): 0,
    ("balancekit.client.retry.budget_denied", ()): 1,
    ("balancekit.client.retry.budget_tokens", ()): 0,
}
