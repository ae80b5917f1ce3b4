"""Issue 15: the compiled build's counts (``state.n_selected += 1``, ...) are atomic only where
they are compiled, and every hot module switches on one flag, :data:`balancekit._state.NATIVE`
(whether ``_state`` is compiled), not on its own. So every module that counts in a native part
must be in ``setup.py``'s ``COMPILED`` list: a module left out would run ``+= 1`` as bytecode
(the GIL may switch between the read and the write: lost counts, negative ``in_flight``) while
the flag says compiled. A guard: it fails when a counting module is dropped from the list
(checked by taking ``strategies/round_robin`` out of it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import balancekit as bk
from tests.test_compiled import compiled_modules

SRC = Path(bk.__file__).resolve().parent
NATIVE_PARTS = frozenset({"n_selected", "n_released", "n_failed", "n_cancelled", "_turns"})


def _counts_natively(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.AugAssign):
            targets = [node.target]
        elif isinstance(node, ast.Assign) and not (
            isinstance(node.value, ast.Constant) and node.value.value == 0  # the initial 0
        ):
            targets = node.targets
        if any(isinstance(t, ast.Attribute) and t.attr in NATIVE_PARTS for t in targets):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "take"
            and isinstance(node.func.value, ast.Name)
            and "NATIVE_TOKENS" in node.func.value.id
        ):
            return True
    return False


def test_every_module_counting_in_a_native_part_is_compiled() -> None:
    counting = sorted(
        "balancekit." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        for path in SRC.rglob("*.py")
        if _counts_natively(ast.parse(path.read_text(encoding="utf-8")))
    )
    assert "balancekit.strategies.round_robin" in counting  # the scan finds them
    assert sorted(set(counting) - set(compiled_modules())) == []
