"""The simulator engine: determinism, conservation, the queueing model, failures, bursts."""

from __future__ import annotations

import re
from collections import Counter

import pytest

import balancekit as bk
from balancekit import sim
from balancekit._core import Clock
from balancekit.sim.engine import client_addresses

SMALL = 3000


@pytest.fixture(scope="module")
def degrade() -> sim.Scenario:
    return sim.SCENARIOS["degrade"](SMALL)


def test_same_seed_same_result(degrade: sim.Scenario) -> None:
    for name in sim.available():
        first = sim.run(degrade, sim.factory(name, 7), seed=7, name=name)
        again = sim.run(degrade, sim.factory(name, 7), seed=7, name=name)
        assert first == again, name


def test_another_seed_another_stream(degrade: sim.Scenario) -> None:
    one = sim.run(degrade, sim.factory("RoundRobin"), seed=1)
    two = sim.run(degrade, sim.factory("RoundRobin"), seed=2)
    assert one.arrival_digest != two.arrival_digest
    assert one.p99 != two.p99


def test_every_strategy_sees_the_same_arrivals(degrade: sim.Scenario) -> None:
    digests = {
        name: sim.run(degrade, sim.factory(name, 3), seed=3, name=name).arrival_digest
        for name in sim.available()
    }
    assert len(digests) >= 5
    assert len(set(digests.values())) == 1, digests


def test_every_request_completes_once_and_in_flight_returns_to_zero(
    degrade: sim.Scenario,
) -> None:
    built: list[bk.Balancer] = []
    for name in sim.available():
        make = sim.factory(name, 5)

        def keep(
            endpoints: list[bk.Endpoint], clock: Clock, make: sim.BalancerFactory = make
        ) -> bk.Balancer:
            balancer = make(endpoints, clock)
            built.append(balancer)
            return balancer

        result = sim.run(degrade, keep, seed=5, name=name)
        assert result.completed == result.requests == SMALL
        assert result.rejected == 0
        assert sum(server.requests for server in result.servers) == SMALL
        assert sum(server.before + server.after for server in result.servers) == SMALL
        assert all(server.final_in_flight == 0 for server in result.servers)
        stats = built[-1].stats()
        assert sum(s.selected for s in stats.values()) == SMALL
        assert sum(s.succeeded + s.failed for s in stats.values()) == SMALL
        assert all(s.in_flight == 0 for s in stats.values()), name
        for server in result.servers:
            assert stats[server.address].selected == server.requests
        check = getattr(built[-1], "_check_invariants", None)
        if check is not None:
            check()


def test_degraded_server_gets_less_from_load_aware_strategies() -> None:
    scenario = sim.SCENARIOS["degrade"](8000)
    (watched,) = scenario.watched

    def share_after(name: str) -> float:
        result = sim.run(scenario, sim.factory(name), seed=11, name=name)
        after = sum(server.after for server in result.servers)
        return result.server(watched).after / after

    round_robin = share_after("RoundRobin")
    assert round_robin == pytest.approx(0.10, abs=0.01)  # blind rotation: one in ten
    assert share_after("LeastConnections") < round_robin / 2
    assert share_after("LeastResponseTime") < round_robin / 2


def test_recovered_server_wins_its_share_back() -> None:
    scenario = sim.SCENARIOS["recover"](30_000)  # ~10 s: the last phase lasts ~4 s
    (watched,) = scenario.watched
    assert len(scenario.boundaries) == 2
    for name in ("LeastConnections", "LeastResponseTime"):
        result = sim.run(scenario, sim.factory(name), seed=2, name=name)
        totals = [sum(column) for column in zip(*(s.phases for s in result.servers), strict=True)]
        healthy, slow, recovered = (
            count / total
            for count, total in zip(result.server(watched).phases, totals, strict=True)
        )
        assert slow < healthy / 3, name
        assert recovered > healthy * 2 / 3, name
        assert sum(totals) == result.completed


def _one_server(service: float, rate: float, capacity: int = 1) -> sim.Scenario:
    return sim.Scenario(
        name="mm1",
        description="one server",
        servers=(sim.ServerSpec("10.0.0.1:80", service=service, capacity=capacity),),
        rate=rate,
        requests=40_000,
        clients=1,
    )


def test_single_server_matches_queueing_theory() -> None:
    # M/M/1 at utilisation 0.5: mean time in system 1 / (mu - lambda) = 2 * service.
    result = sim.run(_one_server(0.010, 50.0), sim.factory("RoundRobin"), seed=4)
    assert result.mean == pytest.approx(0.020, rel=0.1)
    # M/M/infinity (no queueing): the mean is the service time itself.
    wide = sim.run(_one_server(0.010, 50.0, capacity=1000), sim.factory("RoundRobin"), seed=4)
    assert wide.mean == pytest.approx(0.010, rel=0.05)
    assert wide.servers[0].peak_in_flight < 1000


