"""The simulator's picture: latency CDFs of every strategy, and each server's share over time.

:func:`plot` draws a list of :class:`~balancekit.sim.engine.Result` of one scenario into a PNG,
SVG or PDF file (``simulate --plot out.png``), with matplotlib (the optional extra ``plot``:
``pip install 'balancekit[plot]'``). It uses matplotlib's object API (a
:class:`~matplotlib.figure.Figure` of its own, no ``pyplot``), so it works headless and
leaves no figure open.

Top: one latency CDF per strategy. Latency on a log axis (the blind strategies' tails reach
minutes while the others stay under a second) against the quantile on a logit axis, so p50,
p90, p99 and p99.9 are evenly spaced and the tail is as visible as the median; the legend is
the ranking by p99, with p99 and errors. Below: one small panel per strategy, each server's
share of the requests that arrived in each of the run's time slices, stacked, in the order of
the ranking; the servers that change during the run are drawn first (from the bottom) in warm
colours, the others in blues, and each change is a dashed vertical line (bursts are shaded).
A strategy that reacts to the change shows its band shrinking at the line. The CDF is the
usual way latency distributions are compared (e.g. HdrHistogram's percentile plots, which also
use a log-odds quantile axis).
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import InvalidOption
from .engine import CDF_LEVELS, Result
from .scenario import Scenario

__all__ = ["FORMATS", "plot", "require_matplotlib"]

#: File suffixes :func:`plot` can write.
FORMATS = (".png", ".svg", ".pdf")

#: The message of the ImportError when matplotlib is missing.
MISSING = "plotting needs matplotlib: pip install 'balancekit[plot]'"

_COLUMNS = 5
_WARM = ("#d62728", "#ff7f0e", "#bcbd22", "#8c564b")
_GREYS = ("#8ea6c9", "#c3d0e3", "#6f87ad", "#aabbd6")
_STYLES = ("-", "--", ":", "-.")
_QUANTILE_TICKS: tuple[tuple[float, str], ...] = (
    (0.01, "p1"),
    (0.1, "p10"),
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
)


def require_matplotlib() -> None:
    """Raise ImportError naming ``pip install 'balancekit[plot]'`` if matplotlib is missing."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ImportError(MISSING) from None


def check_path(path: str | Path) -> Path:
    """``path`` as a Path if its suffix is one of :data:`FORMATS`, else InvalidOption."""
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise InvalidOption(
            f"cannot plot to {str(path)!r}: the file name must end in {', '.join(FORMATS)}"
        )
    try:
        os.fsencode(target)
    except UnicodeEncodeError:
        raise InvalidOption(f"cannot plot to {str(path)!r}: not a valid file name here") from None
    return target


def _ms(seconds: float) -> str:
    milliseconds = seconds * 1000
    return f"{milliseconds:.1f}" if milliseconds < 1000 else f"{milliseconds:,.0f}"


def _ranked(results: Sequence[Result]) -> list[Result]:
    """The ranking of the report: by p99, then p50, then name."""
    return sorted(results, key=lambda r: (r.p99, r.p50, r.strategy))


def _label(rank: int, result: Result) -> str:
    errors = f", {result.errors:,} errors" if result.errors else ""
    return f"{rank:>2}. {result.strategy}: p99 {_ms(result.p99)} ms{errors}"


