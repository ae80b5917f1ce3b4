"""A signature screen: refuse requests that carry well-known attack strings.

Each field of the request (path, query, header values, a body prefix) is *normalised* as a WAF
does before matching (the OWASP Core Rule Set's transformations ``t:urlDecodeUni``,
``t:htmlEntityDecode``, ``t:lowercase``, ``t:normalizePath``, ``t:replaceComments``,
``t:compressWhitespace``): percent-decoding repeated up to three times (double and triple
encoding), HTML entities, NUL removal, lower case, for paths ``\\`` to ``/`` and collapsed ``//``
and ``/./`` (``..`` is kept: it is what the traversal rule looks for), SQL comments ``/*...*/`` to
a space, runs of whitespace to one space, and Log4j lookups that only spell letters
(``${lower:j}``, ``${::-j}``, ``${env:X:-j}``) resolved, so ``${${lower:j}ndi:`` reads ``${jndi:``.

Matching is a two-stage regex set: every :class:`Signature` names literal *triggers*, of which
at least one occurs in any text it can match; a field is first probed for each distinct trigger
(``str`` substring search, C speed), and only the signatures whose trigger occurs run their
regex. Benign traffic thus mostly costs the probes. Per request O(fields x (triggers + length)).

The default rules (:data:`DEFAULT_SIGNATURES`) are small and our own, modelled on the CRS
families 942 (SQL injection), 941 (XSS), 930 (path traversal / LFI), 932 (command injection)
and 944 (Java, Log4Shell); their false-positive and detection figures on a benign and an attack
corpus are in ``docs/request-aware.md``. They are a screen, not a full WAF.

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

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from .._errors import InvalidOption
from ..request import Request
from ._verdict import ALLOW, Verdict, check_status
from .rate import BanList

__all__ = ["DEFAULT_SIGNATURES", "FIELDS", "Signature", "SignatureScreen", "normalise"]

#: The request fields a signature can apply to.
FIELDS = frozenset({"path", "query", "headers", "body"})
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_SLASHES = re.compile(r"/{2,}")
_LOOKUP = re.compile(r"\$\{(?:(?:lower|upper|date)\s*:|[^{}$]*?:-)\s*'?([^{}$']*)'?\}")


def normalise(text: str, *, form: bool = False, path: bool = False) -> str:
    """Normalise ``text`` for matching (see the module docstring). O(len(text)) per round.

    ``form``: ``+`` means space (a query string or a form body). ``path``: also apply the path
    rules.
    """
    if form and "+" in text:
        text = unquote_plus(text)
    for _ in range(3):
        if "%" not in text:
            break
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    if "&" in text:
        text = html.unescape(text)
    text = text.replace("\x00", "").lower()
    if path:
        text = _SLASHES.sub("/", text.replace("\\", "/")).replace("/./", "/")
    if "/*" in text:
        text = _COMMENT.sub(" ", text)
    text = " ".join(text.split())  # whitespace runs to one space, as str.isspace() defines it
    if "${" in text:
        for _ in range(16):
            resolved = _LOOKUP.sub(r"\1", text)
            if resolved == text:
                break
            text = resolved
    return text


@dataclass(frozen=True, slots=True, init=False)
class Signature:
    """One rule: ``id``, a regex searched in normalised (lower-case) text, and ``triggers``:
    literals of which at least one occurs in every text the regex can match (lower case).
    ``fields`` limits it to some of :data:`FIELDS`; ``description`` says what it catches."""

    id: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...]
    fields: frozenset[str]
    description: str

    def __init__(
        self,
        id: str,
        pattern: str,
        *,
        triggers: Iterable[str],
        fields: Iterable[str] = FIELDS,
        description: str = "",
    ) -> None:
        if not isinstance(id, str) or not id:
            raise InvalidOption(f"a signature needs a non-empty str id, got {id!r}")
        try:
            compiled = re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise InvalidOption(f"signature {id}: pattern does not compile: {exc}") from None
        trig = tuple(triggers)
        if not trig or not all(isinstance(t, str) and t and t == t.lower() for t in trig):
            raise InvalidOption(f"signature {id}: triggers must be non-empty lower-case strings")
        field_set = frozenset(fields)
        if not field_set or not field_set <= FIELDS:
            raise InvalidOption(
                f"signature {id}: fields must be a non-empty subset of {sorted(FIELDS)}"
            )
        setter = object.__setattr__
        setter(self, "id", id)
        setter(self, "pattern", compiled)
        setter(self, "triggers", trig)
        setter(self, "fields", field_set)
        setter(self, "description", description)


_S = Signature
_SHELL = (
    r"(?:cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|ksh|python[23]?|perl"
    r"|ruby|php|ping|nslookup|rm|chmod|chown|kill|ps|ifconfig|powershell|cmd)"
)
#: The default rule set; ids are stable and appear in verdicts.
DEFAULT_SIGNATURES: tuple[Signature, ...] = (
    _S(
        "sqli-union",
        r"\bunion\b(?:\s+(?:all|distinct))?\s*\(?\s*select\b",
        triggers=("union",),
        description="UNION-based SQL injection (CRS 942190 family)",
    ),
    _S(
        "sqli-tautology",
        r"['\"`] ?\)? ?(?:or|and) ['\"`]?(\w+)['\"`]? ?(?:=|like) ?['\"`]?\1\b",
        triggers=("or ", "and "),
        description="quoted always-true condition: ' or 'a'='a",
    ),
    _S(
        "sqli-numeric-tautology",
        r"(?:or(?<=\bor)|and(?<=\band)) (\d+) ?= ?\1\b",
        triggers=("or ", "and "),
        description="numeric always-true condition: 1 or 1=1",
    ),
    _S(
        "sqli-stacked",
        r";\s*(?:drop\s+(?:table|database)|delete\s+from|insert\s+into"
        r"|update\s+\w+\s+set|truncate\s+table|alter\s+table|shutdown\b|exec(?:ute)?\s+(?:xp|sp)_)",
        triggers=(";",),
        description="stacked query: ; drop table ...",
    ),
    _S(
        "sqli-comment",
        r"['\"`]\s*\)*\s*--(?:\s|$|[;&])",
        triggers=("--",),
        description="quote then SQL comment: admin'--",
    ),
    _S(
        "sqli-time",
        r"\b(?:pg_)?sleep\s*\(\s*\d+(?:\.\d+)?\s*\)|\bbenchmark\s*\(\s*\d+\s*,|\bwaitfor\s+delay\s+['\"]",
        triggers=("sleep", "benchmark", "waitfor"),
        description="time-based blind SQL injection",
    ),
    _S(
        "sqli-probe",
        r"(?:information_schema|sysobjects|pg_catalog|sqlite_master|xp_cmdshell)\b"
        r"|\bload_file\s*\(|\binto\s+(?:out|dump)file\b",
        triggers=(
            "information_schema",
            "sysobjects",
            "pg_catalog",
            "sqlite_master",
            "xp_cmdshell",
            "load_file",
            "outfile",
            "dumpfile",
        ),
        description="SQL catalogue probing and file access",
    ),
    _S("xss-script", r"<\s*/?\s*script\b", triggers=("<",), description="<script> tag"),
    _S(
        "xss-event-handler",
        r"<[^>]*?\bon[a-z]{3,30}\s*=",
        triggers=("<",),
        description="HTML tag with an on...= event handler",
    ),
    _S(
        "xss-tag",
        r"<\s*(?:iframe|object|embed|applet|svg|math|base|meta|frameset)\b",
        triggers=("<",),
        description="tags that run or load active content",
    ),
    _S(
        "xss-js-uri",
        r"(?:java|vb)script\s*:\s*(?:[\w$.]+\s*\(|//|\[|`)",
        triggers=("javascript", "vbscript"),
        description="javascript: URI with code",
    ),
    _S(
        "xss-js-call",
        r"\b(?:alert|prompt|confirm|eval)\s*\(\s*(?:\d|['\"`/]|document|window|this)"
        r"|\bdocument\s*\.\s*(?:cookie|domain|write)\b|\bstring\s*\.\s*fromcharcode\b",
        triggers=("alert", "prompt", "confirm", "eval", "document", "fromcharcode"),
        description="typical XSS payload calls",
    ),
    _S(
        "lfi-traversal",
        r"(?:^|[/\\=\s:'\"])\.{2,}[/\\]|[/\\]\.\.(?:[/\\]|$)",
        triggers=("..",),
        description="directory traversal ../ (CRS 930100 family)",
    ),
    _S(
        "lfi-files",
        r"/etc/(?:passwd|shadow|group|hosts|issue)\b|/proc/(?:self|\d+)/"
        r"|\b(?:boot|win|system)\.ini\b|/\.(?:env|git|svn|htaccess|htpasswd|aws|ssh)(?:/|$|\b)",
        triggers=("/etc/", "/proc/", ".ini", "/."),
        description="well-known sensitive files",
    ),
    _S(
        "rce-chain",
        r"(?:[;|`]|\$\(|&&)\s*" + _SHELL + r"\b(?=\s*$|\s*[;|`&)]|\s+[-/$~.]|\s+\S*(?:/|://))",
        triggers=(";", "|", "`", "$(", "&&"),
        fields=("path", "query", "body"),
        description="shell command after ; | && ` or $(",
    ),
    _S(
        "rce-shell-path",
        r"/bin/(?:ba|z|k|c|da)?sh\b|/usr/bin/(?:env|perl|python\d?)\b"
        r"|\bcmd(?:\.exe)?\s+/c\b|\bpowershell(?:\.exe)?\s+-",
        triggers=("/bin/", "cmd", "powershell"),
        description="shell interpreters by path",
    ),
    _S(
        "rce-shellshock",
        r"(?:^|\n) ?\(\s*\)\s*\{",
        triggers=("{",),
        fields=("headers",),
        description="Shellshock function definition () { (CVE-2014-6271, CRS 932170)",
    ),
    _S(
        "log4shell-jndi",
        r"\$\{\s*jndi\s*:",
        triggers=("${",),
        description="Log4Shell JNDI lookup, also when obfuscated (CVE-2021-44228, CRS 944150)",
    ),
    _S(
        "log4shell-lookup",
        r"\$\{\s*(?:env|sys|java|ctx|main|bundle|docker|k8s|spring|base64"
        r"|marker|jvmrunargs|log4j|web)\s*:|\$\{[^}]{0,40}\$\{",
        triggers=("${",),
        description="Log4j lookups used to exfiltrate or to obfuscate",
    ),
)


class SignatureScreen:
    """Reject requests matching any signature; every rejection lists the rule ids that fired.

    ``signatures``: the rule set (default :data:`DEFAULT_SIGNATURES`). ``body_limit``: bytes of
    the body prefix screened (UTF-8, invalid bytes replaced). ``skip_headers``: header names not
    screened (e.g. a signed token). ``bans``: a :class:`~balancekit.guard.BanList` that gets a
    strike for every rejection. Rejections have ``status`` (403). Stateless and thread-safe.
    """

    def __init__(
        self,
        signatures: Iterable[Signature] = DEFAULT_SIGNATURES,
        *,
        body_limit: int = 4096,
        skip_headers: Iterable[str] = (),
        bans: BanList | None = None,
        status: int = 403,
    ) -> None:
        rules = tuple(signatures)
        if not all(isinstance(rule, Signature) for rule in rules):
            raise InvalidOption("signatures must be Signature objects")
        if len({rule.id for rule in rules}) != len(rules):
            raise InvalidOption("signature ids must be unique")
        if not isinstance(body_limit, int) or isinstance(body_limit, bool) or body_limit < 0:
            raise InvalidOption(f"body_limit must be an int >= 0, got {body_limit!r}")
        if bans is not None and not isinstance(bans, BanList):
            raise InvalidOption(f"bans must be a BanList or None, got {bans!r}")
        self._rules = rules
        self._order = {rule.id: index for index, rule in enumerate(rules)}
        self._body_limit = body_limit
        self._skip = frozenset(name.lower() for name in skip_headers)
        self._bans = bans
        self._status = check_status(status)
        # Per field: (trigger, rules having it) pairs, each trigger once, rules in rule order.
        self._probes: dict[str, tuple[tuple[str, tuple[Signature, ...]], ...]] = {}
        for field in FIELDS:
            by_trigger: dict[str, list[Signature]] = {}
            for rule in rules:
                if field in rule.fields:
                    for trigger in rule.triggers:
                        by_trigger.setdefault(trigger, []).append(rule)
            self._probes[field] = tuple((t, tuple(rs)) for t, rs in by_trigger.items())

    @property
    def signatures(self) -> tuple[Signature, ...]:
        """The rules, in order."""
        return self._rules

    def fields(self, request: Request) -> list[tuple[str, str]]:
        """The normalised (field, text) pairs that are screened; useful to debug a rule."""
        out = [("path", normalise(request.path, path=True))]
        if request.raw_query:
            out.append(("query", normalise(request.raw_query, form=True)))
        values = [v for k, v in request.headers.multi_items() if k.lower() not in self._skip]
        if values:
            out.append(("headers", "\n".join(normalise(v) for v in values)))
        if request.body and self._body_limit:
            body = request.body[: self._body_limit].decode("utf-8", "replace")
            kind = request.headers.get("content-type", "")
            out.append(("body", normalise(body, form=kind.startswith("application/x-www-form"))))
        return out

    def scan_text(self, field: str, text: str) -> list[str]:
        """Ids of the rules for ``field`` that match already-normalised ``text``."""
        hits: list[str] = []
        tried: set[str] = set()
        for trigger, rules in self._probes[field]:
            if trigger in text:
                for rule in rules:
                    if rule.id not in tried:
                        tried.add(rule.id)
                        if rule.pattern.search(text) is not None:
                            hits.append(rule.id)
        return hits

    def scan(self, request: Request) -> tuple[str, ...]:
        """Ids of every rule that matches some field, in rule order (``()`` when clean)."""
        found: set[str] = set()
        for field, text in self.fields(request):
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
