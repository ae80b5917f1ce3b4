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
    r"|env|sleep|tftp|telnet|certutil|bitsadmin|busybox|iwr|iex|iwmi|mshta|regedit|wmic"
    r"|rundll32|regsvr32|bcdboot|set|irb|gcc|socat)"
)
# Commands that are also English words: flagged only with an argument that looks like one.
_SHELL_ARGS = (
    r"(?:cd|find|gunzip|zcat|zstdcat|xxd|base64|head|tail|more|less|nl|tac|awk|sed|grep|tar"
    r"|unzip|python3\.\d{1,2}|node|java|ssh|scp|rsync|dig|nmap|column|bridge|sort|uniq|wc"
    r"|strings|od|file|stat|touch|cp|mv|ln|mkdir|dd|openssl|sudo|su|nohup|xargs|crontab"
    r"|systemctl|service|mount|ip|ss|netstat|lsof|who|w|last|history|alias|export|unset)"
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
        triggers=("or ", "and ", "||"),
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
        r"|exec(?:ute)?\s++(?:xp|sp)_|declare\s++@)"
        r"|" + _Q + r"\s*+\)*+\s*+;\s*+(?:select|insert|update|delete|drop|exec|declare|create"
        r"|alter|truncate|replace|shutdown)\b",
        triggers=(";",),
        description="stacked query: ; drop table ..., ';select",
    ),
    _S(
        "sqli-procedural",
        r"declare\s*+@\w|exec(?:ute)?\s*+\(\s*+@|procedure\s++analyse\b"
        r"|execute\s++immediate\b|/\*[!+]",
        triggers=("declare", "exec", "procedure", "/*!", "/*+"),
        description="procedural SQL (declare @x, exec(@q)), MySQL /*! and /*+ comments",
    ),
    _S(
        "sqli-comment",
        _Q + r"\s*+\)*+\s*+--(?:\s|$|[;&-])",
        triggers=("--",),
        description="quote then SQL comment: admin'--",
    ),
    _S(
        "sqli-time",
        r"\b(?:pg_)?sleep\s*+\(\s*+\d++(?:\.\d++)?\s*+(?:\)|[-+*/^%]|div\b|mod\b|\.to_i)"
        r"|\bselect\s*+\(?\s*+(?:pg_)?sleep\b|\bsleep\s*+\(\s*+\(?\s*+(?:select|mod|if)\b"
        r"|\bbenchmark\s*+\(\s*+\d|\bwaitfor\s++delay\s++['\"]",
        triggers=("sleep", "benchmark", "waitfor"),
        description="time-based blind SQL injection",
    ),
    _S(
        "sqli-probe",
        r"(?:information_schema|sysobjects|pg_catalog|sqlite_master|xp_cmdshell|tempdb|msdb"
        r"|msysaccessobjects|msysobjects|pg_shadow|mysql\.(?:db|user))\b"
        r"|load_file\s*+\(|into\s++(?:out|dump)file\b|@@(?:version|datadir|hostname)\b",
        triggers=(
            "information_schema",
            "sysobjects",
            "pg_catalog",
            "sqlite_master",
            "xp_cmdshell",
            "tempdb",
            "msdb",
            "msys",
            "pg_shadow",
            "mysql.",
            "load_file",
            "outfile",
            "dumpfile",
            "@@",
        ),
        description="SQL catalogue probing and file access",
    ),
    _S(
        "sqli-functions",
        r"\b(?:database|db_name|schema_name|current_user|session_user|system_user"
        r"|extractvalue|updatexml|group_concat|find_in_set|sqlite_compileoption_(?:used|get)"
        r"|sqlite_version|load_extension|utl_inaddr\.\w++|utl_http\.\w++|dbms_\w{1,30}+"
        r"|sys_context|pg_read_file|pg_ls_dir|lo_import|name_const|make_set)\s*+\("
        r"|" + _Q + r"\s*+::\s*+(?:jsonb?|text|int\w{0,10}+|varchar)\b|\b\d++\.e\s*+\(",
        triggers=(
            "database",
            "db_name",
            "schema_name",
            "current_user",
            "session_user",
            "system_user",
            "extractvalue",
            "updatexml",
            "group_concat",
            "find_in_set",
            "sqlite_compileoption_used",
            "sqlite_compileoption_get",
            "sqlite_version",
            "load_extension",
            "utl_inaddr",
            "utl_http",
            "dbms_",
            "sys_context",
            "pg_read_file",
            "pg_ls_dir",
            "lo_import",
            "name_const",
            "make_set",
            "::",
            ".e(",
            ".e (",
        ),
        description="SQL functions used for error-based extraction, casts after a quote",
    ),
    _S(
        "sqli-nosql",
        r"\[\s*+\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|not|nor)\s*+\]"
        r"|['\"]\$(?:ne|gt|gte|lt|lte|regex|where|expr|nin)['\"]\s*+:",
        triggers=("$",),
        description='MongoDB operator injection: u[$ne]=1, {"$where": ...}',
    ),
    _S(
        "xss-script",
        r"<\s*+/?\s*+(?:[\w-]{1,20}+\s*+:\s*+)?script\b|\+adw-",
        triggers=("<", "+adw-"),
        description="<script> tag, also namespaced or UTF-7 (+ADw-)",
    ),
    _S(
        "xss-event-handler",
        r"<[^<>]*?\bon[a-z]{3,30}\s*+=",
        triggers=("<",),
        description="HTML tag with an on...= event handler",
    ),
    _S(
        "xss-attribute",
        r"['\"]\s*+/?\s*+(?:on[a-z]{3,30}|formaction)\s*+=",
        triggers=("on", "formaction"),
        description='an event handler injected after a quote: " onfocus=',
    ),
    _S(
        "xss-tag",
        r"<\s*+(?:[\w-]{1,20}+\s*+:\s*+)?(?:iframe|object|embed|applet|base|meta|frameset|frame"
        r"|vmlframe)\b|<\s*+\?\s*+import\b|-moz-binding\b|<\s*+style\b[^<]{0,200}?@import",
        triggers=("<", "-moz-binding"),
        description="tags that run or load active content (not <svg>/<math>: see their handlers)",
    ),
    _S(
        "xss-js-uri",
        r"(?:java|vb)script\s*+:\s*+(?:[\w$.]++\s*+\(|//|\[|`"
        r"|(?:alert|eval|prompt|confirm|window|document|top|self|this|location|fetch|msgbox)\b)"
        r"|\burl\s*+\(\s*+['\"]?+\s*+(?:java|vb)script\b",
        triggers=("javascript", "vbscript"),
        description="javascript: URI with code",
    ),
    _S(
        "xss-js-call",
        r"\b(?:alert|prompt|confirm|eval|settimeout|setinterval)\s*+[(`]\s*+"
        r"(?:\d|['\"`/]|document|window|this|name|location)"
        r"|\bdocument\s*+\)?\s*+(?:\.\s*+|\[\s*+['\"`])(?:cookie|domain|write)\b"
        r"|\bstring\s*+\.\s*+fromcharcode\b|\b(?:alert|prompt|confirm)\s*+\(\s*+\)"
        r"|\b(?:window|self|top|parent|frames|globalthis)\s*+\[\s*+['\"`]"
        r"|\b(?:window|document)\s*+\.\s*+location\b|\bnew\s++function\s*+\("
        r"|\.\s*+(?:call|apply)\s*+`|\$\{\s*+(?:alert|prompt|confirm|eval)\s*+\}"
        r"|!!?\s*+\[\s*+\]\s*+\+|\+\s*+!\s*+\+?\s*+\[\s*+\]",
        triggers=(
            "alert",
            "prompt",
            "confirm",
            "eval",
            "settimeout",
            "setinterval",
            "document",
            "fromcharcode",
            "window",
            "self",
            "top",
            "parent",
            "frames",
            "globalthis",
            "function",
            "call",
            "apply",
            "[",
        ),
        description="typical XSS payload calls, JSFuck, window['alert']",
    ),
    _S(
        "lfi-traversal",
        r"(?:^|[/\\=\s:'\"])\.{2,}+[/\\]|[/\\]\.\.;?+(?:[/\\]|$)",
        triggers=("..",),
        description="directory traversal ../, ..;/ (CRS 930100 family)",
    ),
    _S(
        "lfi-files",
        r"/etc/(?:passwd|shadow|group|hosts|issue|subuid|subgid|sudoers)\b"
        r"|/proc/(?:self|\d++|version|cpuinfo|meminfo|interrupts|mounts|net)\b"
        r"|/sys/(?:class|kernel|devices|block|firmware|module)\b|\b(?:boot|win|system)\.ini\b"
        r"|/\.(?:env|git|svn|hg|htaccess|htpasswd|aws|ssh|bash_history|docker|kube|npmrc"
        r"|pgpass|netrc|ds_store|claude|cursor|codex|aider|continue|kiro|plandex|opencode|fabric"
        r"|a0proj|vscode|idea)(?![\w-])|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\bwp-config\.php\b"
        r"|/wp-content/debug\.log\b",
        triggers=("/etc/", "/proc/", "/sys/", ".ini", "/.", "id_", "wp-config", "debug.log"),
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
        "rce-command-value",
        r"(?:^|[;|`\n=]|\$\(|&&)\s*+(?:" + _SHELL_ARGS + r"\b(?=\s++(?:-\w++\s++)*+[/~$])"
        r"|" + _SHELL + r"\s++(?:-\w++\s++)*+/)",
        triggers=(";", "|", "`", "$(", "&&", "\n", "=", "/", "~", "$"),
        fields=("query", "body"),
        description="a shell command with a path argument as a value: cmd=gunzip -c /var/...",
    ),
    _S(
        "rce-shell-path",
        r"/bin/(?:ba|z|k|c|da)?sh\b|/usr/bin/(?:env|perl|python\d?)\b"
        r"|\bcmd(?:\.exe)?\s++/c\b|\bpowershell(?:\.exe)?\s++-"
        r"|\b(?:invoke-(?:webrequest|expression|restmethod)|downloadstring|start-process)\b"
        r"|\bpowershell(?:\.exe)?\s++[a-z]:"
        r"|\bfor\s++(?:/[dflr]\b[^%]{0,80}+)?%%?[\w\[~]{1,20}+\s*+in\s*+\("
        r"|\bif\s++(?:/i\s++)?(?:not\s++)?(?:(?:exist|defined|errorlevel|cmdextversion)\s"
        r"|%[\w~]|\"%|\(%|[\w\"%][^\s()=]{0,60}+\s*+(?:==|\b(?:equ|neq|lss|leq|gtr|geq)\b)"
        r"\s*+[^\s:]{1,60}+\s++[a-z(])",
        triggers=(
            "/bin/",
            "cmd",
            "powershell",
            "invoke-",
            "downloadstring",
            "start-process",
            "for",
            "if",
        ),
        description="shell interpreters by path, PowerShell download-and-run, cmd.exe for/if",
    ),
    _S(
        "rce-shellshock",
        r"(?:^|[\n=]) ?\(\s*+\)\s*+\{",
        triggers=("()", "( )"),
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
        r"\bjava\.(?:(?:lang|io|beans|rmi|net)\.[a-z]|runtime\b|processbuilder\b)"
        r"|\bjavax\.(?:script|naming|management)\.|\bcom\.opensymphony\.xwork2\b"
        r"|\bcom\.sun\.(?:org\.apache|rowset|jndi)\.|\borg\.omg\.corba\b"
        r"|\borg\.codehaus\.groovy\.|\borg\.apache\.commons\.beanutils\b|\bprocessbuilder\b"
        r"|\bgetruntime\s*+\(|\bclass\.module\.classloader|\binvokertransformer\b"
        r"|\borg\.apache\.commons\.collections|(?<![\w+/])ro0ab|\baced0005",
        triggers=(
            "java.",
            "javax.",
            "com.opensymphony",
            "com.sun.",
            "org.omg",
            "org.codehaus",
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
