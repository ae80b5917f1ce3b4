"""A tiny HTTP server for the integration tests (and the examples): it answers with its own id.

Run in a thread (:func:`serve_in_thread`) or as a process
(``python tests/integration/_server.py --host 127.0.0.2 --port 0 --id s1``), which prints
``PORT <n>`` once it listens. ``GET /`` answers ``{"id", "host", "path"}`` as JSON after the
server's ``delay``; ``/big`` answers 256 KiB; ``/hangup`` closes the connection without an
answer; ``/status/<n>`` answers status ``n``. POST and PUT read the body and answer like GET.
A thread server with ``failures=f`` answers that share of its requests 503 instead, spread
evenly and deterministically (request ``n`` fails when ``floor((n + 1) f) > floor(n f)``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ident = "?"
    delay = 0.0
    failures = 0.0
    answered = 0
    failed = 0
    count_lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # headers and body in one write (no Nagle / delayed-ACK stalls)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/hangup":
            self.close_connection = True
            return
        if self.server.delay:
            time.sleep(self.server.delay)
        status = 200
        if self.path.startswith("/status/"):
            status = int(self.path.rsplit("/", 1)[1])
        share = self.server.failures
        if share:
            with self.server.count_lock:
                n = self.server.answered
                self.server.answered += 1
                if math.floor((n + 1) * share) > math.floor(n * share):
                    status = 503
                    self.server.failed += 1
        if self.path == "/big":
            body = self.server.ident.encode().ljust(256 * 1024, b".")
        else:
            body = json.dumps(
                {"id": self.server.ident, "host": self.headers.get("Host"), "path": self.path}
            ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Server", self.server.ident)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer


class ThreadServer:
    """A server running in a daemon thread of this process; :meth:`stop` shuts it down."""

    def __init__(
        self,
        host: str,
        ident: str,
        *,
        delay: float = 0.0,
        failures: float = 0.0,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.httpd = _Server((host, port), _Handler)
        self.httpd.ident = ident
        self.httpd.delay = delay
        self.httpd.failures = failures
        self.httpd.count_lock = threading.Lock()
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.ident = ident
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def serve_in_thread(host: str, ident: str, *, delay: float = 0.0) -> ThreadServer:
    """Start a server on ``host`` (a free port) in a thread."""
    return ThreadServer(host, ident, delay=delay)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--id", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    httpd = _Server((args.host, args.port), _Handler)
    httpd.ident = args.id
    httpd.delay = args.delay
    print(f"PORT {httpd.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever(poll_interval=0.05)
    sys.exit(0)


if __name__ == "__main__":
    main()
