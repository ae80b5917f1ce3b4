"""Tiny HTTP backends on loopback for the examples: each answers with its name.

``with backends({"a": 0.0, "b": 0.0, "slow": 0.05}) as addresses:`` starts one threaded server
per name on 127.0.0.1 (a free port each; the value is a delay in seconds) and shuts them down.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        name, delay = self.server.name, self.server.delay  # type: ignore[attr-defined]
        time.sleep(delay)
        body = json.dumps({"server": name, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def backends(delays: dict[str, float]) -> Iterator[dict[str, str]]:
    """Start one server per name; yield {address: name}; stop them all on exit."""
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
    addresses: dict[str, str] = {}
    try:
        for name, delay in delays.items():
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            server.name, server.delay = name, delay  # type: ignore[attr-defined]
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            started.append((server, thread))
            addresses[f"127.0.0.1:{server.server_address[1]}"] = name
        yield addresses
    finally:
        for server, thread in started:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
