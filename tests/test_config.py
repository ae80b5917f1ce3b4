"""from_config / from_config_file and the strategy registry: what they build, what they refuse."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.strategies import registry

FULL: dict[str, Any] = {
    "name": "orders",
    "strategy": {"name": "peak_ewma", "decay": 5.0, "choices": 2, "seed": 7},
    "endpoints": ["127.0.0.1:8001", {"address": "127.0.0.1:8002", "weight": 3}],
    "health": {
        "passive": {"consecutive_failures": 3, "failure_rate": 0.5},
        "slow_start": {"window": 10.0, "steps": 5},
        "active": {"check": "tcp", "timeout": 0.5, "interval": 1.0, "rise": 1, "fall": 2},
    },
    "retry": {"attempts": 2, "backoff": 0.0, "budget": {"ratio": 0.2, "burst": 5}},
    "discovery": {"source": "static", "endpoints": ["127.0.0.1:9001"], "min_interval": 2.0},
}


def test_a_full_configuration_builds_every_part() -> None:
    service = bk.from_config(FULL)
    lb = service.balancer
    assert isinstance(lb, bk.PeakEWMA)
    assert [(e.address, e.weight) for e in lb.endpoints] == [
        ("127.0.0.1:8001", 1),
        ("127.0.0.1:8002", 3),
    ]
    tracker = bk.health_of(lb)
    assert tracker is not None
    assert tracker.passive == bk.PassiveHealth(consecutive_failures=3, failure_rate=0.5)
    assert tracker.slow_start == bk.SlowStart(window=10.0, steps=5)
    assert isinstance(service.checker, bk.health.ActiveChecker)
    assert service.retry is not None and service.retry.attempts == 2
    assert service.retry.budget is not None and service.retry.budget.burst == 5
    assert service.watcher is not None and service.watcher.min_interval == 2.0
    assert service.name == "orders"


def test_start_applies_discovery_and_stop_ends_the_threads() -> None:
    config = {k: v for k, v in FULL.items() if k != "health"}
    with bk.from_config(config) as service:
        assert [e.address for e in service.balancer.endpoints] == ["127.0.0.1:9001"]
        assert service.watcher.is_alive()
    assert not service.watcher.is_alive()


def test_defaults_round_robin_no_health_no_retry() -> None:
    service = bk.from_config({"endpoints": ["a:1"]})
    assert type(service.balancer) is bk.RoundRobin
    assert bk.health_of(service.balancer) is None
    assert (service.retry, service.watcher, service.checker) == (None, None, None)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("round_robin", bk.RoundRobin),
        ("RoundRobin", bk.RoundRobin),
        ("round-robin", bk.RoundRobin),
        ("p2c", bk.PowerOfTwoChoices),
        ("peak_ewma", bk.PeakEWMA),
        ("PEAK-EWMA", bk.PeakEWMA),
        ("maglev", bk.Maglev),
        ("least_conn", bk.LeastConnections),
        ("wrr", bk.WeightedRoundRobin),
        ("ketama", bk.Ketama),
        ("hrw", bk.Rendezvous),
    ],
)
def test_the_registry_finds_names_class_names_and_aliases(name: str, cls: type) -> None:
    assert registry.get(name) is cls
    assert type(bk.from_config({"strategy": name}).balancer) is cls


def test_every_public_strategy_is_registered_once() -> None:
    table = registry.strategies()
    public = {
        getattr(bk, n)
        for n in bk.__all__
        if isinstance(getattr(bk, n), type)
        and issubclass(getattr(bk, n), bk.BalancerBase)
        and getattr(bk, n) is not bk.BalancerBase
    }
    assert set(table.values()) == public
    assert len(table) == len(public)
    for name, cls in table.items():
        assert registry.name_of(cls) == name


def test_an_unknown_strategy_suggests_and_lists_the_known_ones() -> None:
    with pytest.raises(bk.InvalidOption, match="did you mean 'power_of_two_choices'") as caught:
        registry.get("power_of_two_choice")
    assert "round_robin" in str(caught.value) and "p2c" in str(caught.value)
    for hostile in ("", "x" * 10_000, 5, None, "\ud800"):
        with pytest.raises(bk.InvalidOption):
            registry.get(hostile)  # type: ignore[arg-type]


def test_register_adds_a_strategy_and_refuses_a_taken_name() -> None:
    class Mine(bk.RoundRobin):
        pass

    with pytest.raises(bk.InvalidOption, match="already registered"):
        registry.register("Round-Robin", Mine)
    with pytest.raises(bk.InvalidOption):
        registry.register("mine", int)  # type: ignore[arg-type]
    before = registry.names()
    registry.register("config_test_mine", Mine)
    try:
        assert type(bk.from_config({"strategy": "config-test-mine"}).balancer) is Mine
    finally:  # keep the table as other tests expect it
        registry._table = (
            {n: registry.get(n) for n in before},
            registry._indexed({n: registry.get(n) for n in before}),
        )


# A module without ``from __future__ import annotations``: its annotations are evaluated types.
_USER_MODULE = """
import balancekit as bk

