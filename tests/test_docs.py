"""The docs run: README examples and every docstring example are executed, so they cannot rot."""

from __future__ import annotations

import doctest
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import balancekit

ROOT = Path(__file__).resolve().parents[1]
# Optional extras: a module is skipped only when the extra it needs is not installed.
OPTIONAL = {
    "httpx",
    "requests",
    "dns",
    "limits",
    "aiohttp",
    "grpc",
    "opentelemetry",
    "prometheus_client",
}


def modules() -> list[str]:
    names = ["balancekit"]
    for info in pkgutil.walk_packages(balancekit.__path__, "balancekit."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", modules())
def test_docstring_examples(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra that is not installed
        if exc.name and exc.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs the optional {exc.name}")
        raise
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


MARKDOWN = ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", MARKDOWN)
def test_markdown_examples(path: str) -> None:
    file = ROOT / path if path == "README.md" else ROOT / "docs" / path
    result = doctest.testfile(
        str(file),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.failed == 0


# A fenced python block that is no doctest runs as a script (tests/_doc_servers.py: against
# loopback servers standing in for 127.0.0.1:8001-8003). One that cannot run here says why in
# an HTML comment on the line before it: <!-- not run: needs a DNS server -->.
FENCE = re.compile(
    r"^(?:<!-- not run: (?P<reason>[^\n]*?) -->\n)?```python\n(?P<body>.*?)^```", re.S | re.M
)


def code_blocks(file: Path) -> tuple[list[tuple[int, str]], list[str]]:
    """The page's runnable blocks (line, source) and the reasons given for those not run."""
    text = file.read_text()
    blocks, reasons = [], []
    for match in FENCE.finditer(text):
        body = match.group("body")
        if body.lstrip().startswith(">>>"):
            continue  # a doctest: test_markdown_examples runs it
        if match.group("reason") is not None:
            reasons.append(match.group("reason"))
            continue
        blocks.append((text.count("\n", 0, match.start("body")) + 1, body))
    return blocks, reasons


def _page(path: str) -> Path:
    return ROOT / path if path == "README.md" else ROOT / "docs" / path


@pytest.mark.parametrize("path", [p for p in MARKDOWN if code_blocks(_page(p))[0]])
def test_markdown_code_blocks_run(path: str, tmp_path: Path) -> None:
    blocks, _ = code_blocks(_page(path))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_doc_servers.py")), path],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # a block that writes files writes them here
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(f"ran {path}:") == len(blocks)


@pytest.mark.parametrize("path", MARKDOWN)
def test_every_block_not_run_says_why(path: str) -> None:
    _, reasons = code_blocks(_page(path))
    assert all(len(reason) > 10 for reason in reasons)
