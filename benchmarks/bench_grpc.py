"""balancekit.grpc's cost per call beside a bare grpcio channel, in the same run.

Run from the repository root::

    python benchmarks/bench_grpc.py                 # 15 interleaved rounds of ~0.3 s per case
    python benchmarks/bench_grpc.py --repeats 5     # quicker

One echo server (``tests/integration/_grpc_server.py``: generic handlers, bytes in and out) runs
in its own process on 127.0.0.1 and is killed by its PID at the end. Every case makes sequential
calls to it over loopback: a bare ``grpc.insecure_channel`` (or ``grpc.aio``) to the server,
and a ``BalancedChannel`` over a one-endpoint ``RoundRobin`` (so the pick is the cheapest there
is and what is measured is the integration: the pick, the call object, the outcome, the pool):
with its defaults, and lean (``context=lambda info: None``: no ``bk.Request`` built per call,
``retry=None, eject=None``). Cases run interleaved (``benchmarks/_harness.py``); each figure is
the median per-call time in microseconds over the rounds (and the best round's, the least
disturbed on a shared machine), with the overhead beside the bare channel of the same kind
measured in the same rounds. The ``no I/O`` cases open stub channels that answer at once,
in-process, so what they measure is balancekit's own cost per call, without the network's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from time import perf_counter_ns

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc  # noqa: E402
import grpc.aio  # noqa: E402
from _harness import Case, interleaved, machine, markdown_table  # noqa: E402

import balancekit as bk  # noqa: E402
from balancekit.integrations.grpc import AsyncBalancedChannel, BalancedChannel  # noqa: E402

SERVER = ROOT / "tests" / "integration" / "_grpc_server.py"
UNARY = "/test.Echo/Unary"
STREAM = "/test.Echo/Stream"
REQUEST = b"{}"
ONE = b'{"count": 1}'


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--id", "bench"],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20.0)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, f"127.0.0.1:{int(line.split()[1])}"


def sync_case(call: Callable[[bytes], object], request: bytes) -> Case:
    def run(n: int) -> tuple[int, int]:
        start = perf_counter_ns()
        for _ in range(n):
            call(request)
        return perf_counter_ns() - start, n

    return run


def stream_case(call: Callable[[bytes], object], request: bytes) -> Case:
    def run(n: int) -> tuple[int, int]:
        start = perf_counter_ns()
        for _ in range(n):
            for _message in call(request):  # type: ignore[attr-defined]
                pass
        return perf_counter_ns() - start, n

    return run


def async_case(loop: asyncio.AbstractEventLoop, call: Callable[[bytes], object]) -> Case:
    async def batch(n: int) -> int:
        start = perf_counter_ns()
        for _ in range(n):
            await call(REQUEST)  # type: ignore[misc]
        return perf_counter_ns() - start

    def run(n: int) -> tuple[int, int]:
        return loop.run_until_complete(batch(n)), n

    return run


class _StubCall:
    """A finished call, as grpcio hands back from ``with_call`` (OK, no trailers)."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK

    def details(self) -> None:
        return None

    def trailing_metadata(self) -> tuple[()]:
        return ()


class _StubMethod:
    def __call__(self, request: bytes, **kwargs: object) -> bytes:
        return b"stub"

    def with_call(self, request: bytes, **kwargs: object) -> tuple[bytes, _StubCall]:
        return b"stub", _StubCall()


class _StubAioCall:
    def __await__(self):  # type: ignore[no-untyped-def]
        if False:
            yield
        return b"stub"

    async def trailing_metadata(self) -> tuple[()]:
        return ()

    def cancel(self) -> bool:
        return False


class _StubChannel:
    """A channel that answers at once, in-process: what is left is balancekit's own cost."""

    def __init__(self, *, aio: bool = False) -> None:
        self.aio = aio

    def unary_unary(self, method: str, *args: object, **kwargs: object) -> object:
        return (lambda request, **kw: _StubAioCall()) if self.aio else _StubMethod()

    def close(self, grace: object = None) -> object:
        return None