def test_flaky_server_fails_only_after_its_change() -> None:
    scenario = sim.SCENARIOS["flaky"](4000)
    result = sim.run(scenario, sim.factory("RoundRobin"), seed=2)
    (watched,) = scenario.watched
    bad = result.server(watched)
    assert result.failed == bad.failed == result.errors
    assert 0.4 * bad.after < bad.failed < 0.6 * bad.after
    assert all(server.failed == 0 for server in result.servers if server.address != watched)


def test_burst_multiplies_the_arrival_rate() -> None:
    scenario = sim.SCENARIOS["burst"](20_000)
    (burst,) = scenario.bursts
    start = burst.at * scenario.window
    end = start + burst.length * scenario.window
    times = [arrival[0] for arrival in sim.arrivals(scenario, 9)]
    inside = sum(start <= t < end for t in times)
    before = sum(t < start for t in times)
    assert inside / (end - start) == pytest.approx(1.5 * before / start, rel=0.1)


def test_clients_follow_zipf_popularity() -> None:
    scenario = sim.SCENARIOS["degrade"](20_000)
    counts = Counter(arrival[1] for arrival in sim.arrivals(scenario, 1))
    first, second, tenth = client_addresses(10)[0], client_addresses(10)[1], client_addresses(10)[9]
    # P(k) ~ 1 / k**0.9: client 1 about 1.87x client 2 and 7.9x client 10
    assert counts[first] > counts[second] > counts[tenth]
    assert counts[first] / counts[tenth] == pytest.approx(10**0.9, rel=0.3)
    assert len(counts) > 2000


def test_a_balancer_returning_a_stranger_is_reported() -> None:
    scenario = sim.SCENARIOS["steady"](100)

    def stranger(endpoints: list[bk.Endpoint], clock: Clock) -> bk.Balancer:
        return bk.RoundRobin(["192.0.2.1:80"], clock=clock)

    with pytest.raises(sim.SimulationError, match=re.escape("192.0.2.1:80")):
        sim.run(scenario, stranger)


def test_unplaceable_requests_count_as_rejected() -> None:
    scenario = sim.SCENARIOS["steady"](200)

    def all_down(endpoints: list[bk.Endpoint], clock: Clock) -> bk.Balancer:
        balancer = bk.RoundRobin(endpoints, clock=clock)
        for endpoint in endpoints:
            balancer.mark_down(endpoint.address)
        return balancer

    result = sim.run(scenario, all_down)
    assert result.rejected == result.errors == 200
    assert result.completed == 0


def test_balancers_see_simulated_time() -> None:
    scenario = sim.SCENARIOS["steady"](500)
    seen: list[float] = []

    def spy(endpoints: list[bk.Endpoint], clock: Clock) -> bk.Balancer:
        def reading() -> float:
            seen.append(clock())
            return seen[-1]

        return bk.LeastResponseTime(endpoints, clock=reading)

    result = sim.run(scenario, spy)
    assert seen == sorted(seen)  # simulated time never goes back
    # the run ends within a second of simulated time after the last arrival (it was
    # ``< window * 2``, 0.32 s, which the slowest of 500 exponential service times can pass)
    assert 0 < seen[-1] <= result.end_time < scenario.window + 1.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: sim.ServerSpec("10.0.0.1:80", service=0, capacity=1),
        lambda: sim.ServerSpec("10.0.0.1:80", service=0.01, capacity=0),
        lambda: sim.ServerSpec("10.0.0.1:80", service=0.01, capacity=1, failure=1.5),
        lambda: sim.ServerChange(1.2, "10.0.0.1:80"),
        lambda: sim.Burst(0.1, 0.1, -1),
        lambda: sim.Scenario("x", "x", (), rate=1, requests=1),
        lambda: sim.Scenario(
            "x", "x", (sim.ServerSpec("10.0.0.1:80", 0.01, 1),), rate=1, requests=0
        ),
        lambda: sim.Scenario(
            "x",
            "x",
            (sim.ServerSpec("10.0.0.1:80", 0.01, 1),),
            rate=1,
            requests=1,
            changes=(sim.ServerChange(0.5, "10.0.0.2:80"),),
        ),
        lambda: sim.factory("NoSuchStrategy"),
    ],
)
def test_bad_input_is_refused(build: object) -> None:
    assert callable(build)
    with pytest.raises(bk.InvalidOption):
        build()


def test_bad_address_is_refused() -> None:
    with pytest.raises(bk.InvalidEndpoint):
        sim.ServerSpec("not an address", service=0.01, capacity=1)
