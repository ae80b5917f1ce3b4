"""The package says what it is: its version (from the installed metadata) and its licence."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import metadata, version
from pathlib import Path

import pytest

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


ROOT = Path(__file__).resolve().parents[1]


def _built(tmp_path: Path, kind: str) -> Path:
    """Build the sdist or the wheel of this tree into ``tmp_path`` (no network: no isolation)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (e.g. the unpacked sdist itself)")
    import build  # noqa: F401 - the test extra installs it: fail, never skip, without it

    work = tmp_path / "tree"  # build from a copy: setuptools writes egg-info next to the code
    shutil.copytree(
        ROOT,
        work,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "*.egg-info", "build", "dist", "site", ".*_cache", ".hypothesis"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "build", f"--{kind}", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = tmp_path.glob("*.tar.gz" if kind == "sdist" else "*.whl")
    return built


def test_the_sdist_ships_every_tracked_file_so_its_tests_and_docs_run(tmp_path: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    with tarfile.open(_built(tmp_path, "sdist")) as archive:
        shipped = {name.partition("/")[2] for name in archive.getnames()}
    missing = {name for name in tracked if name not in shipped and name != ".gitignore"}
    assert not missing


def test_the_wheel_metadata_has_urls_extras_and_the_licence(tmp_path: Path) -> None:
    with zipfile.ZipFile(_built(tmp_path, "wheel")) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(wheel.read(name))
        files = wheel.namelist()
    assert meta["License-Expression"] == "MIT"
    urls = dict(value.split(", ", 1) for value in meta.get_all("Project-URL", []))
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    extras = set(meta.get_all("Provides-Extra", []))
    assert {"httpx", "requests", "dns", "yaml", "docs", "all", "test"} <= extras
    assert "balancekit/py.typed" in files
    assert not any(n.startswith(("tests/", "docs/")) for n in files)  # the wheel: the package