def stub_balanced(lb: bk.Balancer, *, aio: bool = False, **options: object) -> object:
    """A balanced channel whose per-endpoint channels are stubs (no I/O at all)."""
    kind = AsyncBalancedChannel if aio else BalancedChannel
    channel = kind(lb, **options)  # type: ignore[arg-type]
    channel._pool._open = lambda address: _StubChannel(aio=aio)
    return channel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--min-time", type=float, default=0.3)
    args = parser.parse_args()
    proc, address = start_server()
    loop = asyncio.new_event_loop()
    try:
        lean = {"context": lambda info: None, "retry": None, "eject": None}
        bare = grpc.insecure_channel(address)
        balanced = BalancedChannel(bk.RoundRobin([address]))
        balanced_lean = BalancedChannel(bk.RoundRobin([address]), **lean)  # type: ignore[arg-type]

        async def open_async() -> tuple[grpc.aio.Channel, AsyncBalancedChannel]:
            return grpc.aio.insecure_channel(address), AsyncBalancedChannel(
                bk.RoundRobin([address])
            )

        abare, abalanced = loop.run_until_complete(open_async())

        async def open_stub() -> object:
            return stub_balanced(bk.RoundRobin([address]), aio=True)

        astub = loop.run_until_complete(open_stub())
        stub = stub_balanced(bk.RoundRobin([address]))
        stub_lean = stub_balanced(bk.RoundRobin([address]), **lean)
        cases: dict[str, Case] = {
            "unary: bare grpc channel": sync_case(bare.unary_unary(UNARY), REQUEST),
            "unary: BalancedChannel": sync_case(balanced.unary_unary(UNARY), REQUEST),
            "unary: BalancedChannel, lean": sync_case(balanced_lean.unary_unary(UNARY), REQUEST),
            "unary-stream (1 message): bare": stream_case(bare.unary_stream(STREAM), ONE),
            "unary-stream (1 message): BalancedChannel": stream_case(
                balanced.unary_stream(STREAM), ONE
            ),
            "grpc.aio unary: bare": async_case(loop, abare.unary_unary(UNARY)),
            "grpc.aio unary: AsyncBalancedChannel": async_case(loop, abalanced.unary_unary(UNARY)),
            "no I/O: stub method": sync_case(_StubMethod(), REQUEST),
            "no I/O: BalancedChannel over stubs": sync_case(stub.unary_unary(UNARY), REQUEST),  # type: ignore[attr-defined]
            "no I/O: BalancedChannel over stubs, lean": sync_case(
                stub_lean.unary_unary(UNARY),
                REQUEST,  # type: ignore[attr-defined]
            ),
            "no I/O: AsyncBalancedChannel over stubs": async_case(
                loop,
                astub.unary_unary(UNARY),  # type: ignore[attr-defined]
            ),
        }
        results = interleaved(
            cases,
            repeats=args.repeats,
            min_time=args.min_time,
            progress=lambda text: print(text, file=sys.stderr),
        )
        baselines = {
            "unary": "unary: bare grpc channel",
            "unary-stream": "unary-stream (1 message): bare",
            "grpc.aio": "grpc.aio unary: bare",
            "no": "no I/O: stub method",
        }
        rows = []
        for name, measured in results.items():
            base = results[baselines[name.split(" ")[0].rstrip(":")]]
            rows.append(
                (
                    name,
                    f"{measured.median / 1000:.1f}",
                    f"{(measured.q3 - measured.q1) / 1000:.1f}",
                    f"{(measured.median - base.median) / 1000:+.1f}",
                    f"{measured.median / base.median:.2f}",
                    f"{measured.fastest / 1000:.1f}",
                    f"{(measured.fastest - base.fastest) / 1000:+.1f}",
                )
            )
        print(f"machine: {machine()}; {args.repeats} rounds; pid {os.getpid()}")
        headers = [
            "case",
            "µs/call median",
            "IQR µs",
            "overhead µs",
            "ratio",
            "µs/call best round",
            "overhead µs (best)",
        ]
        print(markdown_table(headers, rows))
        balanced.close()
        balanced_lean.close()
        bare.close()
        loop.run_until_complete(abalanced.close())
        loop.run_until_complete(abare.close())
    finally:
        loop.close()
        proc.kill()  # by its PID
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
