"""Issue 15: the package reads a lease's fields by name, never by position.

Since issue 15 the Lease is a class with slots (native when compiled), not a NamedTuple: in the
pure build ``lease[0]`` is a Python ``__getitem__`` that builds the triple (66 ns here, against
38 ns for ``lease.endpoint`` and 14 ns for the tuple's ``lease[0]`` on main). ``acquire``,
``Retry`` and the integrations read ``.endpoint``/``.address``; the simulator is left out (it
drives balancers written for tests, which may return any triple).
"""

from __future__ import annotations

import ast
from pathlib import Path

import balancekit

PACKAGE = Path(balancekit.__file__).resolve().parent
LEASE_NAMES = frozenset({"lease", "step"})


def _positional_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in LEASE_NAMES
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
        ):
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reads_a_lease_by_position() -> None:
    modules = [p for p in PACKAGE.rglob("*.py") if "sim" not in p.relative_to(PACKAGE).parts]
    assert len(modules) > 50  # the package's sources are there (also beside compiled modules)
    found = [read for path in sorted(modules) for read in _positional_reads(path)]
    assert found == []
