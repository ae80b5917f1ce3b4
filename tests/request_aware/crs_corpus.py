"""The OWASP CRS regression-test requests, as balancekit Requests (issue 10.21).

The cases come from https://github.com/coreruleset/coreruleset (Apache-2.0, (c) the OWASP CRS
project), ``tests/regression/tests/REQUEST-{930,932,941,942,944}-*/*.yaml``, at commit
2cbd1d019cb7c85319ba4d9102a382c9de7a8e53 (2026-07-24). They are not in this repository: this
workplace keeps fetched material out of the project's commits (data files may live only in the
steering repo's ``shared/``). ``scripts/extract_crs_cases.py`` turns a checkout into one JSON
file (test id, family: sqli 942, xss 941, rce 932, lfi 930, java 944; the paranoia level of its
rule; expected outcome: ``attack`` = its rule must fire, ``benign`` = its rule must not fire and
no rule is expected; the request), which is looked for at ``$BALANCEKIT_CRS_CASES``, then
``shared/crs/crs_cases.json`` beside the repository, then ``/work/shared/crs/crs_cases.json``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from balancekit import BalancekitError, Request

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [
    *([Path(os.environ["BALANCEKIT_CRS_CASES"])] if os.environ.get("BALANCEKIT_CRS_CASES") else []),
    ROOT.parent / "shared" / "crs" / "crs_cases.json",
    Path("/work/shared/crs/crs_cases.json"),
]
DATA: Path | None = next((path for path in CANDIDATES if path.is_file()), None)


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
    """Every case of the corpus file (see the module docstring); [] when it is absent."""
    if DATA is None:
        return []
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
