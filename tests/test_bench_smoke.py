"""The select/release benchmark runs end to end and reports every strategy (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

import balancekit as bk

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_select.py"
TINY = ["--quick", "--repeats", "1", "--min-time", "0", "--build-repeats", "1", "--keys", "64"]


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_select", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_select"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench()


def test_json_has_a_row_per_strategy_and_size(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    status = bench.main([*TINY, "--sizes", "3", "7", "--format", "json", "--quiet"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    present = [name for name in bench.STRATEGIES if hasattr(bk, name)]
    assert {"RoundRobin", "WeightedRoundRobin", "IPHash"} <= set(present)
    rows = {(row["name"], row["n"]) for row in report["rows"]}
    for n in (3, 7):
        assert ("no-op call", n) in rows
        for name in present:
            if name not in report["skipped"]:
                assert (name, n) in rows, (name, n)
                assert report["builds"][name][str(n)] >= 0
    assert ("IPHash.lookup", 3) in rows
    assert all(row["ns"] > 0 and row["x_noop"] > 0 for row in report["rows"])
    assert {t["status"] for t in report["targets"]} <= {"PASS", "MISS", "N/A", "INFO"}


def test_markdown_lists_the_chosen_strategies_and_targets(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*TINY, "--sizes", "5", "--strategies", "RoundRobin", "LeastConnections", "--quiet"]
    assert bench.main([*argv, "--no-peers", "--no-locked"]) == 0
    out = capsys.readouterr().out
    blocks = out.split("\n\n")
    table = next(block for block in blocks if block.startswith("| case")).splitlines()
    names = [line.split("|")[1].strip() for line in table[2:]]
    assert names.count("RoundRobin") == 1 and names.count("LeastConnections") == 1
    assert "WeightedRoundRobin" not in names
    assert "Targets (issue 2):" in out and "N/A RoundRobin select+release" in out
    assert "LeastConnections select+release <= 40x no-op call at N=10: not measured" in out


def test_unknown_strategy_is_refused(bench: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--strategies", "NoSuchBalancer", "--quiet"])
