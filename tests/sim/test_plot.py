"""``simulate --plot``: the picture (latency CDFs, each server's share over time, the change)."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.image
import pytest

from balancekit import InvalidOption, sim
from balancekit.__main__ import main
from balancekit.sim.engine import CDF_LEVELS, TIMELINE_BUCKETS
from balancekit.sim.plot import plot

FEW = ["LeastConnections", "RoundRobin", "BoundedLoadHash"]


@pytest.fixture(scope="module")
def degrade() -> tuple[sim.Scenario, list[sim.Result]]:
    scenario = sim.SCENARIOS["degrade"](4_000)
    return scenario, [sim.run(scenario, sim.factory(n, 1), seed=1, name=n) for n in FEW]


def test_results_carry_the_cdf_and_the_timeline(
    degrade: tuple[sim.Scenario, list[sim.Result]],
) -> None:
    scenario, results = degrade
    for result in results:
        assert len(result.cdf) == len(CDF_LEVELS)
        assert list(result.cdf) == sorted(result.cdf)
        assert result.cdf[0] >= 0 and result.cdf[-1] <= result.p999 * 1.0000001
        for server in result.servers:
            assert len(server.timeline) == TIMELINE_BUCKETS
            assert sum(server.timeline) == server.requests
        assert result.bucket * TIMELINE_BUCKETS == pytest.approx(scenario.window)
    # the change shows in the timeline: least connections moves traffic off 10.0.0.3
    watched = results[0].server("10.0.0.3:8080").timeline
    half = TIMELINE_BUCKETS // 2
    assert sum(watched[half + 4 :]) * 5 < sum(watched[: half - 4])


def test_svg_names_every_strategy_and_marks_the_change(
    tmp_path: Path, degrade: tuple[sim.Scenario, list[sim.Result]]
) -> None:
    scenario, results = degrade
    out = plot(scenario, results, tmp_path / "out.svg", seed=1)
    text = out.read_text()
    for name in FEW:
        assert f"{name}: p99" in text  # the CDF legend
    assert "10.0.0.3 x10 slower" in text  # the change, on the share panels
    assert "10.0.0.3:8080 (changes)" in text
    assert "quantile" in text and "log scale" in text


def test_png_is_an_image_of_the_figure_size(
    tmp_path: Path, degrade: tuple[sim.Scenario, list[sim.Result]]
) -> None:
    scenario, results = degrade
    out = plot(scenario, results, tmp_path / "out.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[1] == 1600 and pixels.shape[0] > 800
    assert pixels[..., :3].min() < 0.2  # something dark was drawn (lines, text)


@pytest.mark.parametrize("name", ["out.html", "out", "out.png.exe"])
def test_unsupported_suffix_is_invalid_option(
    tmp_path: Path, degrade: tuple[sim.Scenario, list[sim.Result]], name: str
) -> None:
    scenario, results = degrade
    with pytest.raises(InvalidOption, match=r"must end in \.png, \.svg, \.pdf"):
        plot(scenario, results, tmp_path / name)
    assert not (tmp_path / name).exists()


def test_cli_writes_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.png"
    args = ["simulate", "--requests", "1500", "--strategies", "RoundRobin,PeakEWMA"]
    assert main([*args, "--plot", str(out)]) == 0
    assert out.stat().st_size > 10_000
    captured = capsys.readouterr()
    assert "== recommendation:" in captured.out
    assert f"wrote {out}" in captured.err


def test_cli_without_matplotlib_names_the_extra_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "sim.png"
    assert main(["simulate", "--requests", "500", "--plot", str(out)]) == 2
    captured = capsys.readouterr()
    assert "pip install 'balancekit[plot]'" in captured.err
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [("sim.html", "must end in .png, .svg, .pdf"), ("missing/sim.png", "no directory")],
)
def test_cli_bad_plot_path_fails_before_simulating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    assert main(["simulate", "--requests", "500", "--plot", str(tmp_path / target)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_unencodable_file_name_is_refused_before_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "--requests", "500", "--plot", "\ud800.png"]) == 2
    captured = capsys.readouterr()
    assert "not a valid file name" in captured.err and captured.out == ""


def test_a_burst_and_two_changes_plot(tmp_path: Path) -> None:
    for name in ("burst", "recover"):
        scenario = sim.SCENARIOS[name](3_000)
        result = sim.run(scenario, sim.factory("LeastConnections"), seed=1, name="LC")
        text = plot(scenario, [result], tmp_path / f"{name}.svg").read_text()
        if name == "burst":
            assert "shaded: the burst" in text and "dashed line" not in text
        else:
            assert "x10 slower" in text and "back to base speed" in text
