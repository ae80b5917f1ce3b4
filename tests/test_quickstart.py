"""The README's quickstart runs: against loopback servers, with its first instance down."""

from __future__ import annotations

import contextlib
import io
import re
import socket
from pathlib import Path

import pytest

from ._doc_servers import PLACEHOLDERS, _closed_port, _Handler

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart() -> str:
    text = README.read_text()
    section = text[text.index("## Quickstart") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_quickstart_is_at_the_top_and_ten_lines() -> None:
    headings = re.findall(r"^## (.*)", README.read_text(), re.M)
    assert headings[0].startswith("Quickstart")
    assert len(quickstart().strip().splitlines()) <= 10


def test_the_quickstart_calls_the_service_and_retries_past_a_dead_instance() -> None:
    pytest.importorskip("httpx")
    from http.server import ThreadingHTTPServer
    from threading import Thread

    servers = []
    source = quickstart()
    dead = _closed_port()
    source = source.replace(PLACEHOLDERS[0], dead)  # the first pick refuses the connection
    for placeholder in PLACEHOLDERS[1:]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.label = placeholder  # type: ignore[attr-defined]
        Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        source = source.replace(placeholder, f"127.0.0.1:{server.server_address[1]}")
    namespace: dict[str, object] = {}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, "README.md quickstart", "exec"), namespace)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert "'path': '/orders/7'" in out.getvalue()
    assert "127.0.0.1:8002" in out.getvalue()  # served by the next instance
    lb = namespace["lb"]
    stats = lb.stats()  # type: ignore[attr-defined]
    assert stats[dead].failed == 1 and stats[dead].ejected


def test_the_quickstart_names_the_service_when_every_instance_is_down() -> None:
    httpx = pytest.importorskip("httpx")
    source = quickstart()
    for placeholder in PLACEHOLDERS:
        source = source.replace(placeholder, _closed_port())
    with pytest.raises(httpx.ConnectError, match=r"service 'orders': all 3 endpoints tried"):
        exec(compile(source, "README.md quickstart", "exec"), {})


def test_closed_ports_refuse() -> None:  # what the tests above rely on
    host, port = _closed_port().split(":")
    with socket.socket() as probe, pytest.raises(OSError):
        probe.settimeout(2)
        probe.connect((host, int(port)))