class Spread(bk.RoundRobin):
    def __init__(self, endpoints=(), *, spread: float = 1.0, cap: int | None = None,
                 hook: object = None):
        super().__init__(endpoints)
        self.spread, self.cap, self.hook = spread, cap, hook
"""


def test_a_user_strategy_with_evaluated_annotations_builds_from_config() -> None:
    namespace: dict[str, Any] = {"__name__": "user_strategies"}
    exec(compile(_USER_MODULE, "user_strategies.py", "exec"), namespace)
    spread = namespace["Spread"]
    before = registry.names()
    registry.register("config_test_spread", spread)
    try:
        built = bk.from_config({"strategy": "config_test_spread"}).balancer
        assert (type(built), built.spread, built.cap) == (spread, 1.0, None)
        table = {"name": "config_test_spread", "spread": 2.5, "cap": 3}
        built = bk.from_config({"strategy": table}).balancer
        assert (built.spread, built.cap) == (2.5, 3)
        with pytest.raises(bk.InvalidOption, match="spread must be a number"):
            bk.from_config({"strategy": {"name": "config_test_spread", "spread": "x"}})
        with pytest.raises(bk.InvalidOption, match="unknown option 'hook'"):  # not plain data
            bk.from_config({"strategy": {"name": "config_test_spread", "hook": 1}})
    finally:  # keep the table as other tests expect it
        registry._table = (
            {n: registry.get(n) for n in before},
            registry._indexed({n: registry.get(n) for n in before}),
        )


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"stratgy": "p2c"}, ["'stratgy'", "balancekit.from_config", "retry, strategy"]),
        (
            {"strategy": {"name": "maglev", "tablesize": 7}},
            ["'tablesize'", "balancekit.Maglev", "table_size"],
        ),
        (
            {"health": {"passive": {"consecutive": 3}}},
            ["health.passive", "balancekit.PassiveHealth", "consecutive_failures"],
        ),
        ({"health": {"slow_start": {"windw": 3}}}, ["balancekit.SlowStart", "window"]),
        ({"retry": {"attempt": 3}}, ["balancekit.Retry", "attempts"]),
        ({"retry": {"budget": {"ration": 1}}}, ["balancekit.RetryBudget", "ratio"]),
        ({"health": {"active": {"pth": "/"}}}, ["ActiveChecker", "HttpCheck", "path"]),
        ({"endpoints": [{"adress": "a:1"}]}, ["endpoints[0]", "address"]),
        (
            {"discovery": {"source": "static", "endpoint": []}},
            ["balancekit.discovery.Watcher", "min_interval"],
        ),
    ],
)
def test_an_unknown_key_names_the_public_class_and_the_valid_keys(
    config: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(bk.InvalidOption) as caught:
        bk.from_config(config)
    for word in words:
        assert word in str(caught.value)
    assert "_Policy" not in str(caught.value)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"strategy": {"name": "maglev", "table_size": "big"}}, ["table_size", "an integer"]),
        ({"retry": {"attempts": 2.5}}, ["retry.attempts", "an integer", "2.5"]),
        ({"retry": {"backoff": True}}, ["retry.backoff", "a number"]),
        ({"health": {"passive": {"failure_rate": "x"}}}, ["failure_rate", "a number or null"]),
        ({"health": {"active": {"expected": [200, "ok"]}}}, ["expected", "a list of integers"]),
        ({"endpoints": "a:1"}, ["endpoints", "a list of endpoints"]),
        ({"health": []}, ["health", "a table"]),
        ({"name": 5}, ["name", "string"]),
        ({"discovery": {"source": "consul"}}, ["dns, file, static"]),
    ],
)
def test_a_wrong_type_says_what_is_expected(config: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(bk.InvalidOption) as caught:
        bk.from_config(config)
    for word in words:
        assert word in str(caught.value)


def test_service_call_retries_and_names_the_service_when_nothing_is_left() -> None:
    service = bk.from_config(
        {"name": "orders", "endpoints": ["a:1", "b:1"], "retry": {"attempts": 2, "backoff": 0}}
    )
    seen = []

    def send(endpoint: bk.Endpoint) -> str:
        seen.append(endpoint.address)
        if endpoint.address == "a:1":
            raise ConnectionError("refused")
        return "ok"

    assert service.call(send) == "ok"
    assert seen == ["a:1", "b:1"]
    service.balancer.mark_down("a:1")
    service.balancer.mark_down("b:1")
    with pytest.raises(bk.NoEndpointAvailable, match="service 'orders': all 2 endpoints"):
        service.call(send)


TOML = """
name = "orders"
strategy = "p2c"
endpoints = ["127.0.0.1:8001", { address = "127.0.0.1:8002", weight = 2 }]

