"""The membership benchmark runs end to end: every subject asked for gets a row per tree and the
targets are checked (no timing asserted). Issue 11's table is produced by this script."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_membership.py"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def load_bench() -> ModuleType:
    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("bench_membership", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_membership"] = module
    spec.loader.exec_module(module)
    return module


def test_rows_for_every_subject_and_tree(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    subjects = ["RoundRobin", "IPHash", "WeightedRoundRobin(order=envoy)", "uhashring"]
    argv = ["--sizes", "40", "--budget", "5", "--repeats", "1", "--before", SRC, "--only"]
    assert bench.main([*argv, *subjects]) == 0
    out = capsys.readouterr().out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| ") and "40" in line]
    seen = {(cells[1].strip(), cells[3].strip()) for cells in rows}
    for name in subjects[:-1]:
        assert {(name, "before"), (name, "after")} <= seen, (name, seen)
    assert ("uhashring", "peer") in seen
    assert all("error" not in "|".join(cells) for cells in rows)
    assert "INFO RoundRobin N=40 after: worst change" in out
    assert "IPHash N=40 after: worst change" in out and "uhashring add_node" in out


def test_every_registered_strategy_is_a_subject() -> None:
    bench = load_bench()
    from balancekit.strategies import registry

    names = bench.registered(SRC)
    assert names == [cls.__name__ for cls in registry.strategies().values()]
    assert len(names) >= 15


def test_unknown_subject_is_refused() -> None:
    with pytest.raises(SystemExit):
        load_bench().main(["--only", "NoSuchBalancer", "--sizes", "10"])


def test_rows_of_earlier_runs_are_reported_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rows merges runs (e.g. one split over processes) into one report, targets on CPU."""
    bench = load_bench()
    saved = tmp_path / "rows.json"
    argv = ["--sizes", "30", "--budget", "5", "--repeats", "1", "--json", str(saved)]
    assert bench.main([*argv, "--only", "IPHash", "uhashring"]) == 0
    first = capsys.readouterr().out
    assert bench.main(["--rows", str(saved), str(saved)]) == 0  # the same rows twice
    again = capsys.readouterr().out
    table = [line for line in first.splitlines() if line.startswith("| IPHash | 30 |")]
    assert len(table) == 1 and again.count(table[0]) == 2
    assert "IPHash N=30 after: worst change" in again and " CPU = " in again
