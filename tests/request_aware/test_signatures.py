"""Signature screen: normalisation, detection, the pinned false-positive figures, fuzzing."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from balancekit import InvalidOption, Request
from balancekit.guard import DEFAULT_SIGNATURES, BanList, Signature, SignatureScreen, normalise

from .corpus import ATTACKS, benign_requests

SCREEN = SignatureScreen()


def test_normalise_decodes_double_encoding_entities_and_case() -> None:
    assert normalise("%253Cscript%253E") == "<script>"
    assert normalise("&lt;SCRIPT&gt;") == "<script>"
    assert normalise("a+b%2Bc", form=True) == "a b+c"
    assert normalise("a+b") == "a+b"
    assert normalise("UNION/**/SELECT\t\n 1") == "union select 1"
    assert normalise("a\x00b") == "ab"


def test_normalise_paths_keeps_dot_dot() -> None:
    assert normalise("\\a//b/./c/../d", path=True) == "/a/b/c/../d"


def test_normalise_resolves_log4j_lookup_obfuscation() -> None:
    assert normalise("${${lower:J}ndi:x}") == "${jndi:x}"
    assert normalise("${${::-j}${::-n}${::-d}${::-i}:") == "${jndi:"
    assert normalise("${j${env:NOPE:-n}di:") == "${jndi:"
    assert normalise("${${upper:j}${date:'n'}di:") == "${jndi:"
    assert normalise("Hello ${name}") == "hello ${name}"


@pytest.mark.parametrize(
    ("family", "request_"), ATTACKS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(ATTACKS)]
)
def test_every_attack_in_the_corpus_is_caught_by_its_family(family: str, request_: Request) -> None:
    verdict = SCREEN.check(request_)
    assert not verdict.allowed and verdict.status == 403
    assert any(rule.startswith(family + "-") for rule in verdict.rule_ids), verdict.rule_ids
    assert all(rule in verdict.reason for rule in verdict.rule_ids)


def test_documented_false_positive_figures() -> None:
    """The figures quoted in docs/request-aware.md ("False positives"): keep them in step."""
    benign = benign_requests()
    flagged = {r.raw_query or r.path: SCREEN.scan(r) for r in benign if SCREEN.scan(r)}
    assert len(benign) == 114
    assert flagged == {
        "q=..%2F+meaning": ("lfi-traversal",),
        "q=union+select+syntax": ("sqli-union",),
        "q=%3Cscript%3E+tag+tutorial": ("xss-script",),
    }
    assert len(ATTACKS) == 50


ENCODED = [
    "' or 'a'='a",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    ";cat /etc/passwd",
    "${jndi:ldap://x}",
    "1 union select 2",
]


@given(st.sampled_from(ENCODED), st.integers(0, 3), st.booleans())
def test_encoding_up_to_three_times_does_not_hide_an_attack(
    payload: str, times: int, upper: bool
) -> None:
    text = payload.upper() if upper else payload
    for _ in range(times):
        text = quote(text, safe="")
    assert SCREEN.scan(Request(query="q=" + text)) == SCREEN.scan(
        Request(query="q=" + quote(payload, safe=""))
    )
    assert SCREEN.scan(Request(query="q=" + text))


@given(st.text(max_size=200), st.binary(max_size=200))
def test_the_screen_never_fails_on_arbitrary_input(text: str, body: bytes) -> None:
    request = Request(path="/" + text, query=text, headers={"x-any": text}, body=body)
    verdict = SCREEN.check(request)
    assert verdict.allowed == (SCREEN.scan(request) == ())


def test_body_limit_and_skip_headers() -> None:
    attack = b"x" * 100 + b"<script>"
    assert SignatureScreen(body_limit=200).scan(Request(body=attack)) == ("xss-script",)
    assert SignatureScreen(body_limit=50).scan(Request(body=attack)) == ()
    request = Request(headers={"X-Token": "<script>"})
    assert SignatureScreen(skip_headers=["x-token"]).scan(request) == ()
    assert SCREEN.fields(Request(path="/A%41")) == [("path", "/aa")]


def test_custom_rules_and_bans() -> None:
    rule = Signature("no-admin", r"^/admin\b", triggers=("/admin",), fields=["path"])
    bans = BanList(strikes=1, clock=lambda: 0.0)
    screen = SignatureScreen([rule, *DEFAULT_SIGNATURES], bans=bans)
    probe = Request(path="/admin/x", client_addr="203.0.113.1")
    assert screen.check(probe).banned_until == 300.0
    assert not bans.check(probe).allowed
    assert screen.scan(Request(query="x=/admin")) == ()  # path only


@pytest.mark.parametrize(
    "build",
    [
        lambda: Signature("", "x", triggers=("x",)),
        lambda: Signature("a", "(", triggers=("x",)),
        lambda: Signature("a", "x", triggers=()),
        lambda: Signature("a", "x", triggers=("X",)),
        lambda: Signature("a", "x", triggers=("x",), fields=["cookies"]),
        lambda: SignatureScreen([DEFAULT_SIGNATURES[0], DEFAULT_SIGNATURES[0]]),
        lambda: SignatureScreen(["x"]),  # type: ignore[list-item]
        lambda: SignatureScreen(body_limit=-1),
        lambda: SignatureScreen(status=200),
    ],
)
def test_bad_options(build: object) -> None:
    with pytest.raises(InvalidOption):
        build()  # type: ignore[operator]


def test_every_default_rule_has_a_trigger_in_each_of_its_matches() -> None:
    """The prefilter is sound: for each attack match, some trigger of the rule is present."""
    for _, request in ATTACKS:
        for field, text in SCREEN.fields(request):
            for rule in DEFAULT_SIGNATURES:
                if field in rule.fields and rule.pattern.search(text):
                    assert any(t in text for t in rule.triggers), (rule.id, text)
