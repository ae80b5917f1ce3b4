"""A tiny gRPC echo server for the balancekit.grpc tests, run as its own process.

No protobuf code generation: the service is registered with grpc's generic handlers
(``grpc.method_handlers_generic_handler``) and messages are raw bytes, so the test needs no
generated stubs and the server is a real grpcio server all the same.

Service ``test.Echo``; every request is a JSON object (bytes), every answer the server's id:

- ``Unary`` (unary-unary): answers ``id`` after ``sleep`` seconds (the request's, or the
  server's ``--delay``); ``{"code": "NOT_FOUND"}`` aborts with that status instead.
- ``Stream`` (unary-stream): ``count`` answers, ``gap`` seconds apart.
- ``Collect`` (stream-unary): reads every request, answers ``id`` and how many came.
- ``Chat`` (stream-stream): one answer per request.

With ``--orca CPU,QPS`` every call ends with an ORCA load report in the trailing metadata
``endpoint-load-metrics`` (TEXT form), and the same report in binary under
``endpoint-load-metrics-bin`` (an ``xds.data.orca.v3.OrcaLoadReport`` encoded by hand), which
gRPC C-core keeps from the client application.

Prints ``PORT <n>`` once serving (it binds port 0 unless ``--port`` is given).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc


def orca_report(cpu: float, qps: float) -> bytes:
    """OrcaLoadReport{cpu_utilization: cpu, rps_fractional: qps} in the protobuf wire format:
    a tag ``(field << 3) | 1`` (64-bit) then the little-endian double, per field."""
    return (
        bytes([(1 << 3) | 1])
        + struct.pack("<d", cpu)
        + bytes([(6 << 3) | 1])
        + struct.pack("<d", qps)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--id", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--orca", default="")
    args = parser.parse_args()
    ident = args.id.encode()
    trailer: tuple[tuple[str, bytes], ...] = ()
    if args.orca:
        cpu, qps = (float(x) for x in args.orca.split(","))
        trailer = (
            ("endpoint-load-metrics", f"TEXT cpu_utilization={cpu}, rps_fractional={qps}"),
            ("endpoint-load-metrics-bin", orca_report(cpu, qps)),
        )

    def options(request: bytes) -> dict[str, Any]:
        parsed = json.loads(request or b"{}")
        assert isinstance(parsed, dict)
        return parsed

    def finish(context: grpc.ServicerContext, opts: dict[str, Any]) -> None:
        if trailer:
            context.set_trailing_metadata(trailer)
        code = opts.get("code")
        if code:
            context.abort(getattr(grpc.StatusCode, code), f"asked for {code}")

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        opts = options(request)
        time.sleep(float(opts.get("sleep", args.delay)))
        finish(context, opts)
        return ident

    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        opts = options(request)
        for _ in range(int(opts.get("count", 3))):
            time.sleep(float(opts.get("gap", 0.0)))
            yield ident
        finish(context, opts)

    def collect(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        n = sum(1 for _ in requests)
        finish(context, {})
        return ident + b" " + str(n).encode()

    def chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield ident
        finish(context, {})

    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
            "Collect": grpc.stream_unary_rpc_method_handler(collect),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print(f"PORT {port}", flush=True)
    # Stop when the parent goes away (stdin closes), so no server outlives a crashed test run.
    threading.Thread(target=lambda: (sys.stdin.read(), server.stop(0)), daemon=True).start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
