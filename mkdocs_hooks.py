"""MkDocs hook: show doctest examples as Python console code, on pages and in docstrings.

The docs and docstrings write examples as plain doctest paragraphs (``>>> ...`` lines and their
output, ended by a blank line), which doctest runs as tests. Markdown would render them as
nested block quotes, and read an output such as ``['a:1', 'b:1']`` as a reference link. This
preprocessor fences each such paragraph outside a code block as ```` ```pycon ````; it runs for
the pages and, through mkdocstrings (which reuses the configured extensions), the docstrings.
"""

from __future__ import annotations

import re
from typing import Any

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

_FENCE = re.compile(r"^\s*(```|~~~)")
_PROMPT = re.compile(r"^(\s*)>>> ")


class _DoctestFences(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        fenced = False
        example_indent: str | None = None
        for line in lines:
            if example_indent is not None:
                if line.strip():
                    out.append(
                        line[len(example_indent) :] if line.startswith(example_indent) else line
                    )
                    continue
                out.append(f"{example_indent}```")
                example_indent = None
            if _FENCE.match(line):
                fenced = not fenced
            elif not fenced and (prompt := _PROMPT.match(line)):
                example_indent = prompt.group(1)
                out.append(f"{example_indent}```pycon")
                out.append(line[len(example_indent) :])
                continue
            out.append(line)
        if example_indent is not None:
            out.append(f"{example_indent}```")
        return out


class DoctestFences(Extension):
    """Registers the preprocessor before the fenced-code one."""

    def extendMarkdown(self, md: Markdown) -> None:  # Python-Markdown names it so
        md.preprocessors.register(_DoctestFences(md), "doctest_fences", 40)


def on_config(config: Any) -> Any:
    config.markdown_extensions.append(DoctestFences())
    return config