[health.passive]
consecutive_failures = 3

[retry]
attempts = 2
budget = false
"""


def _check_toml_service(service: bk.Service) -> None:
    assert isinstance(service.balancer, bk.PowerOfTwoChoices)
    assert [e.weight for e in service.balancer.endpoints] == [1, 2]
    tracker = bk.health_of(service.balancer)
    assert tracker is not None and tracker.passive.consecutive_failures == 3
    assert service.retry is not None and service.retry.budget is None


def test_toml_yaml_and_json_files_build_the_same_service(tmp_path: Path) -> None:
    import tomllib

    import yaml

    data = tomllib.loads(TOML)
    (tmp_path / "s.toml").write_text(TOML)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "s.json").write_text(json.dumps(data))
    for name in ("s.toml", "s.yaml", "s.json"):
        _check_toml_service(bk.from_config_file(tmp_path / name))


def test_yaml_merge_keys_work_but_a_merge_bomb_is_refused(tmp_path: Path) -> None:
    """Merge keys copy the anchored table at each use (PyYAML flattens it again each time):
    1,000 merges of a 1,000-key anchor, 19 kB, took seconds and memory quadratic in the size;
    a MiB would not finish. Past MAX_YAML_MERGED copied entries the file is refused."""
    path = tmp_path / "merge.yaml"
    path.write_text(
        "endpoints:\n"
        "  - &first {address: '127.0.0.1:8001', weight: 3}\n"
        "  - {<<: *first, address: '127.0.0.1:8002'}\n"
    )
    service = bk.from_config_file(path)
    assert [(e.address, e.weight) for e in service.balancer.endpoints] == [
        ("127.0.0.1:8001", 3),
        ("127.0.0.1:8002", 3),
    ]
    keys = ", ".join(f"k{i}: 0" for i in range(1000))
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"name: &a {{{keys}}}\nendpoints: [{', '.join(['{<<: *a}'] * 1000)}]\n")
    with pytest.raises(bk.InvalidOption, match="merge keys"):
        bk.from_config_file(bomb)


def test_yaml_without_pyyaml_says_which_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "s.yml").write_text("strategy: p2c\n")
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(bk.MissingExtra, match=r"pip install 'balancekit\[yaml\]'"):
        bk.from_config_file(tmp_path / "s.yml")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.toml", "strategy = "),
        ("bad.json", "{"),
        ("bad.yaml", "a: [1,"),
        ("deep.json", "[" * 100_000),
        ("deep.yaml", "[" * 100_000),
        ("binary.toml", b"\xff\xfe"),
        ("list.json", "[1, 2]"),
    ],
)
def test_a_bad_file_raises_invalid_option(tmp_path: Path, name: str, content: str | bytes) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(bk.InvalidOption):
        bk.from_config_file(path)


def test_missing_huge_and_unknown_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(bk.InvalidOption, match="cannot read"):
        bk.from_config_file(tmp_path / "none.toml")
    (tmp_path / "huge.toml").write_text("#" * (2 << 20))
    with pytest.raises(bk.InvalidOption, match="over"):
        bk.from_config_file(tmp_path / "huge.toml")
    with pytest.raises(bk.InvalidOption, match=r"\.toml"):
        bk.from_config_file(tmp_path / "x.ini")


@pytest.mark.parametrize("name", ["\ud800", "orders\nINFO forged log line", "\x00", ""])
def test_a_service_name_must_be_printable(name: str) -> None:
    with pytest.raises(bk.InvalidOption, match="printable string"):
        bk.from_config({"name": name})


@pytest.mark.parametrize("name", ["a\0b.toml", "\ud800.toml"])
def test_an_unusable_path_raises_invalid_option(name: str) -> None:
    with pytest.raises(bk.InvalidOption, match="cannot read"):
        bk.from_config_file(name)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_configuration_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "service.toml"
    os.mkfifo(path)  # no writer ever opens it: a blocking open() never returns
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            bk.from_config_file(path)
        except BaseException as error:  # handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(30)
    assert outcome, "from_config_file blocked on a FIFO"
    assert isinstance(outcome[0], bk.InvalidOption) and "regular file" in str(outcome[0])


def test_dns_discovery_without_dnspython_says_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "balancekit.discovery.dns", raising=False)
    monkeypatch.setitem(sys.modules, "dns", None)
    with pytest.raises(bk.MissingExtra, match=r"pip install 'balancekit\[dns\]'"):
        bk.from_config({"discovery": {"source": "dns", "name": "x.example", "port": 80}})


def test_file_discovery_from_config(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.txt"
    path.write_text("127.0.0.1:8001\n127.0.0.1:8002 weight=2\n")
    config = {"discovery": {"source": "file", "path": str(path), "interval": 1.0}}
    with bk.from_config(config) as service:
        assert [e.weight for e in service.balancer.endpoints] == [1, 2]


# -- property: whatever the generator builds constructs, or raises a BalancekitError ----------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["", "\ud800", "http", "tcp", "static", "file", "dns", "127.0.0.1:80"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _options(cls: Any) -> list[str]:
    from balancekit._config_schema import options_of

    return list(options_of(cls))


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = VALUES) -> Any:
    """``good`` nine times in ten, else anything (so most configurations get deep)."""
    return st.sampled_from(range(10)).flatmap(lambda i: bad if i == 9 else good)


def _table(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A table using valid keys with plausible or hostile values, now and then a stray key."""
    good = st.one_of(
        st.integers(min_value=-3, max_value=200),
        st.floats(min_value=-1, max_value=100, allow_nan=False),
        st.booleans(),
        st.none(),
        st.lists(st.integers(100, 600), max_size=3),
    )
    key = mostly(st.sampled_from(keys), st.text(max_size=6)) if keys else st.text(max_size=6)
    return st.dictionaries(key, mostly(good), max_size=4)


