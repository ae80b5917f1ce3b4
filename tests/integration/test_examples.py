"""The examples run: each starts its own loopback servers and must exit cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "name", ["httpx_sync.py", "httpx_async.py", "requests_session.py", "aiohttp_session.py"]
)
def test_example_runs(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "served:" in done.stdout


def test_requests_example_counts_failed_requests(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example's 'failed requests' is counted, not printed as a constant 0."""
    requests = pytest.importorskip("requests")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import requests_session  # examples/requests_session.py

    real_get = requests.Session.get
    calls = []

    def flaky_get(self: object, url: str, **kwargs: object) -> object:
        calls.append(url)
        if len(calls) % 4 == 0:  # every fourth request fails as if every endpoint were down
            raise requests.ConnectionError("all endpoints down")
        return real_get(self, url, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(requests.Session, "get", flaky_get)
    requests_session.main()
    out = capsys.readouterr().out
    assert "| failed requests: 10" in out
