"""The command line: ``python -m balancekit simulate`` and its options."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from balancekit import sim
from balancekit.__main__ import main
from balancekit.sim.report import WIDTH


def test_simulate_prints_every_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--requests", "2000"]) == 0
    out = capsys.readouterr().out
    for name in sim.available():
        assert f"== {name}:" in out
    assert "== ranking by p99 latency" in out
    assert "10.0.0.3:8080 before" in out
    assert max(len(line) for line in out.splitlines()) <= WIDTH


def test_json_format_parses(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--requests", "1500", "--format", "json"]
    assert main([*args, "--strategies", "RoundRobin,LeastConnections"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in data["results"]] == ["RoundRobin", "LeastConnections"]
    assert sorted(data["ranking"]) == ["LeastConnections", "RoundRobin"]
    for result in data["results"]:
        assert result["completed"] == 1500
        assert len(result["servers"]) == 10
        assert {"p50", "p99", "p999", "errors", "arrival_digest"} <= set(result)


def test_seed_makes_output_repeatable(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--requests", "1000", "--strategies", "IPHash", "--seed", "3"]
    main(args)
    first = capsys.readouterr().out
    main(args)
    assert capsys.readouterr().out == first


def test_list_names_scenarios_and_strategies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--list"]) == 0
    out = capsys.readouterr().out
    for name in [*sim.SCENARIOS, *sim.available()]:
        assert name in out


def test_each_builtin_scenario_runs(capsys: pytest.CaptureFixture[str]) -> None:
    for name in sim.SCENARIOS:
        args = ["simulate", "--scenario", name, "--requests", "500"]
        assert main([*args, "--strategies", "LeastConnections"]) == 0
        out = capsys.readouterr().out
        assert f"scenario {name!r}" in out
        assert max(len(line) for line in out.splitlines()) <= WIDTH


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "Nope"], "unknown strategy 'Nope'"),
        (["--scenario", "nope"], "unknown scenario 'nope'"),
    ],
)
def test_bad_names_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["simulate", "--requests", "10", *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_request_count_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--requests", "0"])
    assert exit_info.value.code == 2
    assert "expected a number >= 1" in capsys.readouterr().err


def test_help_explains_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "balancekit simulate" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = capsys.readouterr().out
    for option in ("--seed", "--requests", "--strategies", "--scenario", "--format", "--list"):
        assert option in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "simulate" in capsys.readouterr().out


def test_python_dash_m_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "balancekit", "simulate", "--requests", "300", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout)["scenario"]["name"] == "degrade"