STRATEGY = st.sampled_from([*registry.names(), "p2c", "nope", ""]).flatmap(
    lambda name: (
        st.just(name)
        | _table(_options(registry.get(name)) if name not in ("nope", "") else []).map(
            lambda table: {**table, "name": name}
        )
    )
)
ADDRESSES = st.sampled_from(["127.0.0.1:1", "127.0.0.1:2", "[::1]:3", "bad host", "x" * 300])
ENDPOINT = ADDRESSES | st.fixed_dictionaries(
    {"address": mostly(ADDRESSES)},
    optional={
        "weight": mostly(st.integers(-1, 300)),
        "metadata": mostly(st.dictionaries(st.text(max_size=4), SCALARS, max_size=2)),
    },
)
HEALTH = st.fixed_dictionaries(
    {},
    optional={
        "passive": mostly(st.booleans() | _table(_options(bk.PassiveHealth))),
        "slow_start": mostly(_table(_options(bk.SlowStart))),
        "active": mostly(
            st.fixed_dictionaries(
                {}, optional={"check": mostly(st.sampled_from(["http", "tcp"]))}
            ).flatmap(
                lambda base: _table(
                    [*_options(bk.health.ActiveChecker), *_options(bk.health.HttpCheck)]
                ).map(lambda table: {**table, **base})
            )
        ),
    },
)
RETRY = st.fixed_dictionaries(
    {},
    optional={"budget": mostly(st.booleans() | _table(_options(bk.RetryBudget)))},
).flatmap(lambda base: _table(_options(bk.Retry)).map(lambda table: {**table, **base}))
DISCOVERY = st.fixed_dictionaries(
    {"source": mostly(st.sampled_from(["static", "file", "nope"]))},
    optional={
        "endpoints": mostly(st.lists(ENDPOINT, max_size=3)),
        "path": mostly(st.just("/nonexistent/balancekit.txt")),
        "interval": mostly(st.floats(0, 10)),
        "min_interval": mostly(st.floats(0, 10)),
        "allow_empty": mostly(st.booleans()),
    },
)
CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "name": mostly(st.text(min_size=1, max_size=5)),
        "strategy": mostly(STRATEGY),
        "endpoints": mostly(st.lists(ENDPOINT, max_size=4, unique_by=str)),
        "health": mostly(HEALTH),
        "retry": mostly(RETRY),
        "discovery": mostly(DISCOVERY),
    },
).flatmap(lambda config: mostly(st.just(config), VALUES.map(lambda stray: {**config, "x": stray})))


@settings(max_examples=400)
@given(CONFIG)
def test_any_generated_config_builds_or_raises_a_balancekit_error(config: dict[str, Any]) -> None:
    try:
        service = bk.from_config(config)
    except bk.BalancekitError as error:
        assert str(error)  # says something
        return
    assert isinstance(service.balancer, bk.BalancerBase)  # built, not started: no thread runs
