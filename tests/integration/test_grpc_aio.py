"""balancekit.grpc's asyncio channel against real grpcio servers in their own processes."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import warnings
from collections import Counter

import grpc
import pytest

import balancekit as bk
from balancekit.integrations.grpc import AsyncBalancedChannel, NoEndpointError

from ._grpc_fixture import Start

UNARY = "/test.Echo/Unary"
STREAM = "/test.Echo/Stream"


def _in_flight(lb: bk.Balancer) -> int:
    return sum(stats.in_flight for stats in lb.stats().values())


async def _until(condition: object, timeout: float = 10.0) -> bool:
    """Poll ``condition()`` every 10 ms on the loop, for at most ``timeout`` seconds."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return bool(condition())


def test_round_robin_is_exact_and_statuses_are_judged(grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    lb = bk.RoundRobin([s.address for s in servers])

    async def main() -> None:
        async with AsyncBalancedChannel(lb) as channel:
            call = channel.unary_unary(UNARY)
            served = Counter([(await call(b"{}")).decode() for _ in range(30)])
            assert served == {"s0": 10, "s1": 10, "s2": 10}
            with pytest.raises(grpc.RpcError) as error:
                await call(b'{"code": "NOT_FOUND"}')
            assert error.value.code() is grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as error:
                await call(b'{"code": "INTERNAL"}')
            assert error.value.code() is grpc.StatusCode.INTERNAL
            pending = call(b"{}")
            assert await pending == b"s2"
            assert await pending.code() is grpc.StatusCode.OK

    asyncio.run(main())
    stats = lb.stats()
    assert sum(s.succeeded for s in stats.values()) == 32
    assert sum(s.failed for s in stats.values()) == 1
    assert _in_flight(lb) == 0


def test_least_connections_spreads_concurrent_calls(grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    lb = bk.LeastConnections([s.address for s in servers])

    async def main() -> Counter[str]:
        async with AsyncBalancedChannel(lb) as channel:
            call = channel.unary_unary(UNARY)
            answers = await asyncio.gather(*(call(b'{"sleep": 0.3}') for _ in range(6)))
        return Counter(answer.decode() for answer in answers)

    assert asyncio.run(main()) == {"s0": 2, "s1": 2, "s2": 2}
    assert _in_flight(lb) == 0


def test_kill_one_of_three_under_a_stream_of_calls(grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    victim = servers[1]
    lb = bk.RoundRobin([s.address for s in servers])
    served: Counter[str] = Counter()
    errors: list[BaseException] = []

    async def main() -> None:
        async with AsyncBalancedChannel(lb, idempotent=[UNARY]) as channel:
            call = channel.unary_unary(UNARY)
            deadline = time.monotonic() + 60
            killed_at: float | None = None
            for i in range(20_000):
                if time.monotonic() > deadline:
                    break
                if killed_at is not None and i > 350 and time.monotonic() > killed_at + 1.5:
                    break  # past the first ejection (1 s): the dead server was tried again
                if i == 50:
                    victim.kill()  # SIGKILL by its PID, with calls going on
                    killed_at = time.monotonic()
                try:
                    served[(await call(b"{}", timeout=5)).decode()] += 1
                except Exception as error:
                    errors.append(error)

    asyncio.run(main())
    assert errors == []
    assert served.total() >= 350
    assert lb.stats()[victim.address].ejected
    assert _in_flight(lb) == 0
    print(
        f"\ngrpc.aio SIGKILL: {served.total()} calls, {len(errors)} failures, {dict(served)},"
        f" victim {lb.stats()[victim.address]}"
    )


def test_slow_server_gets_little_traffic_under_least_response_time(grpc_servers: Start) -> None:
    servers = grpc_servers(3, delays={0: 0.05})
    lb = bk.LeastResponseTime([s.address for s in servers])

    async def main() -> Counter[str]:
        served: Counter[str] = Counter()
        async with AsyncBalancedChannel(lb) as channel:
            call = channel.unary_unary(UNARY)

            async def run() -> None:
                for _ in range(60):
                    served[(await call(b"{}")).decode()] += 1

            await asyncio.gather(run(), run(), run())
        return served

    served = asyncio.run(main())
    assert served.total() == 180
    assert served["s0"] < 0.1 * 180, served


def test_streams_release_on_end_cancel_and_garbage(grpc_servers: Start) -> None:
    [server] = grpc_servers(1)
    lb = bk.LeastConnections([server.address])

    def stats() -> bk.EndpointStats:
        return lb.stats()[server.address]

    async def main() -> None:
        async with AsyncBalancedChannel(lb) as channel:
            stream_call = channel.unary_stream(STREAM)
            stream = stream_call(b'{"count": 3}')
            assert _in_flight(lb) == 1
            assert [m async for m in stream] == [b"s0"] * 3
            assert await _until(lambda: _in_flight(lb) == 0)
            assert stats().succeeded == 1

            stream = stream_call(b'{"count": 1000, "gap": 0.01}')
            assert await stream.read() == b"s0"
            stream.cancel()
            assert await _until(lambda: stats().cancelled == 1)

            stream = stream_call(b'{"count": 1000, "gap": 0.01}')
            assert await stream.read() == b"s0"
            del stream
            gc.collect()
            assert await _until(lambda: stats().cancelled == 2)

            chat = channel.stream_stream("/test.Echo/Chat")
            assert [m async for m in chat(iter([b"a", b"b"]))] == [b"s0", b"s0"]
            collect = channel.stream_unary("/test.Echo/Collect")
            assert await collect(iter([b"a", b"b", b"c"])) == b"s0 3"
            assert await _until(lambda: _in_flight(lb) == 0)

    asyncio.run(main())
    assert (stats().succeeded, stats().failed, stats().cancelled) == (3, 0, 2)


def test_a_cancelled_unary_call_is_uncounted(grpc_servers: Start) -> None:
    [server] = grpc_servers(1)
    lb = bk.RoundRobin([server.address])

    async def main() -> None:
        async with AsyncBalancedChannel(lb) as channel:
            pending = channel.unary_unary(UNARY)(b'{"sleep": 5}')
            await asyncio.sleep(0.2)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending

    asyncio.run(main())
    stats = lb.stats()[server.address]
    assert (stats.in_flight, stats.cancelled, stats.failed, stats.succeeded) == (0, 1, 0, 0)


def test_refused_connections_are_retried_for_unary_and_streams(grpc_servers: Start) -> None:
    [server] = grpc_servers(1)
    dead = grpc_servers(1)[0]
    dead.kill()
    lb = bk.RoundRobin([dead.address, server.address])
    retry = bk.Retry(attempts=2)

    async def main() -> None:
        async with AsyncBalancedChannel(lb, retry=retry, eject=None) as channel:
            for _ in range(3):
                assert await channel.unary_unary(UNARY)(b"{}") == b"s0"
                stream = channel.unary_stream(STREAM)(b'{"count": 2}')
                assert [m async for m in stream] == [b"s0", b"s0"]
            assert await _until(lambda: _in_flight(lb) == 0)

    asyncio.run(main())
    assert lb.stats()[dead.address].failed == 6
    assert retry.budget is not None and retry.budget.retries == 0


def test_no_endpoint_and_membership(grpc_servers: Start) -> None:
    a, b = grpc_servers(2)
    lb = bk.RoundRobin([a.address])

    async def main() -> None:
        async with AsyncBalancedChannel(bk.RoundRobin()) as empty:
            with pytest.raises(NoEndpointError):
                await empty.unary_unary(UNARY)(b"{}")
        async with AsyncBalancedChannel(lb, sweep=3600) as channel:
            await channel.sync()
            assert channel.addresses == [a.address]
            lb.update([b.address])
            await channel.sync()
            assert channel.addresses == [b.address]
            assert await channel.unary_unary(UNARY)(b"{}") == b"s1"

    asyncio.run(main())


def test_concurrent_calls_while_membership_churns(grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    addresses = [s.address for s in servers]
    lb = bk.LeastConnections(addresses)
    served: Counter[str] = Counter()

    async def main() -> None:
        async with AsyncBalancedChannel(lb, sweep=0.001) as channel:
            call = channel.unary_unary(UNARY)
            stream = channel.unary_stream(STREAM)
            done = asyncio.Event()

            async def client() -> None:
                for i in range(100):
                    if i % 3:
                        served[(await call(b"{}")).decode()] += 1
                    else:
                        messages = [m async for m in stream(b'{"count": 2}')]
                        served[messages[0].decode()] += 1

            async def churn() -> None:
                for i in range(2_000):  # bounded; stops when the clients are done
                    if done.is_set():
                        return
                    address = addresses[i % 3]
                    lb.remove(address)
                    await asyncio.sleep(0.002)
                    lb.add(address)
                    await asyncio.sleep(0.002)

            churner = asyncio.create_task(churn())
            await asyncio.wait_for(asyncio.gather(*(client() for _ in range(4))), timeout=60)
            done.set()
            await churner
            assert await _until(lambda: _in_flight(lb) == 0)
            await channel.sync()
            assert sorted(channel.addresses) == sorted(addresses)

    asyncio.run(main())
    assert served.total() == 400


def test_client_side_mistakes_never_count_against_the_endpoints(grpc_servers: Start) -> None:
    """As for the sync channel: a request of the wrong type, a method grpcio cannot encode and
    a call on a closed channel are the caller's bugs, never the endpoint's failures."""
    [server] = grpc_servers(1)
    lb = bk.RoundRobin([server.address])

    async def main() -> None:
        channel = AsyncBalancedChannel(lb)
        call = channel.unary_unary(UNARY)
        for _ in range(20):
            with pytest.raises(TypeError):
                await call("not bytes")
        with pytest.raises(bk.InvalidOption, match="UTF-8"):
            channel.unary_unary("/test.Echo/\ud800")
        assert await call(b"{}") == b"s0"
        assert await _until(lambda: _in_flight(lb) == 0)
        await channel.close()
        with pytest.raises(ValueError, match="closed channel"):
            await call(b"{}")

    asyncio.run(main())
    stats = lb.stats()[server.address]
    assert (stats.in_flight, stats.failed, stats.succeeded) == (0, 0, 1)


def test_a_stream_kept_past_its_event_loop_is_released_quietly(
    grpc_servers: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream collected after ``asyncio.run`` ended: its lease goes back uncounted, and no
    "Exception ignored ... no running event loop" or never-awaited coroutine is reported."""
    [server] = grpc_servers(1)
    lb = bk.RoundRobin([server.address])
    kept: list[object] = []
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    async def main() -> None:
        channel = AsyncBalancedChannel(lb)
        stream = channel.unary_stream(STREAM)(b'{"count": 1000, "gap": 0.01}')
        assert await stream.__aiter__().__anext__() == b"s0"
        kept.append(stream)

    asyncio.run(main())
    assert _in_flight(lb) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept.clear()
        gc.collect()
    assert _in_flight(lb) == 0 and lb.stats()[server.address].cancelled == 1
    assert unraisable == []
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []
