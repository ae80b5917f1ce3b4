"""The signature screen's normaliser: every pass is linear in the length of its input.

The transformations are those of a WAF (the OWASP Core Rule Set's ``t:urlDecodeUni``,
``t:htmlEntityDecode``, ``t:lowercase``, ``t:normalizePath``, ``t:replaceComments``,
``t:compressWhitespace``), written so that none can backtrack: comment removal is a
``str.find`` scan (each character is looked at a bounded number of times), and every regex here
is either bounded (``%uXXXX``, ``/{2,}``) or uses possessive quantifiers that never give back
what they consumed (Python 3.11+), so hostile input like ``/*`` or ``${`` repeated costs time
proportional to its size. :func:`views` gives the texts a field is matched in: the normalised
text and, when the input has SQL comments or line breaks, the readings an attacker may rely on
(comment content kept, line breaks kept, ``#``/``--`` line comments removed).
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote, unquote_plus

__all__ = ["normalise", "views"]

_PERCENT_U = re.compile(r"%u([0-9a-fA-F]{4})")  # IIS %uXXXX (CRS t:urlDecodeUni)
_SLASHES = re.compile(r"/{2,}+")
_DOT_SEGMENTS = re.compile(r"/(?:\./)++")
# Tomcat ignores ;parameters in a segment, so /..;x/ is /../ to it; only dot segments lose them
# here (elsewhere the parameter text is screened as it is: it may be reflected).
_PATH_PARAMS = re.compile(r"(?<=/\.\.);[^/]*+|(?<=/\.);[^/]*+")
# ${lower:j} ${upper:j} ${date:'j'} ${anything:-j} -> j (Log4j lookups that only spell letters)
_LOOKUP = re.compile(
    r"\$\{(?:(?:lower|upper|date)\s*+:|(?:[^{}$:]|:(?!-))*+:-)\s*+'?+([^{}$']*+)'?\}"
)
_VERSION = "0123456789"


def _decode(text: str, form: bool) -> str:
    if form and "+" in text:
        text = unquote_plus(text)
    for _ in range(3):  # double and triple encoding
        if "%" not in text:
            break
        decoded = unquote(_PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), text))
        if decoded == text:
            break
        text = decoded
    if "&" in text:
        text = html.unescape(text)
    return text.replace("\x00", "").lower()


def _path(text: str) -> str:
    text = text.replace("\\", "/")
    if ";" in text:
        text = _PATH_PARAMS.sub("", text)
    return _DOT_SEGMENTS.sub("/", _SLASHES.sub("/", text))


def strip_block_comments(text: str) -> str:
    """``/* ... */`` to a space; a MySQL versioned comment ``/*!50000 x */`` keeps ``x`` (MySQL
    runs it). An unterminated ``/*`` is kept. One forward scan: O(len(text))."""
    out: list[str] = []
    start = 0
    while True:
        open_at = text.find("/*", start)
        if open_at < 0:
            break
        close_at = text.find("*/", open_at + 2)
        if close_at < 0:
            break  # no later comment can be closed either
        out.append(text[start:open_at])
        inner = text[open_at + 2 : close_at]
        out.append(" " + inner[1:].lstrip(_VERSION) + " " if inner.startswith("!") else " ")
        start = close_at + 2
    out.append(text[start:])
    return "".join(out)


def _lines(text: str) -> list[str]:
    return text.replace("\r", "\n").split("\n")


def _strip_line_comment(line: str) -> str:
    cut = min((i for i in (line.find("#"), line.find("--")) if i >= 0), default=len(line))
    return line[:cut]


def _lookups(text: str) -> str:
    if "${" in text:
        for _ in range(16):
            resolved = _LOOKUP.sub(r"\1", text)
            if resolved == text:
                break
            text = resolved
    return text


def _compress(text: str) -> str:
    return " ".join(text.split())  # whitespace runs to one space, as str.isspace() defines it


def views(text: str, *, form: bool = False, path: bool = False) -> list[str]:
    """The texts ``text`` is matched in; the first is :func:`normalise`'s. O(len(text))."""
    text = _decode(text, form)
    if path:
        text = _path(text)
    uncommented = strip_block_comments(text) if "/*" in text else text
    out = [_lookups(_compress(uncommented))]
    if uncommented is not text:
        out.append(_lookups(_compress(text)))  # HTML or shell do not know SQL comments
    if "\n" in text or "\r" in text:
        lines = _lines(uncommented)
        out.append("\n".join(filter(None, map(_compress, lines))))  # line breaks kept
        if "#" in uncommented or "--" in uncommented:
            out.append(_compress(" ".join(map(_strip_line_comment, lines))))
    return out


def normalise(text: str, *, form: bool = False, path: bool = False) -> str:
    """Normalise ``text`` for matching (see the module docstring). O(len(text)).

    ``form``: ``+`` means space (a query string or a form body). ``path``: also apply the path
    rules (``\\`` to ``/``, ``//`` and ``/./`` collapsed, ``;parameters`` dropped, ``..`` kept).
    """
    return views(text, form=form, path=path)[0]
