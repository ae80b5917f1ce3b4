"""Overhead of balancekit.aiohttp's middleware per request, beside a bare aiohttp ClientSession.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_aiohttp.py              # 7 rounds of 2,000 GETs
    PYTHONPATH=src python benchmarks/bench_aiohttp.py --rounds 3 --requests 300 --concurrency 8

One aiohttp.web server runs in a child process on 127.0.0.1 (tests/integration's
_aiohttp_server.py, answering a small JSON body). In the same run and the same event loop, the
cases send the same GETs and read each body, keep-alive on:

- ``bare``: a ``ClientSession`` sending to the server's address;
- ``RoundRobin``, ``LeastConnections``, ``LeastResponseTime``: a session with
  ``BalancedMiddleware`` over a one-endpoint balancer of that strategy (logical URL
  ``http://backend``), so the network path is the same and only the middleware differs;
- ``RoundRobin, context=None``: the same with ``context=lambda request: None``, which skips
  building the :class:`balancekit.Request` a key extractor would read;
- ``other middleware``: a session with a no-op middleware, to show what aiohttp's middleware
  machinery itself costs.

The cases are interleaved (round 1 runs every case once, round 2 again, ...), so drift on a
shared machine hits each alike; each figure is the median of its rounds, in microseconds per
request, and the ratio to ``bare`` of the same run: wall time (what a caller waits, including
the server and the loopback) and the client process's CPU time (``time.process_time``: what the
middleware adds, less disturbed by the server and other tenants of a shared machine). Prints
a markdown table. Never asserted by the tests (tests never time anything).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))  # this tree's balancekit, whatever is installed

import aiohttp  # noqa: E402
from _harness import machine, markdown_table  # noqa: E402

import balancekit as bk  # noqa: E402
from balancekit.integrations.aiohttp import BalancedMiddleware  # noqa: E402
from tests.integration._aiohttp_server import AiohttpServer  # noqa: E402


async def _noop(
    request: aiohttp.ClientRequest, handler: Callable[[aiohttp.ClientRequest], Awaitable[object]]
) -> aiohttp.ClientResponse:
    response = await handler(request)
    assert isinstance(response, aiohttp.ClientResponse)
    return response


async def measure(address: str, rounds: int, requests: int, concurrency: int) -> list[list[str]]:
    sessions: dict[str, aiohttp.ClientSession] = {
        "bare": aiohttp.ClientSession(f"http://{address}"),
        "other middleware": aiohttp.ClientSession(f"http://{address}", middlewares=(_noop,)),
    }
    for name in ("RoundRobin", "LeastConnections", "LeastResponseTime"):
        lb = getattr(bk, name)([address])
        middleware = BalancedMiddleware(lb)
        sessions[name] = aiohttp.ClientSession("http://backend", middlewares=(middleware,))
    # the same without building a balancekit.Request per request (a strategy that reads none)
    quick = BalancedMiddleware(bk.RoundRobin([address]), context=lambda request: None)
    sessions["RoundRobin, context=None"] = aiohttp.ClientSession(
        "http://backend", middlewares=(quick,)
    )
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    cpu: dict[str, list[float]] = {name: [] for name in sessions}
    try:

        async def batch(session: aiohttp.ClientSession, n: int) -> None:
            for _ in range(n):
                async with session.get("/") as response:
                    await response.read()

        async def timed(session: aiohttp.ClientSession) -> tuple[float, float]:
            per_task = max(1, requests // concurrency)
            start, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(batch(session, per_task) for _ in range(concurrency)))
            done = per_task * concurrency
            wall = (time.perf_counter() - start) / done * 1e6
            return wall, (time.process_time() - cpu) / done * 1e6

        for session in sessions.values():  # warm up: connections open, code paths hot
            await timed(session)
        for _ in range(rounds):
            for name, session in sessions.items():
                wall, used = await timed(session)
                samples[name].append(wall)
                cpu[name].append(used)
    finally:
        for session in sessions.values():
            await session.close()
    bare = statistics.median(samples["bare"])
    bare_cpu = statistics.median(cpu["bare"])
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        used = statistics.median(cpu[name])
        rows.append(
            [
                name,
                f"{median:.1f}",
                f"{min(values):.1f} .. {max(values):.1f}",
                f"{median / bare:.3f}",
                f"{used:.1f}",
                f"{used - bare_cpu:+.1f}",
                f"{used / bare_cpu:.3f}",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000, help="GETs per case per round")
    parser.add_argument("--concurrency", type=int, default=1, help="tasks sending at once")
    args = parser.parse_args(argv)
    server = AiohttpServer("127.0.0.1", "bench")
    server.start()
    try:
        rows = asyncio.run(measure(server.address, args.rounds, args.requests, args.concurrency))
    finally:
        server.kill()
    info = machine()
    print(
        f"aiohttp {aiohttp.__version__}, Python {info.get('python')}, {info.get('cpu')},"
        f" {args.rounds} rounds x {args.requests} GETs, concurrency {args.concurrency}\n"
    )
    headers = [
        "case",
        "wall µs/request",
        "wall range",
        "wall x bare",
        "client CPU µs/request",
        "CPU vs bare (µs)",
        "CPU x bare",
    ]
    print(markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
