"""LoadReportWeightedRoundRobin and LoadReport under hostile input (issue 10, items 2, 17, 20).

Servers' load reports are input from the network: any value, any header. A report either is
refused with InvalidOption and changes nothing, or yields a finite weight that no later pick,
add or update can choke on.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit._state import count_value
from balancekit.strategies._orca import MAX_HEADER_LENGTH, MAX_WEIGHT
from balancekit.strategies.load_report import stride_weights


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


FIELDS = ("cpu_utilization", "qps", "eps", "application_utilization")
EXTREME = st.sampled_from(
    [0.0, 5e-324, 1e-320, 1e-300, 1.0, 1e300, 1e308, 1.7976931348623157e308, 7, 10**30]
) | st.floats(min_value=0, allow_infinity=False, allow_nan=False)
JUNK: st.SearchStrategy[object] = st.sampled_from(
    [math.nan, math.inf, -math.inf, -1, -1e-300, 10**400, -(10**400), True, "1", None, [1]]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({f: EXTREME for f in FIELDS}), min_size=3, max_size=3))
def test_extreme_finite_reports_never_break_a_pick_or_an_add(reports: list[dict]) -> None:
    # On main: rps_fractional=1e308 or cpu_utilization=1e-320 made every select raise
    # OverflowError/ValueError until the weights expired, and add() left a half-added member.
    clock = Clock()
    lb = bk.LoadReportWeightedRoundRobin(["a:80", "b:80", "c:80"], blackout_period=0, clock=clock)
    for address, fields in zip(("a:80", "b:80", "c:80"), reports, strict=True):
        report = bk.LoadReport(**fields)
        assert 0 <= report.weight() <= MAX_WEIGHT
        lb.report(address, report)
        assert 0 <= lb.weight_at(address) <= MAX_WEIGHT
    clock.now = 1.0  # the weight update
    picks = {lb.select().address for _ in range(200)}
    assert picks <= {"a:80", "b:80", "c:80"}
    lb.add("d:80")
    assert "d:80" in lb and lb.stats()["d:80"].up
    assert any(lb.select().address == "d:80" for _ in range(2000))  # not half-added
    lb.update(["a:80", "d:80"])
    lb._check_invariants()


def test_the_issues_two_reports() -> None:
    clock = Clock()
    lb = bk.LoadReportWeightedRoundRobin(["a:80", "b:80"], blackout_period=0, clock=clock)
    lb.report("a:80", bk.LoadReport.from_header("TEXT cpu_utilization=0.5, rps_fractional=1e308"))
    lb.report("b:80", bk.LoadReport(cpu_utilization=1e-320, qps=1))
    clock.now = 1.0
    assert {lb.select().address for _ in range(4)} == {"a:80", "b:80"}
    lb.add("c:80")
    assert lb.endpoints[-1].address == "c:80"
    lb._check_invariants()


def test_stride_weights_clamp_anything() -> None:
    scaled = stride_weights([math.inf, 1e308, 5e-324, 1.0, 0.0])
    assert scaled is not None and min(scaled) >= 1 and max(scaled) == 65535


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FIELDS), JUNK)
def test_every_loadreport_field_refuses_junk(field: str, junk: object) -> None:
    with pytest.raises(bk.InvalidOption, match=field):
        bk.LoadReport(**{field: junk})  # type: ignore[arg-type]


def test_loadreport_stores_floats() -> None:
    report = bk.LoadReport(cpu_utilization=1, qps=10**300)
    assert type(report.qps) is float and report.weight() == MAX_WEIGHT


def test_deeply_nested_json_header_is_refused() -> None:
    # On main: RecursionError from json.loads.
    for body in ("[" * 100_000, "[" * 5000, '{"a":' * 400 + "1" + "}" * 400):
        with pytest.raises(bk.InvalidOption):
            bk.LoadReport.from_header("JSON " + body)
    with pytest.raises(bk.InvalidOption, match=str(MAX_HEADER_LENGTH)):
        bk.LoadReport.from_header("TEXT eps=1," + " " * MAX_HEADER_LENGTH)


def test_header_values_must_be_plain_numbers() -> None:
    for bad in (
        "TEXT rps_fractional=1_000",
        "TEXT rps_fractional=inf",
        "TEXT rps_fractional=nan",
        "TEXT rps_fractional=1e999",
        "TEXT eps=\uff11",
        'JSON {"rps_fractional": true}',
        'JSON {"rps_fractional": "5"}',
        'JSON {"rps_fractional": NaN}',
        'JSON {"eps": 1e999}',
        'JSON {"eps": ' + "9" * 5000 + "}",
        "JSON \ud800",
    ):
        with pytest.raises(bk.InvalidOption):
            bk.LoadReport.from_header(bad)


HEADER = st.one_of(
    st.text(max_size=300),
    st.builds(lambda k, b: k + b, st.sampled_from(["TEXT ", "JSON ", "BIN "]), st.text()),
    st.builds(
        lambda n, inner: "JSON " + "[" * n + inner + "]" * n,
        st.integers(0, 3000),
        st.text(max_size=20),
    ),
    st.builds(
        lambda key, value: f"TEXT {key}={value}",
        st.sampled_from(["rps_fractional", "eps", "cpu_utilization", "application_utilization"]),
        st.text(max_size=30) | st.floats().map(repr) | st.integers().map(str),
    ),
)


@settings(max_examples=400, deadline=None)
@given(HEADER)
def test_header_junk_ends_in_invalidoption_or_a_valid_report(header: str) -> None:
    try:
        report = bk.LoadReport.from_header(header)
    except bk.InvalidOption:
        return
    for field in FIELDS:
        value = getattr(report, field)
        assert type(value) is float and 0 <= value < math.inf
    assert 0 <= report.weight() <= MAX_WEIGHT


def test_blackout_zero_means_no_blackout_after_mark_up() -> None:
    # gRFC A58 / C-core GetWeight: `if (blackout_period > 0 && now - non_empty_since < ...)`.
    # On main the weight was 0 after mark_down + mark_up until the next report.
    clock = Clock()
    lb = bk.LoadReportWeightedRoundRobin(["a:80", "b:80"], blackout_period=0, clock=clock)
    lb.report("a:80", bk.LoadReport(cpu_utilization=1, qps=7))
    lb.report("b:80", bk.LoadReport(cpu_utilization=1, qps=21))
    lb.mark_down("a:80")
    lb.mark_up("a:80")
    assert lb.weight_at("a:80") == 7
    clock.now = 1.0
    picks = [lb.select().address for _ in range(400)]
    assert picks.count("a:80") == 100  # 7 : 21, not round robin
    assert lb.weight_at("a:80", now=1.0 + 180) == 0  # expiry still applies


def test_avoid_does_not_spin_the_scheduler() -> None:
    # Two heavy endpoints among 2,000, all but one light one avoided: on main a pick ran the
    # stride scheduler 4 n steps (8,000), then scanned every endpoint.
    clock = Clock()
    addresses = [f"10.0.{i // 250}.{i % 250}:80" for i in range(2000)]
    lb = bk.LoadReportWeightedRoundRobin(addresses, blackout_period=0, clock=clock)
    for address in addresses[:2]:
        lb.report(address, bk.LoadReport(cpu_utilization=1, qps=1000))
    for address in addresses[2:]:
        lb.report(address, bk.LoadReport(cpu_utilization=1, qps=1))
    clock.now = 1.0
    lb.select()  # the weight update
    avoid = frozenset(addresses[:-1])
    for _ in range(20):
        before = count_value(lb._counter)
        assert lb.select(avoid=avoid).address == addresses[-1]
        assert count_value(lb._counter) - before < 500


@pytest.mark.parametrize(
    "option",
    [
        "blackout_period",
        "weight_expiration_period",
        "weight_update_period",
        "error_utilization_penalty",
    ],
)
@pytest.mark.parametrize("junk", [10**400, -(10**400), math.inf, math.nan])
def test_a_period_past_every_float_is_an_invalid_option(option: str, junk: object) -> None:
    """10**400 compared unequal to inf and then overflowed in float(): OverflowError."""
    with pytest.raises(bk.InvalidOption, match=option):
        bk.LoadReportWeightedRoundRobin(["a:1"], **{option: junk})
