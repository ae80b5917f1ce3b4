"""Runs a page's fenced ``python`` blocks against HTTP servers on loopback (tests/test_docs.py).

The docs write example instances as ``127.0.0.1:8001``, ``127.0.0.1:8002``, ``127.0.0.1:8003``;
here each is a real server on a free port (answering every ``GET`` with ``200`` and a JSON body
naming it), and the block's text has those addresses replaced by the real ones before it runs.
``127.0.0.1:8009`` is a port where nothing listens (an instance that is down). The blocks of a
page run in order in one namespace, in a process of their own (``python _doc_servers.py PAGE``,
the blocks as JSON ``[[line, source], ...]`` on stdin), so what one page registers or patches
never leaks into another page or the tests.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PLACEHOLDERS = ["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"]
DOWN = "127.0.0.1:8009"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        label = self.server.label  # type: ignore[attr-defined]
        body = json.dumps({"server": label, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def run_blocks(page: str, blocks: list[tuple[int, str]]) -> None:
    servers = []
    replacements = {}
    for placeholder in PLACEHOLDERS:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.label = placeholder  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        replacements[placeholder] = f"127.0.0.1:{server.server_address[1]}"
    replacements[DOWN] = _closed_port()
    namespace: dict[str, object] = {"__name__": "__docs__"}
    try:
        for line, source in blocks:
            for placeholder, real in replacements.items():
                source = source.replace(placeholder, real)
            code = compile(source, f"{page}:{line}", "exec")
            exec(code, namespace)
            print(f"ran {page}:{line}", flush=True)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    run_blocks(sys.argv[1], [(line, source) for line, source in json.load(sys.stdin)])
