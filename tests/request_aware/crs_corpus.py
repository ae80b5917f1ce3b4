"""The OWASP CRS regression-test requests (tests/request_aware/crs/), as balancekit Requests.

Data: ``crs/crs_cases.json``, extracted by ``scripts/extract_crs_cases.py`` from
coreruleset/coreruleset (Apache-2.0; source, commit and licence in that file and in
``crs/README.md``). Each case: CRS test id, family (sqli 942, xss 941, rce 932, lfi 930,
java 944), paranoia level of its rule, expected outcome (``attack``: its rule must fire;
``benign``: its rule must not fire and no rule is expected), and the request.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from balancekit import BalancekitError, Request

DATA = Path(__file__).with_name("crs") / "crs_cases.json"


@dataclass(frozen=True)
class Case:
    test: str
    family: str
    paranoia: int
    attack: bool
    request: Request | None  # None: the Request constructor refused the input


def _request(method: str, uri: str, headers: list[list[str]], body: str) -> Request | None:
    path, _, query = uri.partition("?")
    pairs = [(k, v) for k, v in headers]
    if body and not any(k.lower() == "content-type" for k, _ in pairs):
        pairs.append(("Content-Type", "application/x-www-form-urlencoded"))
    try:
        return Request(
            method=method,
            path=path or "/",
            query=query,
            headers=pairs,
            body=body.encode("utf-8", "surrogateescape"),
        )
    except BalancekitError:
        return None


def load_cases() -> list[Case]:
    document = json.loads(DATA.read_text(encoding="utf-8"))
    return [
        Case(test, family, level, expected == "attack", _request(method, uri, headers, body))
        for test, family, level, expected, method, uri, headers, body in document["cases"]
    ]


def rates(
    cases: list[Case], flagged: Callable[[Request], bool], max_paranoia: int
) -> dict[str, tuple[int, int, int, int]]:
    """Per family: (attacks flagged, attacks, benign flagged, benign) over rules at paranoia
    level <= ``max_paranoia``. A request the constructor refused counts as flagged (blocked)."""
    counts: Counter[tuple[str, str]] = Counter()
    for case in cases:
        if case.paranoia > max_paranoia:
            continue
        kind = "attack" if case.attack else "benign"
        counts[case.family, kind] += 1
        if case.request is None or flagged(case.request):
            counts[case.family, kind + "-flagged"] += 1
    families = sorted({family for family, _ in counts})
    return {
        f: (
            counts[f, "attack-flagged"],
            counts[f, "attack"],
            counts[f, "benign-flagged"],
            counts[f, "benign"],
        )
        for f in families
    }
