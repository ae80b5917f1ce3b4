"""Which build of balancekit is loaded: the mypyc-compiled modules or the pure-Python reference.

A compiled install (``BALANCEKIT_COMPILE=1``, see ``setup.py``) puts an extension module beside
each compiled ``.py`` file; Python's import system prefers the extension. With the environment
variable ``BALANCEKIT_PURE`` set (to anything but ``""`` or ``"0"``) before ``balancekit`` is
first imported, :func:`prefer_source` puts a finder first on :data:`sys.meta_path` that loads
every ``balancekit.*`` module from its ``.py`` source, so the pure-Python reference runs even
where the compiled modules are installed. This module is never compiled itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import (
    SOURCE_SUFFIXES,
    ExtensionFileLoader,
    FileFinder,
    ModuleSpec,
    SourceFileLoader,
)
from types import ModuleType

__all__ = ["PURE_ENV", "SourceOnlyFinder", "is_compiled", "prefer_source", "pure_requested"]

#: The environment variable that forces the pure-Python modules at import.
PURE_ENV = "BALANCEKIT_PURE"


def pure_requested() -> bool:
    """Whether ``BALANCEKIT_PURE`` asks for the pure-Python modules."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


class SourceOnlyFinder(MetaPathFinder):
    """Finds ``balancekit.*`` submodules as ``.py`` sources only (never an extension module)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if not fullname.startswith("balancekit.") or not path:
            return None
        for entry in path:
            spec = FileFinder(entry, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(fullname)
            if spec is not None:
                return spec
        return None  # not a source module: the ordinary finders decide


def prefer_source() -> None:
    """Load every ``balancekit`` submodule imported from now on from its source (idempotent)."""
    if not any(isinstance(finder, SourceOnlyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceOnlyFinder())


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a compiled extension module."""
    return isinstance(getattr(module, "__loader__", None), ExtensionFileLoader)
