"""An aiohttp.web server for the aiohttp integration tests, run as a process by its own PID.

``python tests/integration/_aiohttp_server.py --host 127.0.0.2 --id a1 [--delay 0.05]`` prints
``PORT <n>`` once it listens (``--port 0``: a free port). Routes, every method:

- ``/`` and anything unmatched: ``{"id", "host", "path", "body"}`` as JSON after ``delay``;
- ``/status/<n>``: that status, same body;
- ``/stream/<n>``: ``n`` chunks of 1 KiB, 20 ms apart (a streamed, chunked response);
- ``/cookie``: sets ``flavour=oat`` for the requested host; ``/hangup``: closes the connection
  without an answer.

:class:`AiohttpServer` starts, SIGKILLs and restarts one such process by its own PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__)


async def serve(host: str, port: int, ident: str, delay: float) -> None:
    from aiohttp import web

    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        if path == "/hangup":
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError  # nothing more to say on a closed connection
        if delay:
            await asyncio.sleep(delay)
        if path.startswith("/stream/"):
            stream = web.StreamResponse(headers={"X-Server": ident})
            await stream.prepare(request)
            for _ in range(min(int(path.rsplit("/", 1)[1]), 10_000)):
                await stream.write(ident.encode().ljust(1024, b"."))
                await asyncio.sleep(0.02)
            await stream.write_eof()
            return stream
        status = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
        payload = {"id": ident, "host": request.host, "path": path, "body": body.decode()}
        response = web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            content_type="application/json",
            headers={"X-Server": ident},
        )
        if path == "/cookie":
            response.set_cookie("flavour", "oat")
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()  # until killed


class AiohttpServer:
    """One server process; :meth:`kill` sends SIGKILL to its PID, :meth:`start` again reuses
    the port."""

    def __init__(self, host: str, ident: str, *, delay: float = 0.0) -> None:
        self.host = host
        self.ident = ident
        self.delay = delay
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        assert self.proc is None
        command = [sys.executable, str(SCRIPT), "--host", self.host, "--port", str(self.port)]
        command += ["--id", self.ident, "--delay", str(self.delay)]
        from ._process import start_announcing

        self.proc, self.port = start_announcing(command, f"aiohttp server {self.ident}")

    def kill(self) -> None:
        from ._process import stop

        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--id", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.id, args.delay))


if __name__ == "__main__":
    main()
