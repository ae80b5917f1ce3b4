"""A signature screen: refuse requests that carry well-known attack strings.

Each field of the request (path, query, header values, a body prefix) is *normalised* as a WAF
does before matching (the OWASP Core Rule Set's transformations ``t:urlDecodeUni``,
``t:htmlEntityDecode``, ``t:lowercase``, ``t:normalizePath``, ``t:replaceComments``,
``t:compressWhitespace``): percent-decoding (also IIS ``%uXXXX``) repeated up to three times
(double and triple encoding), HTML entities, NUL removal, lower case, for paths ``\\`` to ``/``,
collapsed ``//`` and ``/./``, ``;parameters`` of dot segments dropped (``/..;x/`` is ``/../`` to
Tomcat; ``..`` is kept: it is what the
traversal rule looks for), SQL comments ``/*...*/`` to a space (a MySQL versioned comment
``/*!x*/`` to its content), runs of whitespace to one space, and Log4j lookups that only spell
letters (``${lower:j}``, ``${::-j}``, ``${env:X:-j}``) resolved, so ``${${lower:j}ndi:`` reads
``${jndi:``. When the text has comments or line breaks, the rules also see it with comments
kept, with line breaks kept, and with ``#``/``--`` line comments removed (see ``_normalise``).

Matching is a two-stage regex set: every :class:`Signature` names literal *triggers*, of which
at least one occurs in any text it can match; a field is first probed for each distinct trigger
(``str`` substring search, C speed), and only the signatures whose trigger occurs run their
regex. Benign traffic thus mostly costs the probes.

**Linear time, bounded input.** Every normalisation pass and every default rule is linear in
the text (see ``_normalise`` and ``_default_rules``), and the text is bounded per field as
ModSecurity bounds it (``SecRequestBodyLimit``, ``SecArgumentsLimit``): at most
``field_limit`` characters of the path, the query and each header value, and ``body_limit``
bytes of the body. A path, query or header value longer than ``field_limit`` is rejected with
rule id ``screen-oversize`` (``oversize="reject"``, the default, like
``SecRequestBodyLimitAction Reject``) or screened on its first ``field_limit`` characters
(``oversize="truncate"``, like ``ProcessPartial``). The body is always screened on its first
``body_limit`` bytes (a :class:`~balancekit.Request` holds a body *prefix*). Per request:
O(fields x triggers + total screened length).

The default rules (:data:`DEFAULT_SIGNATURES`) are small and our own, modelled on the CRS
families 942 (SQL injection), 941 (XSS), 930 (path traversal / LFI), 932 (command injection)
and 944 (Java, Log4Shell); their detection and false-positive rates, on the CRS regression
tests and on our own corpus, are in ``docs/request-aware.md``. They are a screen, not a WAF.

>>> import balancekit as bk
>>> from balancekit.guard import SignatureScreen
>>> screen = SignatureScreen()
>>> screen.check(bk.Request(path="/search", query="q=O%27Brien+%26+sons")).allowed
True
>>> screen.check(bk.Request(headers={"User-Agent": "${${lower:j}ndi:ldap://x/a}"})).rule_ids
('log4shell-jndi',)
>>> screen.scan(bk.Request(path="/files/%252e%252e%252fetc%252fpasswd"))
('lfi-traversal', 'lfi-files')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from .._errors import InvalidOption
from .._options import describe
from ..request import Request
from ._collection import collection
from ._default_rules import DEFAULT_SIGNATURES
from ._normalise import normalise, views
from ._signature import FIELDS, Signature
from ._verdict import ALLOW, Verdict, check_status
from .rate import BanList

__all__ = [
    "DEFAULT_SIGNATURES",
    "FIELDS",
    "OVERSIZE_RULE",
    "Signature",
    "SignatureScreen",
    "normalise",
]

#: The rule id of a rejection for a field longer than ``field_limit``.
OVERSIZE_RULE = "screen-oversize"
# Letters from most to least common in English text: a trigger is gated by its rarest character.
_COMMON = " etaoinsrhldcumfpgwybvkxjqz0123456789"
_GATED = 64  # texts at least this long are probed through the character gate
_SUBSUME_MAX = 512  # drop subsumed triggers only up to this many (the check is quadratic)
_MAX_LIMIT = 1 << 24  # 16 MiB: a limit, not a promise to screen that much quickly


def _rarity(char: str) -> int:
    """Rank of ``char`` from rare (non-alphanumeric: 0) to common (``_COMMON`` order)."""
    index = _COMMON.find(char)
    return len(_COMMON) - index if index >= 0 else 0


class SignatureScreen:
    """Reject requests matching any signature; every rejection lists the rule ids that fired.

    ``signatures``: the rule set (default :data:`DEFAULT_SIGNATURES`). ``body_limit``: bytes of
    the body prefix screened (UTF-8, invalid bytes replaced; 0: the body is not screened).
    ``field_limit``: characters screened of the path, the query and each header value;
    ``oversize``: what a longer one gets, ``"reject"`` (rule id ``screen-oversize``) or
    ``"truncate"`` (its first ``field_limit`` characters are screened). ``skip_headers``: a
    collection of header names not screened (e.g. a signed token). ``bans``: a
    :class:`~balancekit.guard.BanList` that gets a strike for every rejection. Rejections have
    ``status`` (403). Stateless and thread-safe.
    """

    def __init__(
        self,
        signatures: Iterable[Signature] = DEFAULT_SIGNATURES,
        *,
        body_limit: int = 4096,
        field_limit: int = 8192,
        oversize: Literal["reject", "truncate"] = "reject",
        skip_headers: Iterable[str] = (),
        bans: BanList | None = None,
        status: int = 403,
    ) -> None:
        rules = collection("signatures", signatures)
        if not all(isinstance(rule, Signature) for rule in rules):
            raise InvalidOption("signatures must be Signature objects")
        if len({rule.id for rule in rules}) != len(rules):
            raise InvalidOption("signature ids must be unique")
        for name, value, low in (("body_limit", body_limit, 0), ("field_limit", field_limit, 1)):
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not low <= value <= _MAX_LIMIT
            ):
                raise InvalidOption(
                    f"{name} must be an int from {low} to {_MAX_LIMIT}, got {describe(value)}"
                )
        if oversize not in ("reject", "truncate"):
            raise InvalidOption(
                f"oversize must be 'reject' or 'truncate', got {describe(oversize)}"
            )
        skip = collection("skip_headers", skip_headers)
        if not all(isinstance(name, str) for name in skip):
            raise InvalidOption(f"skip_headers must be header names (str), got {describe(skip)}")
        if bans is not None and not isinstance(bans, BanList):
            raise InvalidOption(f"bans must be a BanList or None, got {describe(bans)}")
        self._rules = rules
        self._order = {rule.id: index for index, rule in enumerate(rules)}
        self._order.setdefault(OVERSIZE_RULE, -1)
        self._body_limit = body_limit
        self._field_limit = field_limit
        self._truncate = oversize == "truncate"
        self._skip = frozenset(name.lower() for name in skip)
        self._bans = bans
        self._status = check_status(status)
        # Per field: the distinct triggers, and for each the indices of the rules having it. A
        # trigger that contains another whose rules include all of its own is dropped: when it
        # occurs, so does the shorter one, which runs the same rules.
        self._probes: dict[str, tuple[tuple[str, ...], tuple[frozenset[int], ...]]] = {}
        # Per field: (character, indices of the triggers whose rarest character it is). A long
        # text is probed only for the triggers whose gate character it contains (one set()).
        self._gates: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}
        for field in FIELDS:
            owners: dict[str, set[int]] = {}
            for index, rule in enumerate(rules):
                if field in rule.fields:
                    for trigger in rule.triggers:
                        owners.setdefault(trigger, set()).add(index)
            kept = list(owners)
            if len(kept) <= _SUBSUME_MAX:  # quadratic in the triggers: only for small sets
                kept = [
                    t
                    for t, mine in owners.items()
                    if not any(o != t and o in t and mine <= owners[o] for o in owners)
                ]
            self._probes[field] = (tuple(kept), tuple(frozenset(owners[t]) for t in kept))
            gates: dict[str, list[int]] = {}
            for k, trigger in enumerate(kept):
                gates.setdefault(min(trigger, key=_rarity), []).append(k)
            self._gates[field] = tuple((char, tuple(ks)) for char, ks in gates.items())

    @property
    def signatures(self) -> tuple[Signature, ...]:
        """The rules, in order."""
        return self._rules

    def _bounded(self, text: str) -> str | None:
        """``text`` within ``field_limit``, its prefix (truncate), or None (reject)."""
        if len(text) <= self._field_limit:
            return text
        return text[: self._field_limit] if self._truncate else None

    def _texts(self, request: Request) -> tuple[list[tuple[str, str]], bool]:
        """Every (field, text) pair a rule sees, and whether some field was oversize."""
        out: list[tuple[str, str]] = []
        oversize = False
        path = self._bounded(request.path)
        query = self._bounded(request.raw_query) if request.raw_query else ""
        oversize = path is None or query is None
        out += [("path", text) for text in views(path or "", path=True)]
        if query:
            out += [("query", text) for text in views(query, form=True)]
        header_views: list[list[str]] = []
        for name, value in request.headers.multi_items():
            if name.lower() in self._skip:
                continue
            bounded = self._bounded(value)
            if bounded is None:
                oversize = True
            else:
                header_views.append(views(bounded))
        if header_views:
            out.append(("headers", "\n".join(v[0] for v in header_views)))
            extra = [text for v in header_views for text in v[1:]]
            if extra:
                out.append(("headers", "\n".join(extra)))
        if request.body and self._body_limit:
            body = request.body[: self._body_limit].decode("utf-8", "replace")
            kind = request.headers.get("content-type", "").lower()
            form = kind.startswith("application/x-www-form-urlencoded")
            out += [("body", text) for text in views(body, form=form)]
        return out, oversize

    def fields(self, request: Request) -> list[tuple[str, str]]:
        """The normalised (field, text) pairs that are screened; useful to debug a rule. A
        field may appear more than once (its other readings: comments kept, lines kept, ...)."""
        return self._texts(request)[0]

    def scan_text(self, field: str, text: str) -> list[str]:
        """Ids of the rules for ``field`` that match already-normalised ``text``."""
        triggers, owners = self._probes[field]
        if len(text) < _GATED:
            present = [owners[k] for k, trigger in enumerate(triggers) if trigger in text]
        else:
            chars = set(text)
            present = [
                owners[k]
                for char, ks in self._gates[field]
                if char in chars
                for k in ks
                if triggers[k] in text
            ]
        if not present:
            return []
        rules = self._rules
        return [
            rules[index].id
            for index in sorted(frozenset().union(*present))
            if rules[index].pattern.search(text) is not None
        ]

    def scan(self, request: Request) -> tuple[str, ...]:
        """Ids of every rule that matches some field, in rule order (``()`` when clean);
        ``screen-oversize`` first when a field is over ``field_limit`` and ``oversize`` is
        ``"reject"``."""
        texts, oversize = self._texts(request)
        found: set[str] = {OVERSIZE_RULE} if oversize else set()
        for field, text in texts:
            found.update(self.scan_text(field, text))
        return tuple(sorted(found, key=self._order.__getitem__))

    def check(self, request: Request) -> Verdict:
        """Reject a request that matches any rule; the verdict names every rule that fired."""
        ids = self.scan(request)
        if not ids:
            return ALLOW
        reason = "matched attack signatures: " + ", ".join(ids)
        banned = self._bans.strike(request, reason) if self._bans is not None else None
        return Verdict.reject(reason, status=self._status, rule_ids=ids, banned_until=banned)
