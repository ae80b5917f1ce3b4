"""The package says what it is: its version (from the installed metadata) and its licence."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import metadata, version

import balancekit as bk


def test_version_is_the_installed_distributions() -> None:
    assert bk.__version__ == version("balancekit")
    assert "__version__" in bk.__all__


def test_the_command_line_prints_the_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "balancekit", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == f"balancekit {bk.__version__}"


def test_metadata_names_the_spdx_licence_and_typed_classifier() -> None:
    meta = metadata("balancekit")
    assert meta["License-Expression"] == "MIT"
    assert "Typing :: Typed" in meta.get_all("Classifier", [])
