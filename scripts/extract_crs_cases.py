"""Extract the OWASP CRS regression tests of the families the signature screen covers.

Reads a checkout of https://github.com/coreruleset/coreruleset (Apache-2.0) and writes the
compact case file that ``tests/request_aware/test_crs_corpus.py`` replays through
:class:`SignatureScreen`. Only the requests are taken (method, URI, the headers that differ
from the tests' boilerplate, body), with each test's rule id, paranoia level and expected
outcome; no rule or regex is copied. The output is fetched material: keep it out of this
repository's commits (see tests/request_aware/crs_corpus.py for where the tests look for it).

    python scripts/extract_crs_cases.py /path/to/coreruleset COMMIT OUT.json

A test is an *attack* when its ``expect_ids`` name its rule, *benign* when it only has
``no_expect_ids`` (it must not trigger its rule, and names no rule that should fire). Needs
PyYAML (in the ``test`` extra).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

FAMILIES = {
    "930": "lfi",
    "932": "rce",
    "941": "xss",
    "942": "sqli",
    "944": "java",
}
BOILERPLATE = {
    "host": "localhost",
    "user-agent": "OWASP CRS test agent",
    "accept": "text/xml,application/xml,application/xhtml+xml,text/html;q=0.9,text/plain;q=0.8,"
    "image/png,*/*;q=0.5",
}


def paranoia_levels(rules_dir: Path) -> dict[int, int]:
    """Rule id -> paranoia level, read from the ``tag:'paranoia-level/N'`` of each rule."""
    levels: dict[int, int] = {}
    for conf in rules_dir.glob("REQUEST-9*.conf"):
        for block in re.split(r"\n(?=SecRule|SecAction)", conf.read_text(encoding="utf-8")):
            rule_id = re.search(r"\bid:(\d+)", block)
            level = re.search(r"paranoia-level/(\d)", block)
            if rule_id and level:
                levels[int(rule_id.group(1))] = int(level.group(1))
    return levels


def stage_input(stage: dict[str, Any]) -> dict[str, Any]:
    return stage.get("input") or stage.get("stage", {}).get("input") or {}


def stage_log(stage: dict[str, Any]) -> dict[str, Any]:
    output = stage.get("output") or stage.get("stage", {}).get("output") or {}
    return output.get("log") or {}


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit("usage: extract_crs_cases.py CORERULESET_CHECKOUT COMMIT OUT.json")
    repo, commit, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    levels = paranoia_levels(repo / "rules")
    cases: list[list[Any]] = []
    skipped = 0
    for prefix, family in sorted(FAMILIES.items()):
        for path in sorted((repo / "tests/regression/tests").glob(f"REQUEST-{prefix}-*/*.yaml")):
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            rule_id = int(doc["rule_id"])
            for test in doc["tests"]:
                for stage in test["stages"]:
                    log = stage_log(stage)
                    inp = stage_input(stage)
                    expect = [int(i) for i in log.get("expect_ids") or []]
                    no_expect = [int(i) for i in log.get("no_expect_ids") or []]
                    if rule_id in expect:
                        outcome = "attack"
                    elif rule_id in no_expect and not expect:
                        outcome = "benign"
                    else:
                        skipped += 1
                        continue
                    if "uri" not in inp or "encoded_request" in inp:
                        skipped += 1  # raw requests: not expressible as fields
                        continue
                    headers = [
                        [str(k), str(v)]
                        for k, v in (inp.get("headers") or {}).items()
                        if BOILERPLATE.get(str(k).lower()) != str(v)
                    ]
                    data = inp.get("data", "")
                    body = "\r\n".join(data) if isinstance(data, list) else str(data or "")
                    cases.append(
                        [
                            f"{rule_id}-{test['test_id']}",
                            family,
                            levels.get(rule_id, 1),
                            outcome,
                            str(inp.get("method", "GET")),
                            str(inp["uri"]),
                            headers,
                            body,
                        ]
                    )
    document = {
        "source": "https://github.com/coreruleset/coreruleset tests/regression/tests",
        "commit": commit,
        "license": "Apache-2.0, (c) the OWASP CRS project (LICENSE in the source repository)",
        "columns": ["test", "family", "paranoia", "expected", "method", "uri", "headers", "body"],
        "skipped": skipped,
        "cases": cases,
    }
    text = json.dumps(document, ensure_ascii=True, separators=(",", ":"))
    out.write_text(text.replace('],["', '],\n["') + "\n", encoding="utf-8")
    print(f"{len(cases)} cases ({skipped} skipped) -> {out}")


if __name__ == "__main__":
    main()
