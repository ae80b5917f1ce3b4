"""The path index behind :class:`balancekit.Router` (one per host group); private.

Exact paths in a dict, prefixes in a dict probed only at the lengths that occur, regexes with a
literal prefix indexed under that prefix, and the other regexes in one alternation of named
groups. Every list of rule ids is kept in rule order, so the router can merge candidates and
keep first-match semantics.
"""

from __future__ import annotations

import re

__all__ = ["PathIndex", "RegexSet", "literal_prefix"]

_META = frozenset(".^$*+?{}[]\\|()")


def literal_prefix(pattern: re.Pattern[str]) -> str:
    """The literal text every ``fullmatch`` of ``pattern`` starts with ("" if unsure).

    Conservative: gives up at the first metacharacter, drops a character that a quantifier
    follows, and returns "" for any pattern containing ``|`` or compiled with flags, so a rule
    indexed under this prefix can never be missed. O(len(pattern)).
    """
    text = pattern.pattern
    if pattern.flags != re.UNICODE or "|" in text:
        return ""
    out: list[str] = []
    index = 1 if text.startswith("^") else 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            escaped = text[index + 1 : index + 2]
            if not escaped or escaped.isalnum() or escaped == "_":
                break
            char, step = escaped, 2
        elif char in _META:
            break
        else:
            step = 1
        if text[index + step : index + step + 1] in ("*", "+", "?", "{"):
            break
        out.append(char)
        index += step
    return "".join(out)


class RegexSet:
    """The regex rules of one host group: one alternation for the plain ones, in rule order."""

    __slots__ = ("_combined", "_names", "ids", "patterns")

    def __init__(self, entries: list[tuple[int, re.Pattern[str]]]) -> None:
        self.ids = [rule_id for rule_id, _ in entries]
        self.patterns = [pattern for _, pattern in entries]
        plain = all(p.groups == 0 and p.flags == re.UNICODE for p in self.patterns)
        self._combined = (
            re.compile("|".join(f"(?P<r{i}>{p.pattern})" for i, p in enumerate(self.patterns)))
            if plain and self.patterns
            else None
        )
        self._names = {f"r{i}": i for i in range(len(self.patterns))}

    def next_match(self, path: str, start: int) -> int:
        """Index (into ``ids``) of the first pattern at or after ``start`` that fullmatches
        ``path``, or -1."""
        if start == 0 and self._combined is not None:
            found = self._combined.fullmatch(path)
            return -1 if found is None or found.lastgroup is None else self._names[found.lastgroup]
        for index in range(start, len(self.patterns)):
            if self.patterns[index].fullmatch(path) is not None:
                return index
        return -1


class PathIndex:
    """The rules of one host key, indexed by path."""

    __slots__ = ("_regex_entries", "anypath", "exact", "prefix_lengths", "prefixes", "regex")

    def __init__(self) -> None:
        self.exact: dict[str, list[int]] = {}
        self.prefixes: dict[str, list[int]] = {}
        self.prefix_lengths: tuple[int, ...] = ()
        self.anypath: list[int] = []
        self.regex: RegexSet | None = None
        self._regex_entries: list[tuple[int, re.Pattern[str]]] = []

    def add(
        self, rule_id: int, path: str | None, prefix: str | None, regex: re.Pattern[str] | None
    ) -> None:
        """Index a rule by its path predicate (at most one of the three is given)."""
        if path is not None:
            self.exact.setdefault(path, []).append(rule_id)
        elif prefix is not None:
            self.prefixes.setdefault(prefix, []).append(rule_id)
        elif regex is not None:
            literal = literal_prefix(regex)
            if literal:  # indexed as a prefix; the rule's own check runs the regex
                self.prefixes.setdefault(literal, []).append(rule_id)
            else:
                self._regex_entries.append((rule_id, regex))
        else:
            self.anypath.append(rule_id)

    def freeze(self) -> None:
        self.prefix_lengths = tuple(sorted({len(p) for p in self.prefixes}))
        self.regex = RegexSet(self._regex_entries) if self._regex_entries else None

    def collect(self, path: str, out: list[int]) -> None:
        """Append the ids of non-regex rules whose path predicate holds."""
        if self.anypath:
            out.extend(self.anypath)
        if self.exact:
            ids = self.exact.get(path)
            if ids:
                out.extend(ids)
        size = len(path)
        for length in self.prefix_lengths:
            if length > size:
                break
            ids = self.prefixes.get(path[:length])
            if ids:
                out.extend(ids)
