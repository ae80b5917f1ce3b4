"""Generated blocks in the docs: ``<!-- generated: NAME -->`` ... ``<!-- end: NAME -->``.

Shared by the scripts that write figures into docs pages (regen_simulator_docs.py,
regen_fleet_docs.py), so a page's generated parts cannot drift from the code that makes them.
"""

from __future__ import annotations

import re


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {re.escape(name)} -->\n)(.*?)(\n<!-- end: {re.escape(name)} -->)",
        re.DOTALL,
    )


def replace_block(document: str, name: str, body: str) -> str:
    """``document`` with the block ``name`` replaced by ``body``; ValueError if not exactly one."""
    pattern = _pattern(name)
    if len(pattern.findall(document)) != 1:
        raise ValueError(f"the page must have exactly one generated block {name!r}")
    return pattern.sub(lambda match: match.group(1) + body + match.group(3), document)


def block(document: str, name: str) -> str:
    """The current body of block ``name`` in ``document``; ValueError if it has none."""
    found = _pattern(name).search(document)
    if found is None:
        raise ValueError(f"no generated block {name!r}")
    return found.group(2)