def _cdf(axes: Any, results: Sequence[Result]) -> None:
    ranked = _ranked(results)
    # Colours by rank: neighbours in the ranking are the curves that lie close together, and
    # matplotlib's ten-colour cycle keeps neighbours distinct; ranks past ten repeat the colours
    # with another line style.
    for index, result in enumerate(ranked):
        if not result.cdf:
            continue
        axes.plot(
            [latency * 1000 for latency in result.cdf],
            CDF_LEVELS,
            color=f"C{index % 10}",
            linestyle=_STYLES[(index // 10) % len(_STYLES)],
            linewidth=1.7,
            label=_label(index + 1, result),
        )
    axes.set_xscale("log")
    axes.set_yscale("logit")
    axes.set_ylim(CDF_LEVELS[0], CDF_LEVELS[-1])
    axes.set_yticks([level for level, _ in _QUANTILE_TICKS])
    axes.set_yticklabels([name for _, name in _QUANTILE_TICKS])
    axes.yaxis.set_minor_formatter("")
    axes.set_xlabel("latency seen by clients, ms (log scale): queueing wait + service")
    axes.set_ylabel("quantile")
    axes.set_title("latency distribution per strategy (legend: ranking by p99)", loc="left")
    axes.grid(True, which="major", alpha=0.35)
    axes.grid(True, which="minor", axis="x", alpha=0.12)
    axes.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=9,
        frameon=False,
        title="strategy (best p99 first)",
        title_fontsize=9,
        alignment="left",
    )


def _server_colours(result: Result) -> list[tuple[str, str]]:
    """(address, colour) for each server, watched ones first (drawn from the bottom)."""
    watched = [s.address for s in result.servers if s.address in result.watched]
    others = [s.address for s in result.servers if s.address not in result.watched]
    colours = [(a, _WARM[i % len(_WARM)]) for i, a in enumerate(watched)]
    colours += [(a, _GREYS[i % len(_GREYS)]) for i, a in enumerate(others)]
    return colours


def _shares(axes: Any, scenario: Scenario, result: Result, rank: int) -> None:
    by_address = {server.address: server for server in result.servers}
    totals = [sum(column) for column in zip(*(s.timeline for s in result.servers), strict=True)]
    # Slices are of the nominal window: a run whose bursts brought the arrivals in early leaves
    # the last slices empty; they are cut off rather than drawn as a share of nothing.
    buckets = max((k + 1 for k, total in enumerate(totals) if total), default=len(totals))
    totals = totals[:buckets]
    times = [(k + 0.5) * result.bucket for k in range(buckets)]
    colours = _server_colours(result)
    stacks = [
        [
            100 * count / total if total else 0.0
            for count, total in zip(by_address[address].timeline[:buckets], totals, strict=True)
        ]
        for address, _ in colours
    ]
    axes.stackplot(
        times,
        stacks,
        colors=[colour for _, colour in colours],
        edgecolor="white",
        linewidth=0.3,
    )
    window = scenario.window
    for burst in scenario.bursts:
        axes.axvspan(burst.at * window, (burst.at + burst.length) * window, color="k", alpha=0.1)
    for index, change in enumerate(sorted(scenario.changes, key=lambda c: c.at)):
        at = change.at * window
        axes.axvline(at, color="k", linestyle="--", linewidth=1.2)
        if rank == 1:  # labelled once, staggered so that close changes do not overlap
            axes.annotate(
                f"{change.address.split(':')[0]} {change.describe()}",
                xy=(at, 100),
                xytext=(3, -3 - 13 * index),
                textcoords="offset points",
                fontsize=7.5,
                va="top",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
            )
    axes.set_xlim(0, buckets * result.bucket)
    axes.set_ylim(0, 100)
    note = ""
    if result.watched and len(result.boundaries) >= 1:
        watched = by_address[result.watched[0]]
        during = sum(server.phases[1] for server in result.servers)
        if during:
            note = f"\n{result.watched[0].split(':')[0]} after change: "
            note += f"{100 * watched.phases[1] / during:.1f}%"
    axes.set_title(f"{rank}. {result.strategy}{note}", fontsize=9, loc="left")
    axes.tick_params(labelsize=7.5)


def _legend_for_servers(figure: Any, scenario: Scenario, result: Result) -> None:
    from matplotlib.patches import Patch

    handles = []
    for address, colour in _server_colours(result):
        if address in result.watched:
            handles.append(Patch(color=colour, label=f"{address} (changes)"))
    others = [c for address, c in _server_colours(result) if address not in result.watched]
    if others:
        label = "each other server" if result.watched else "each server"
        handles.append(Patch(color=others[0], label=f"{label}: one blue band"))
    marks = ["dashed line: the change"] if result.watched else []
    marks += ["shaded: the burst"] if scenario.bursts else []
    if handles:
        figure.legend(
            handles=handles,
            loc="outside lower center",
            title="share panels: each server's share of the requests arriving in each time slice"
            + "".join(f"; {mark}" for mark in marks),
            title_fontsize=9,
            fontsize=9,
            frameon=False,
            ncols=len(handles),
        )


def plot(
    scenario: Scenario,
    results: Sequence[Result],
    path: str | Path,
    *,
    seed: int | None = None,
) -> Path:
    """Draw ``results`` (runs of ``scenario``) to ``path`` (.png, .svg or .pdf); return it.

    Raises :class:`~balancekit.InvalidOption` for another suffix or no results, and ImportError
    (naming ``pip install 'balancekit[plot]'``) without matplotlib. O(strategies x servers x
    :data:`~balancekit.sim.engine.TIMELINE_BUCKETS`) to draw.
    """
    target = check_path(path)
    if not results:
        raise InvalidOption("nothing to plot: no results")
    require_matplotlib()
    from matplotlib.figure import Figure

    count = len(results)
    columns = min(_COLUMNS, count)
    rows = math.ceil(count / columns)
    height = 6.2 + 2.25 * rows
    figure = Figure(figsize=(16, height), dpi=100, layout="constrained")
    grid = figure.add_gridspec(1 + rows, columns, height_ratios=[5.0] + [2.0] * rows)
    _cdf(figure.add_subplot(grid[0, :]), results)
    first_share = None
    for index, result in enumerate(_ranked(results)):
        row, column = divmod(index, columns)
        axes = figure.add_subplot(grid[1 + row, column], sharex=first_share, sharey=first_share)
        first_share = first_share or axes
        _shares(axes, scenario, result, rank=index + 1)
        if column == 0:
            axes.set_ylabel("share of requests, %", fontsize=8)
        if row == rows - 1 or index + columns >= count:
            axes.set_xlabel("simulated time, s (by arrival)", fontsize=8)
    title = f"balancekit simulate --scenario {scenario.name}"
    title += f": {scenario.requests:,} requests" + (f", seed {seed}" if seed is not None else "")
    figure.suptitle(
        title + "\n" + "\n".join(textwrap.wrap(scenario.description, width=150)),
        fontsize=11,
        x=0.01,
        ha="left",
    )
    _legend_for_servers(figure, scenario, results[0])
    suffix = target.suffix.lower()
    metadata: dict[str, Any] = {}
    if suffix == ".png":
        metadata = {"Software": None}
    elif suffix == ".svg":
        metadata = {"Date": None}
    elif suffix == ".pdf":
        metadata = {"CreationDate": None}
    from matplotlib import rc_context

    # SVG keeps its text as text (searchable, selectable, a fraction of the size)
    with rc_context({"svg.fonttype": "none"}):
        figure.savefig(target, metadata=metadata)
    return target
