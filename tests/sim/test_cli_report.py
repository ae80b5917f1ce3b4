"""``simulate``'s closing recommendation, ``--health`` comparison and progress on stderr."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from balancekit.__main__ import main
from balancekit.sim.progress import Progress
from balancekit.sim.report import WIDTH

TWO = ["--strategies", "RoundRobin,LeastConnections"]
JSON = ["--format", "json", "--progress"]


def test_text_report_ends_with_a_recommendation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--requests", "3000", *TWO]) == 0
    out = capsys.readouterr().out
    tail = out[out.index("== recommendation: ") :]
    assert tail.startswith("== recommendation: LeastConnections")
    assert "p99" in tail and "errors" in tail
    assert max(len(line) for line in out.splitlines()) <= WIDTH


def test_affinity_flag_changes_the_pick(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--requests", "3000", "--format", "json"]
    args += ["--strategies", "LeastConnections,BoundedLoadHash"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*args, "--affinity"]) == 0
    sticky = json.loads(capsys.readouterr().out)
    assert plain["recommendation"]["strategy"] == "LeastConnections"
    assert sticky["recommendation"]["strategy"] == "BoundedLoadHash"
    assert sticky["scenario"]["affinity"] is True
    assert any("key affinity" in reason for reason in sticky["recommendation"]["reasons"])


def test_health_compares_each_strategy_with_and_without(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["simulate", "--scenario", "failing", "--requests", "6000", *TWO, "--health"]
    assert main(args) == 0
    out = capsys.readouterr().out
    table = out[out.index("== passive health") : out.index("== recommendation")]
    rows = {line.split()[0]: line for line in table.splitlines()[2:] if line.strip()}
    assert set(rows) == {"RoundRobin", "LeastConnections"}
    for line in rows.values():
        errors_without, errors_with = int(line.split()[1]), int(line.split()[3])
        assert errors_with * 3 < errors_without  # ejecting the failing server pays
    assert "+health" in out[out.index("== recommendation") :]
    assert max(len(line) for line in out.splitlines()) <= WIDTH


def test_health_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--scenario", "failing", "--requests", "3000", *TWO, "--health"]
    assert main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in data["with_health"]] == [
        "RoundRobin+health",
        "LeastConnections+health",
    ]
    assert [r["strategy"] for r in data["results"]] == ["RoundRobin", "LeastConnections"]


def test_progress_only_on_request_and_never_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["simulate", "--requests", "9000", *TWO]
    assert main(args) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""  # stderr is not a terminal under pytest
    assert main([*args, "--progress"]) == 0
    loud = capsys.readouterr()
    assert loud.out == quiet.out
    assert loud.err.splitlines()[0].startswith("simulate: [1/2] RoundRobin done in")
    assert "[2/2] LeastConnections" in loud.err and "\r" not in loud.err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_one_line_and_erases_it() -> None:
    stream = _Terminal()
    progress = Progress(stream, total=2, requests=10_000, enabled=True)
    for label in ("A", "B"):
        progress.start(label)
        for arrived in range(4096, 10_000, 4096):
            progress.update(arrived)
        progress.finish()
    text = stream.getvalue()
    assert "\n" not in text
    assert "[1/2] A  40%" in text and "[2/2] B  81%" in text
    assert text.endswith("\r" + " " * len("simulate: [2/2] B  81%") + "\r")


def test_progress_off_writes_nothing() -> None:
    stream = _Terminal()
    progress = Progress(stream, total=1, requests=10, enabled=False)
    progress.start("A")
    progress.update(5)
    progress.finish()
    assert stream.getvalue() == ""


def test_progress_survives_a_closed_stderr() -> None:
    stream = _Terminal()
    progress = Progress(stream, total=1, requests=10, enabled=True)
    stream.close()
    progress.start("A")  # no exception: the run goes on
    progress.finish()


def test_report_pipes_with_progress_forced() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "balancekit", "simulate", "--requests", "2000", *TWO, *JSON],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout)["recommendation"]["strategy"] == "LeastConnections"
    assert "simulate: [2/2]" in done.stderr


def test_no_strategy_named_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--requests", "100", "--strategies", " , ,"]) == 2
    captured = capsys.readouterr()
    assert "no strategies given" in captured.err and captured.out == ""


def test_a_change_back_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "recover", "--requests", "500", *TWO]) == 0
    out = capsys.readouterr().out
    assert "10.0.0.3:8080 x10 slower" in out and "10.0.0.3:8080 back to base speed" in out
