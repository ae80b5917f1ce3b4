"""balancekit.grpc against real grpcio servers in their own processes (loopback, port 0).

The servers (``_grpc_server.py``) register a bytes-in, bytes-out echo service with grpc's generic
handlers and answer with their id, so every test sees which endpoint served each call.
"""

from __future__ import annotations

import gc
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest

import balancekit as bk
from balancekit.integrations.grpc import AsyncBalancedChannel, BalancedChannel, NoEndpointError

from ._grpc_fixture import Start
from .conftest import wait_until

UNARY = "/test.Echo/Unary"
STREAM = "/test.Echo/Stream"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _in_flight(lb: bk.Balancer) -> int:
    return sum(stats.in_flight for stats in lb.stats().values())


def test_round_robin_and_weights_are_exact_per_call(grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    lb = bk.RoundRobin([s.address for s in servers])
    with BalancedChannel(lb) as channel:
        call = channel.unary_unary(UNARY)
        served = Counter(call(b"{}").decode() for _ in range(30))
    assert served == {"s0": 10, "s1": 10, "s2": 10}
    weighted = bk.WeightedRoundRobin(
        [bk.Endpoint(servers[0].address, weight=3), servers[1].address, servers[2].address]
    )
    with BalancedChannel(weighted) as channel:
        call = channel.unary_unary(UNARY)
        served = Counter(call(b"{}").decode() for _ in range(50))
    assert served == {"s0": 30, "s1": 10, "s2": 10}


def test_least_connections_spreads_concurrent_calls(grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    lb = bk.LeastConnections([s.address for s in servers])
    futures: list[grpc.Future] = []
    with BalancedChannel(lb) as channel:
        call = channel.unary_unary(UNARY)
        # six slow calls at once: least connections puts two on each server
        futures = [call.future(b'{"sleep": 0.3}') for _ in range(6)]
        served = Counter(f.result(timeout=10).decode() for f in futures)
    assert served == {"s0": 2, "s1": 2, "s2": 2}
    assert _in_flight(lb) == 0


def test_hashing_keys_on_metadata(grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    lb = bk.Rendezvous([s.address for s in servers], key=bk.keys.header("x-user"))
    with BalancedChannel(lb) as channel:
        call = channel.unary_unary(UNARY)
        for user in ("ann", "bob", "cy", "dee"):
            served = {call(b"{}", metadata=(("x-user", user),)) for _ in range(5)}
            assert len(served) == 1, (user, served)


def test_orca_trailers_weigh_load_report_round_robin(grpc_servers: Start) -> None:
    # s0 reports 300 qps at 50 % cpu (weight 600), s1 100 qps at 50 % (weight 200)
    servers = grpc_servers(2, orca={0: "0.5,300", 1: "0.5,100"})
    clock = FakeClock()
    lb = bk.LoadReportWeightedRoundRobin(
        [s.address for s in servers], blackout_period=0, clock=clock
    )
    with BalancedChannel(lb) as channel:
        call = channel.unary_unary(UNARY)
        for _ in range(4):  # both report (round robin until weights exist)
            call(b"{}")
        clock.now += 1.0  # the next weight update
        assert lb.weight_at(servers[0].address) == pytest.approx(600.0)
        served = Counter(call(b"{}").decode() for _ in range(80))
    assert served == {"s0": 60, "s1": 20}


def test_application_errors_are_successes_transport_errors_failures(grpc_servers: Start) -> None:
    [server] = grpc_servers(1)
    lb = bk.RoundRobin([server.address])
    with BalancedChannel(lb, retry=None) as channel:
        call = channel.unary_unary(UNARY)
        with pytest.raises(grpc.RpcError) as error:
            call(b'{"code": "NOT_FOUND"}')
        assert error.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as error:
            call(b'{"code": "INTERNAL"}')
        assert error.value.code() is grpc.StatusCode.INTERNAL
        with pytest.raises(grpc.RpcError) as error:
            call(b'{"sleep": 1}', timeout=0.05)
        assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    stats = lb.stats()[server.address]
    assert (stats.succeeded, stats.failed, stats.in_flight) == (1, 2, 0)


def test_refused_connections_are_retried_at_once_without_budget(grpc_servers: Start) -> None:
    [server] = grpc_servers(1)
    dead = grpc_servers(1)[0]
    dead.kill()  # its port now refuses connections
    lb = bk.RoundRobin([dead.address, server.address])
    retry = bk.Retry(attempts=2)
    with BalancedChannel(lb, retry=retry, eject=None) as channel:
        call = channel.unary_unary(UNARY)
        served = Counter(call(b"{}").decode() for _ in range(10))
    assert served == {"s0": 10}
    # round robin moves twice per call (the refused pick, the retry): dead is first each time
    assert lb.stats()[dead.address].failed == 10
    assert retry.budget is not None and retry.budget.retries == 0  # transparent: no token spent


def test_no_endpoint_is_an_rpc_error_and_a_balancekit_error() -> None:
    with BalancedChannel(bk.RoundRobin()) as channel, pytest.raises(NoEndpointError) as error:
        channel.unary_unary(UNARY)(b"{}")
    assert isinstance(error.value, grpc.RpcError)
    assert isinstance(error.value, bk.NoEndpointAvailable)
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE


def test_kill_one_of_three_under_a_stream_of_calls(grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    victim = servers[1]
    lb = bk.RoundRobin([s.address for s in servers])
    served: Counter[str] = Counter()
    errors: list[BaseException] = []
    stop = threading.Event()
    retry = bk.Retry()
    channel = BalancedChannel(lb, idempotent=[UNARY], retry=retry)

    def run() -> None:
        call = channel.unary_unary(UNARY)
        deadline = time.monotonic() + 60
        for _ in range(20_000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            try:
                served[call(b"{}", timeout=5).decode()] += 1
            except Exception as error:
                errors.append(error)

    client = threading.Thread(target=run, daemon=True)
    client.start()
    try:
        assert wait_until(lambda: served.total() >= 50), "the stream did not start"
        victim.kill()  # SIGKILL by its PID
        killed = time.monotonic()
        before = served.total()
        # past the first ejection (1 s): the dead server is tried again, refused, ejected again
        assert wait_until(
            lambda: served.total() >= before + 300 and time.monotonic() > killed + 1.5,
            timeout=30,
        ), "stalled"
        dead = lb.stats()[victim.address]
        assert dead.ejected and dead.up
        served_while_dead = served[victim.ident]
        victim.start()  # the same port again: traffic comes back once its ejection ends
        assert wait_until(lambda: served[victim.ident] >= served_while_dead + 5, timeout=30), (
            "the restarted server got no traffic"
        )
    finally:
        stop.set()
        client.join(timeout=30)
        channel.close()
    assert not client.is_alive()
    assert errors == []
    assert _in_flight(lb) == 0
    assert retry.budget is not None
    print(
        f"\ngrpc SIGKILL: {served.total()} calls, {len(errors)} failures, served {dict(served)},"
        f" victim {lb.stats()[victim.address]}, budgeted retries {retry.budget.retries}"
    )


def test_slow_server_gets_little_traffic_under_least_response_time(grpc_servers: Start) -> None:
    servers = grpc_servers(3, delays={0: 0.05})
    lb = bk.LeastResponseTime([s.address for s in servers])
    served: Counter[str] = Counter()
    lock = threading.Lock()
    with BalancedChannel(lb) as channel:
        call = channel.unary_unary(UNARY)

        def run() -> None:
            for _ in range(60):
                answer = call(b"{}").decode()
                with lock:
                    served[answer] += 1

        threads = [threading.Thread(target=run) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert served.total() == 180
    assert served["s0"] < 0.1 * 180, served  # the 50 ms server, against ~1 ms ones


def test_streams_release_on_end_cancel_and_garbage(grpc_servers: Start) -> None:
    [server] = grpc_servers(1)
    lb = bk.LeastConnections([server.address])
    with BalancedChannel(lb) as channel:
        stream_call = channel.unary_stream(STREAM)
        stream = stream_call(b'{"count": 3}')
        assert _in_flight(lb) == 1
        assert list(stream) == [b"s0"] * 3
        assert wait_until(lambda: _in_flight(lb) == 0)
        assert lb.stats()[server.address].succeeded == 1

        stream = stream_call(b'{"count": 1000, "gap": 0.01}')
        assert next(stream) == b"s0"
        stream.cancel()
        assert wait_until(lambda: lb.stats()[server.address].cancelled == 1)

        stream = stream_call(b'{"count": 1000, "gap": 0.01}')
        assert next(stream) == b"s0"
        del stream
        gc.collect()
        assert wait_until(lambda: lb.stats()[server.address].cancelled == 2)

        chat = channel.stream_stream("/test.Echo/Chat")
        assert list(chat(iter([b"a", b"b"]))) == [b"s0", b"s0"]
        collect = channel.stream_unary("/test.Echo/Collect")
        assert collect(iter([b"a", b"b", b"c"])) == b"s0 3"
        assert wait_until(lambda: _in_flight(lb) == 0)
        stats = lb.stats()[server.address]
    assert (stats.succeeded, stats.failed, stats.cancelled) == (3, 0, 2)


def test_a_stream_is_retried_elsewhere_before_its_first_message(grpc_servers: Start) -> None:
    [server] = grpc_servers(1)
    dead = grpc_servers(1)[0]
    dead.kill()
    lb = bk.RoundRobin([dead.address, server.address])
    with BalancedChannel(lb, eject=None) as channel:
        for _ in range(4):
            assert list(channel.unary_stream(STREAM)(b'{"count": 2}')) == [b"s0", b"s0"]
    assert wait_until(lambda: _in_flight(lb) == 0)
    assert lb.stats()[dead.address].failed == 4  # tried first each time (see above)


def test_channels_follow_membership(grpc_servers: Start) -> None:
    a, b = grpc_servers(2)
    lb = bk.RoundRobin([a.address])
    with BalancedChannel(lb, sweep=3600) as channel:
        channel.sync()
        assert channel.addresses == [a.address]
        lb.add(b.address)
        channel.sync()
        assert sorted(channel.addresses) == sorted([a.address, b.address])
        stream = channel.unary_stream(STREAM)(b'{"count": 1000, "gap": 0.01}')
        first = next(stream)
        busy = a.address if first == b"s0" else b.address
        lb.remove(busy)
        channel.sync()
        assert busy in channel.addresses  # its stream still runs on it
        assert next(stream) == first
        stream.cancel()
        assert wait_until(lambda: busy not in channel.addresses)
        other = b.address if busy == a.address else a.address
        assert channel.addresses == [other]


@pytest.mark.parametrize(
    "options",
    [
        {"ok_code": 3},
        {"idempotent": "/test.Echo/Unary"},
        {"idempotent": 3},
        {"orca": "yes"},
        {"credentials": "tls"},
        {"options": "grpc.x"},
        {"options": [("grpc.x",)]},
        # values grpcio refuses only when it makes each endpoint's channel, after the pick
        {"options": [("grpc.x", object())]},
        {"options": [("grpc.ssl_target_name_override", "\ud800")]},
        {"options": [("grpc.max_receive_message_length", 10**30)]},
        {"compression": 1},
        {"sweep": float("nan")},
        {"retry": 3},
        {"eject": -1},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    lb = bk.RoundRobin(["127.0.0.1:1"])
    with pytest.raises(bk.InvalidOption):
        BalancedChannel(lb, **options)  # type: ignore[arg-type]
    assert bk.health_of(lb) is None  # nothing attached: no state change
    with pytest.raises(bk.InvalidOption):
        AsyncBalancedChannel(lb, **options)  # type: ignore[arg-type]
    assert bk.health_of(lb) is None


def test_calls_from_threads_while_membership_churns(grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    addresses = [s.address for s in servers]
    lb = bk.LeastConnections(addresses)
    errors: list[BaseException] = []
    served: Counter[str] = Counter()
    lock = threading.Lock()
    done = threading.Event()
    channel = BalancedChannel(lb, sweep=0.001)  # membership read on almost every call

    def client() -> None:
        call = channel.unary_unary(UNARY)
        stream = channel.unary_stream(STREAM)
        for i in range(150):
            try:
                answer = call(b"{}") if i % 3 else b"".join(stream(b'{"count": 2}'))[:2]
                with lock:
                    served[answer.decode()] += 1
            except Exception as error:
                errors.append(error)

    def churn() -> None:
        for i in range(2_000):  # bounded; stops when the clients are done
            if done.is_set():
                return
            address = addresses[i % 3]
            lb.remove(address)  # two members stay
            time.sleep(0.002)
            lb.add(address)
            time.sleep(0.002)

    threads = [threading.Thread(target=client) for _ in range(4)]
    churner = threading.Thread(target=churn)
    churner.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    churner.join(timeout=30)
    try:
        assert errors == []
        assert served.total() == 600
        assert wait_until(lambda: _in_flight(lb) == 0)
        channel.sync()
        assert sorted(channel.addresses) == sorted(addresses)
    finally:
        channel.close()


def test_client_side_failures_are_not_the_endpoints(grpc_servers: Start) -> None:
    """A deadline already past when the call starts, and a request serializer that raises:
    grpcio fails the call (DEADLINE_EXCEEDED, INTERNAL) without the server; uncounted."""
    [server] = grpc_servers(1)
    lb = bk.RoundRobin([server.address])

    def broken(request: object) -> bytes:
        raise ValueError("cannot serialize")

    with BalancedChannel(lb) as channel:
        call = channel.unary_unary(UNARY)
        for timeout in (-1, -0.5):  # (0 races: C-core may still finish a fast call)
            with pytest.raises(grpc.RpcError) as error:
                call(b"{}", timeout=timeout)
            assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as error:
            list(channel.unary_stream(STREAM)(b"{}", timeout=-1))
        assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary(UNARY, request_serializer=broken)(b"{}")
        assert error.value.code() is grpc.StatusCode.INTERNAL
        assert call(b"{}") == b"s0"
        assert wait_until(lambda: _in_flight(lb) == 0)
    stats = lb.stats()[server.address]
    assert (stats.succeeded, stats.failed, stats.cancelled) == (1, 0, 4)


def test_a_report_hook_that_raises_still_releases(grpc_servers: Start) -> None:
    [server] = grpc_servers(1, orca={0: "0.5,100"})

    class Broken(bk.LoadReportWeightedRoundRobin):
        def report(self, target: object, load: object) -> None:
            raise RuntimeError("report failed")

    lb = Broken([server.address])
    with BalancedChannel(lb) as channel, pytest.raises(RuntimeError, match="report failed"):
        channel.unary_unary(UNARY)(b"{}")
    stats = lb.stats()[server.address]
    assert (stats.in_flight, stats.succeeded) == (0, 1)


def test_client_side_mistakes_never_count_against_the_endpoints(grpc_servers: Start) -> None:
    """A request of the wrong type (grpcio raises TypeError before sending), a request iterator
    that raises (UNKNOWN "Exception iterating requests!"), a method name grpcio cannot encode
    and a call on a closed channel are the caller's bugs: no failure is counted, so a buggy
    caller in a loop cannot eject every healthy endpoint for the callers that are right."""
    [server] = grpc_servers(1)
    lb = bk.RoundRobin([server.address])

    def broken() -> Iterator[bytes]:
        yield b"a"
        raise RuntimeError("the caller's iterator")

    with BalancedChannel(lb) as channel:
        call = channel.unary_unary(UNARY)
        for _ in range(20):
            with pytest.raises(TypeError):
                call("not bytes")
            with pytest.raises(TypeError):
                call.future("not bytes")
            with pytest.raises(TypeError):
                list(channel.unary_stream(STREAM)("not bytes"))
            with pytest.raises(grpc.RpcError):
                channel.stream_unary("/test.Echo/Collect")(broken())
            with pytest.raises(grpc.RpcError):
                list(channel.stream_stream("/test.Echo/Chat")(broken()))
        with pytest.raises(bk.InvalidOption, match="UTF-8"):
            channel.unary_unary("/test.Echo/\ud800")
        assert call(b"{}") == b"s0"  # the endpoint was never ejected
        assert wait_until(lambda: _in_flight(lb) == 0)
    with pytest.raises(ValueError, match="closed channel"):
        call(b"{}")
    stats = lb.stats()[server.address]
    assert (stats.in_flight, stats.failed, stats.succeeded) == (0, 0, 1)


class _LongestBackoff(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b  # the jitter's upper end: the wait is the whole backoff


def test_no_retry_waits_past_the_calls_deadline(grpc_servers: Start) -> None:
    """gRPC retries stop at the call's deadline (gRFC A6): a backoff that would end past it is
    not waited. The caller gets the attempt's own status (UNAVAILABLE), not DEADLINE_EXCEEDED
    after a sleep longer than the timeout it asked for; one attempt only."""
    servers = grpc_servers(2)
    lb = bk.RoundRobin([s.address for s in servers])
    retry = bk.Retry(attempts=3, backoff=5.0, max_backoff=5.0, budget=None, rng=_LongestBackoff())
    with BalancedChannel(lb, idempotent=True, retry=retry, eject=None) as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary(UNARY)(b'{"code": "UNAVAILABLE"}', timeout=1.0)
        assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as error:
            list(channel.unary_stream(STREAM)(b'{"code": "UNAVAILABLE", "count": 0}', timeout=1.0))
        assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        assert wait_until(lambda: _in_flight(lb) == 0)
        assert sum(stats.selected for stats in lb.stats().values()) == 2  # no retry either time
        # without a deadline the same call is retried on the other endpoint, after its backoff
        quick = bk.Retry(attempts=2, backoff=0.001, budget=None)
        again = BalancedChannel(lb, idempotent=True, retry=quick, eject=None)
        with again, pytest.raises(grpc.RpcError):
            again.unary_unary(UNARY)(b'{"code": "UNAVAILABLE"}')
        assert sum(stats.selected for stats in lb.stats().values()) == 4
