"""The docs run: README examples and every docstring example are executed, so they cannot rot."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import balancekit

ROOT = Path(__file__).resolve().parents[1]
# Optional extras: a module is skipped only when the extra it needs is not installed.
OPTIONAL = {"httpx", "requests", "dns", "limits", "grpc"}


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
