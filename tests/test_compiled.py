"""The optional compiled build (issue 15): ``balancekit.compiled`` and ``BALANCEKIT_PURE``.

The suites themselves run against the compiled build in CI (``.ci/run``); these tests check the
switch between the builds, in child processes so the import happens fresh.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import balancekit as bk

SRC = Path(bk.__file__).resolve().parent
SETUP = Path(__file__).resolve().parents[1] / "setup.py"


def compiled_modules() -> list[str]:
    """The modules ``setup.py`` compiles (its ``COMPILED`` list), as dotted names."""
    for node in ast.walk(ast.parse(SETUP.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets
        ):
            names = [  # the tuple the list comprehension runs over
                item.value
                for inner in ast.walk(node.value)
                if isinstance(inner, ast.Tuple)
                for item in inner.elts
                if isinstance(item, ast.Constant) and isinstance(item.value, str)
            ]
            return ["balancekit." + name.replace("/", ".") for name in names]
    raise AssertionError("setup.py has no COMPILED list")


PROBE = (
    "import sys, balancekit as bk\n"
    "from importlib.machinery import ExtensionFileLoader\n"
    "lb = bk.RoundRobin(['a:1', 'b:1'])\n"
    "lb.release(lb.select(), ok=True, elapsed=0.001)\n"
    "native = sorted(name for name, m in sys.modules.items() if name.startswith('balancekit')\n"
    "                and isinstance(getattr(m, '__loader__', None), ExtensionFileLoader))\n"
    "print(bk.compiled, native)\n"
)


def _run(path: Path, pure: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "BALANCEKIT_PURE"}
    if pure is not None:
        env["BALANCEKIT_PURE"] = pure
    env["PYTHONPATH"] = str(path)
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )


def test_compiled_is_a_bool_saying_whether_the_core_is_an_extension_module() -> None:
    assert isinstance(bk.compiled, bool)
    loader = bk._core.__loader__
    assert bk.compiled == isinstance(loader, importlib.machinery.ExtensionFileLoader)


@pytest.fixture(scope="module")
def tree_with_a_broken_extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package with a file named like a compiled ``_core`` beside ``_core.py``:
    Python's import system prefers it, so importing it fails unless the source is chosen."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(
        SRC, root / "balancekit", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd")
    )
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (root / "balancekit" / f"_core{suffix}").write_bytes(b"not a shared object")
    return root


def test_balancekit_pure_loads_every_module_from_source(
    tree_with_a_broken_extension: Path,
) -> None:
    done = _run(tree_with_a_broken_extension, "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "[]"]


def test_without_balancekit_pure_the_extension_module_is_preferred(
    tree_with_a_broken_extension: Path,
) -> None:
    for pure in (None, "", "0"):  # unset, empty or "0": not asked for
        done = _run(tree_with_a_broken_extension, pure)
        assert done.returncode != 0
        assert "ImportError" in done.stderr


def test_the_child_loads_the_same_build_as_this_process() -> None:
    done = _run(SRC.parent, None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == str(bk.compiled)


def test_every_module_setup_py_compiles_is_an_extension_module_exactly_when_compiled() -> None:
    names = compiled_modules()
    assert "balancekit._core" in names and "balancekit.strategies.least" in names
    for name in names:
        module = importlib.import_module(name)
        loader = module.__loader__
        assert isinstance(loader, importlib.machinery.ExtensionFileLoader) == bk.compiled, name


def test_balancekit_pure_in_this_tree_loads_no_extension_module() -> None:
    """Against the compiled build (CI's second run) this is the real switch: every module from
    its ``.py`` source although the extension modules sit beside them."""
    done = _run(SRC.parent, "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "[]"]


def test_an_interpreted_subclass_of_the_base_class_works() -> None:
    """Custom strategies subclass BalancerBase (allow_interpreted_subclasses when compiled)."""

    class First(bk.BalancerBase):
        def __init__(self, endpoints: list[str]) -> None:
            super().__init__(endpoints)
            self._states: list[object] = []
            self._start()

        def _rebuild(self, eligible: list[object]) -> None:  # type: ignore[override]
            self._states = list(eligible)

        def _pick(self, context: object, avoid: object) -> object:  # type: ignore[override]
            return self._states[0]

    lb = First(["a:1", "b:1"])
    with lb.acquire() as endpoint:
        assert endpoint.address == "a:1"
    assert lb.stats()["a:1"].succeeded == 1
