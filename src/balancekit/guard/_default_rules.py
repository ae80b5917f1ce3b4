"""The default signatures: small, our own, modelled on the OWASP CRS families 942 (SQL
injection), 941 (XSS), 930 (path traversal / LFI), 932 (command injection) and 944 (Java,
Log4Shell). Detection and false-positive rates on the CRS regression tests and on our own
corpus are in docs/request-aware.md.

Every pattern is linear in its input: each quantifier is possessive (``*+``, ``++``: never
gives back), bounded (``{0,40}``), or a lazy scan over a class that excludes the pattern's own
first character (``<[^<>]*?``: a scan from one ``<`` stops at the next). No CRS regex is
copied; tests/request_aware/test_screen_linear.py runs every rule on hostile inputs.
"""

from __future__ import annotations

from ._signature import Signature

__all__ = ["DEFAULT_SIGNATURES"]

_S = Signature
_Q = r"['\"`]"  # a quote that can close a SQL string
_SHELL = (
    r"(?:cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|ksh|python[23]?|perl"
    r"|ruby|php|ping|nslookup|rm|chmod|chown|kill|ps|ifconfig|powershell|cmd|time|echo"
    r"|env|sleep|tftp|telnet|certutil|bitsadmin|busybox)"
)
_CMP = r"(?:[<>]=?|!=|<>|=|\blike\b|\brlike\b|\bregexp\b|\bis\b)"
#: The default rule set; ids are stable and appear in verdicts.
DEFAULT_SIGNATURES: tuple[Signature, ...] = (
    _S(
        "sqli-union",
        r"\bunion\s*+(?:(?:all|distinct|distinctrow)\s*+)?\(*+\s*+select\b",
        triggers=("union",),
        description="UNION-based SQL injection, also with ALL/DISTINCT/DISTINCTROW",
    ),
    _S(
        "sqli-tautology",
        _Q + r" ?\)? ?(?:or|and|\|\||&&) ?['\"`]?(\w++)['\"`]? ?(?:=|like) ?['\"`]?\1\b",
        triggers=("or", "and", "||", "&&"),
        description="quoted always-true condition: ' or 'a'='a",
    ),
    _S(
        "sqli-numeric-tautology",
        r"(?:or(?<=\bor)|and(?<=\band)|\|\|) ?(\d++) ?= ?\1\b",
        triggers=("or", "and", "||"),
        description="numeric always-true condition: 1 or 1=1, '||1=1",
    ),
    _S(
        "sqli-boolean",
        _Q + r"\s*+\)*+\s*+(?:\b(?:x?or|and)\b|\|\||&&)\s*+(?:not\s++)?"
        r"(?:(?:true|false|null)\b\s*+(?:$|--|#|;|/\*|\))"
        r"|\d++\s*+" + _CMP + r"\s*+\d++\b"
        r"|" + _Q + r"\w{0,40}+" + _Q + r"\s*+" + _CMP + r"\s*+" + _Q + ")",
        triggers=("or", "and", "||", "&&"),
        description="quote then a boolean test: admin' or true-- , ' or 2>1--",
    ),
    _S(
        "sqli-stacked",
        r";\s*+(?:drop\s++(?:table|database)|delete\s++from|insert\s++into"
        r"|update\s++\w++\s++set|truncate\s++table|alter\s++table|shutdown\b"
        r"|exec(?:ute)?\s++(?:xp|sp)_|declare\s++@)",
        triggers=(";",),
        description="stacked query: ; drop table ...",
    ),
    _S(
        "sqli-comment",
        _Q + r"\s*+\)*+\s*+--(?:\s|$|[;&-])",
        triggers=("--",),
        description="quote then SQL comment: admin'--",
    ),
    _S(
        "sqli-time",
        r"\b(?:pg_)?sleep\s*+\(\s*+\d++(?:\.\d++)?\s*+\)|\bbenchmark\s*+\(\s*+\d++\s*+,"
        r"|\bwaitfor\s++delay\s++['\"]",
        triggers=("sleep", "benchmark", "waitfor"),
        description="time-based blind SQL injection",
    ),
    _S(
        "sqli-probe",
        r"(?:information_schema|sysobjects|pg_catalog|sqlite_master|xp_cmdshell)\b"
        r"|\bload_file\s*+\(|\binto\s++(?:out|dump)file\b|@@(?:version|datadir|hostname)\b"
        r"|\b(?:database|db_name|schema_name|current_user|session_user|system_user"
        r"|extractvalue|updatexml|group_concat)\s*+\(",
        triggers=(
            "information_schema",
            "sysobjects",
            "pg_catalog",
            "sqlite_master",
            "xp_cmdshell",
            "load_file",
            "outfile",
            "dumpfile",
            "@@",
            "(",
        ),
        description="SQL catalogue probing, file access and error-based extraction",
    ),
    _S("xss-script", r"<\s*+/?\s*+script\b", triggers=("<",), description="<script> tag"),
    _S(
        "xss-event-handler",
        r"<[^<>]*?\bon[a-z]{3,30}\s*+=",
        triggers=("<",),
        description="HTML tag with an on...= event handler",
    ),
    _S(
        "xss-tag",
        r"<\s*+(?:iframe|object|embed|applet|base|meta|frameset|frame)\b",
        triggers=("<",),
        description="tags that run or load active content (not <svg>/<math>: see their handlers)",
    ),
    _S(
        "xss-js-uri",
        r"(?:java|vb)script\s*+:\s*+(?:[\w$.]++\s*+\(|//|\[|`"
        r"|(?:alert|eval|prompt|confirm|window|document|top|self|this|location|fetch)\b)",
        triggers=("javascript", "vbscript"),
        description="javascript: URI with code",
    ),
    _S(
        "xss-js-call",
        r"\b(?:alert|prompt|confirm|eval|settimeout|setinterval)\s*+[(`]\s*+"
        r"(?:\d|['\"`/]|document|window|this|name|location)"
        r"|\bdocument\s*+\)?\s*+(?:\.\s*+|\[\s*+['\"`])(?:cookie|domain|write)\b"
        r"|\bstring\s*+\.\s*+fromcharcode\b",
        triggers=(
            "alert",
            "prompt",
            "confirm",
            "eval",
            "settimeout",
            "setinterval",
            "document",
            "fromcharcode",
        ),
        description="typical XSS payload calls",
    ),
    _S(
        "lfi-traversal",
        r"(?:^|[/\\=\s:'\"])\.{2,}+[/\\]|[/\\]\.\.;?+(?:[/\\]|$)",
        triggers=("..",),
        description="directory traversal ../, ..;/ (CRS 930100 family)",
    ),
    _S(
        "lfi-files",
        r"/etc/(?:passwd|shadow|group|hosts|issue)\b|/proc/(?:self|\d++)/"
        r"|\b(?:boot|win|system)\.ini\b"
        r"|/\.(?:env|git|svn|hg|htaccess|htpasswd|aws|ssh|bash_history|docker|kube|npmrc"
        r"|pgpass|netrc|ds_store)(?![\w-])|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\bwp-config\.php\b",
        triggers=("/etc/", "/proc/", ".ini", "/.", "id_", "wp-config"),
        description="well-known sensitive files (not /.env-guide: the name must end)",
    ),
    _S(
        "lfi-backup",
        r"\.(?:sql|bak|old|swp|backup)(?:\.(?:zip|gz|tgz|tar|7z|rar|bz2))?$",
        triggers=(".sql", ".bak", ".old", ".swp", ".backup"),
        fields=("path",),
        description="backup and dump files requested by path",
    ),
    _S(
        "rce-chain",
        r"(?:[;|`\n]|\$\(|&&)\s*+" + _SHELL + r"\b(?=\s*+$|\s*+[;|`&)\n]|\s++[-/$~.]"
        r"|\s++[^\s/]*+/)",
        triggers=(";", "|", "`", "$(", "&&", "\n"),
        fields=("path", "query", "body"),
        description="shell command after ; | && ` $( or a line break",
    ),
    _S(
        "rce-shell-path",
        r"/bin/(?:ba|z|k|c|da)?sh\b|/usr/bin/(?:env|perl|python\d?)\b"
        r"|\bcmd(?:\.exe)?\s++/c\b|\bpowershell(?:\.exe)?\s++-"
        r"|\b(?:invoke-(?:webrequest|expression|restmethod)|downloadstring|start-process)\b",
        triggers=("/bin/", "cmd", "powershell", "invoke-", "downloadstring", "start-process"),
        description="shell interpreters by path, PowerShell download-and-run",
    ),
    _S(
        "rce-shellshock",
        r"(?:^|[\n=]) ?\(\s*+\)\s*+\{",
        triggers=("{",),
        description="Shellshock function definition () { (CVE-2014-6271)",
    ),
    _S(
        "log4shell-jndi",
        r"\$\{\s*+jndi\s*+:",
        triggers=("${",),
        description="Log4Shell JNDI lookup, also when obfuscated (CVE-2021-44228)",
    ),
    _S(
        "log4shell-lookup",
        r"\$\{[^{}]{0,40}\$\{",
        triggers=("${",),
        description="nested Log4j lookups (obfuscation); a lone ${env:X} is not flagged",
    ),
    _S(
        "java-class",
        r"\bjava\.(?:lang\.(?:runtime|processbuilder|reflect|class|system|thread)"
        r"|io\.\w{0,40}+(?:stream|reader|file)|beans\.|rmi\.)|\bprocessbuilder\b"
        r"|\bgetruntime\s*+\(|\bclass\.module\.classloader|\binvokertransformer\b"
        r"|\borg\.apache\.commons\.collections|(?<![\w+/])ro0ab|\baced0005",
        triggers=(
            "java.",
            "processbuilder",
            "getruntime",
            "class.module",
            "invokertransformer",
            "org.apache.commons",
            "ro0ab",
            "aced0005",
        ),
        description="Java class loading, reflection and serialized objects (CRS 944 family)",
    ),
)
