"""Build a balancer, its health, its retries and its discovery from data: a dict, TOML or YAML.

>>> import balancekit as bk
>>> service = bk.from_config({
...     "name": "orders",
...     "strategy": "p2c",
...     "endpoints": ["127.0.0.1:8001", {"address": "127.0.0.1:8002", "weight": 3}],
...     "health": {"passive": {"consecutive_failures": 3}, "slow_start": {"window": 10}},
...     "retry": {"attempts": 2, "budget": {"ratio": 0.2}},
... })
>>> type(service.balancer).__name__, service.retry.attempts, len(service.balancer)
('PowerOfTwoChoices', 2, 2)
>>> bk.from_config({"strategy": "round_robin", "retyr": {}})
Traceback (most recent call last):
  ...
balancekit._errors.InvalidOption: unknown option 'retyr' in the configuration ...: valid options are
discovery, endpoints, health, name, retry, strategy

The sections (every one optional; see docs/configuration.md for each option):

- ``name``: the service's name, used in errors and by :meth:`Service.transport`.
- ``strategy``: a name from :mod:`balancekit.strategies.registry` (``"p2c"``, ``"maglev"``),
  or a table ``{name = "maglev", table_size = 65537}`` with the strategy's own options.
  Default ``"round_robin"``.
- ``endpoints``: ``"host:port"`` strings or ``{address, weight, metadata}`` tables.
- ``health``: ``passive`` (true, false, or the options of :class:`~balancekit.PassiveHealth`),
  ``slow_start`` (:class:`~balancekit.SlowStart`), ``active`` (``check = "http"`` or ``"tcp"``,
  the check's options and those of :class:`~balancekit.health.ActiveChecker`).
- ``retry``: the options of :class:`~balancekit.Retry`, with ``budget`` a table of
  :class:`~balancekit.RetryBudget` options, or false for no budget.
- ``discovery``: ``source = "static" | "dns" | "file"``, the source's options and those of
  :class:`~balancekit.discovery.Watcher`.

Every mistake raises :class:`~balancekit.InvalidOption` (or :class:`~balancekit.MissingExtra`
for a discovery source whose extra is not installed) naming the section, the key and the public
class, before anything starts: an unknown key lists the valid ones, a wrong type says what was
expected. Nothing runs until :meth:`Service.start` (the watcher's first answer, the checker's
thread); ``with service:`` starts and stops both.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ._config_schema import INT, STR, expect, options_of, section, take
from ._core import BalancerBase
from ._endpoint import MAX_WEIGHT, Endpoint
from ._errors import InvalidOption, NoEndpointAvailable, missing_extra
from ._files import read_regular
from ._options import describe
from .health import ActiveChecker, HttpCheck, PassiveHealth, SlowStart, TcpCheck, with_health
from .retry import Retry, RetryBudget
from .strategies import registry

__all__ = ["Service", "from_config", "from_config_file"]

T = TypeVar("T")

#: The largest configuration file read (1 MiB): a configuration is small; a huge file is a
#: mistake, refused before it is parsed.
MAX_FILE = 1 << 20
#: The most endpoints a configuration lists.
MAX_ENDPOINTS = 100_000

_TOP = ("discovery", "endpoints", "health", "name", "retry", "strategy")
_SOURCES = ("dns", "file", "static")


class Service:
    """What :func:`from_config` builds: a balancer with its retry policy, discovery watcher and
    active checker (each None when not configured), not started.

    ``start()`` applies discovery's first answer (raising its error) and starts the checker;
    ``stop()`` stops both; ``with service:`` does both. Thread-safe as its parts are.
    """

    def __init__(
        self,
        name: str | None,
        balancer: BalancerBase,
        retry: Retry | None,
        watcher: Any,
        checker: ActiveChecker | None,
    ) -> None:
        self.name = name
        self.balancer = balancer
        self.retry = retry
        self.watcher = watcher  #: a balancekit.discovery.Watcher, or None
        self.checker = checker

    def start(self) -> Service:
        """Apply discovery's first answer and start the watcher and the checker."""
        if self.watcher is not None:
            self.watcher.start()
        if self.checker is not None:
            self.checker.start()
        return self

    def stop(self) -> None:
        """Stop the checker and the watcher (each waits for its thread)."""
        if self.checker is not None:
            self.checker.stop()
        if self.watcher is not None:
            self.watcher.stop()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, fn: Callable[[Endpoint], T], context: Any = None) -> T:
        """``fn(endpoint)`` with the configured retries (one attempt without a retry section).

        :class:`~balancekit.NoEndpointAvailable` names the service."""
        retry = self.retry if self.retry is not None else Retry(attempts=1, budget=None)
        try:
            return retry.call(self.balancer, fn, context)
        except NoEndpointAvailable as error:
            if self.name is None:
                raise
            raise NoEndpointAvailable(f"service {describe(self.name)}: {error}") from error

    def transport(self, **options: Any) -> Any:
        """A :class:`balancekit.httpx.BalancedTransport` over this service's balancer, with its
        retry policy and name (``pip install 'balancekit[httpx]'``); ``options`` are the
        transport's own."""
        from .integrations.httpx import BalancedTransport

        if self.retry is not None:
            options.setdefault("retry", self.retry)
        if self.name is not None:
            options.setdefault("name", self.name)
        return BalancedTransport(self.balancer, **options)

    def __repr__(self) -> str:
        return (
            f"Service(name={self.name!r}, balancer={type(self.balancer).__name__},"
            f" endpoints={len(self.balancer)}, retry={self.retry is not None},"
            f" discovery={self.watcher is not None}, active={self.checker is not None})"
        )


def _endpoint(where: str, item: object) -> Endpoint | str:
    if isinstance(item, str):
        return item
    table = section(where, item)
    if "address" not in table:
        raise InvalidOption(f"{where} needs an address (a 'host:port' string)")
    address = expect(where, "address", table["address"], (STR,))
    weight = expect(where, "weight", table.get("weight", 1), (INT,))
    for key in table:
        if key not in ("address", "weight", "metadata"):
            raise InvalidOption(
                f"unknown option {describe(key)} in {where} (options of balancekit.Endpoint):"
                " valid options are address, metadata, weight"
            )
    metadata = section(f"{where}.metadata", table.get("metadata", {}))
    assert isinstance(address, str) and isinstance(weight, int)
    if not 1 <= weight <= MAX_WEIGHT:
        raise InvalidOption(
            f"{where}.weight must be from 1 to {MAX_WEIGHT}, not {describe(weight)}"
        )
    return Endpoint(address, weight=weight, metadata=dict(metadata))


def _endpoints(where: str, value: object) -> list[Endpoint | str]:
    if not isinstance(value, list | tuple) or len(value) > MAX_ENDPOINTS:
        raise InvalidOption(
            f"{where} must be a list of endpoints ('host:port' strings or tables), at most"
            f" {MAX_ENDPOINTS}, not {describe(value)}"
        )
    return [_endpoint(f"{where}[{i}]", item) for i, item in enumerate(value)]


def _strategy(value: object, endpoints: list[Endpoint | str]) -> BalancerBase:
    if isinstance(value, str):
        name, table = value, {}
    else:
        table = dict(section("strategy", value))
        if "name" not in table:
            raise InvalidOption(
                "strategy needs a name (e.g. 'round_robin', 'p2c', 'maglev'): known strategies"
                f" are {', '.join(registry.names())}"
            )
        name = table.pop("name")  # type: ignore[assignment]
    cls = registry.get(name)
    public = f"balancekit.{cls.__name__}"
    built_in = cls.__module__.startswith("balancekit.")  # else registered by the user
    options = take("strategy", table, options_of(cls, strict=built_in), public)
    return cls(endpoints, **options)


def _passive(value: object) -> PassiveHealth:
    if value is True:
        return PassiveHealth()
    if value is False:  # detection off: panic and active verdicts only
        return PassiveHealth(consecutive_failures=None, failure_rate=None)
    table = section("health.passive", value)
    options = take("health.passive", table, options_of(PassiveHealth), "balancekit.PassiveHealth")
    return PassiveHealth(**options)


def _active(value: object, balancer: BalancerBase) -> ActiveChecker:
    table = section("health.active", value)
    kind = expect("health.active", "check", table.get("check", "http"), (STR,))
    checks: dict[str, type[HttpCheck] | type[TcpCheck]] = {"http": HttpCheck, "tcp": TcpCheck}
    check_class = checks.get(kind) if isinstance(kind, str) else None
    if check_class is None:
        raise InvalidOption(f"health.active.check must be 'http' or 'tcp', not {describe(kind)}")
    check_options = options_of(check_class)
    checker_options = options_of(ActiveChecker)
    public = f"balancekit.health.ActiveChecker and balancekit.health.{check_class.__name__}"
    options = take(
        "health.active", table, {**checker_options, **check_options}, public, extra=("check",)
    )
    check = check_class(**{k: v for k, v in options.items() if k in check_options})
    rest = {k: v for k, v in options.items() if k not in check_options}
    return ActiveChecker(balancer, check=check, **rest)


def _health(value: object, balancer: BalancerBase) -> ActiveChecker | None:
    table = section("health", value)
    take("health", table, {}, "balancekit.with_health", extra=("active", "passive", "slow_start"))
    passive = _passive(table.get("passive", True))
    slow_start = None
    if "slow_start" in table:
        where = "health.slow_start"
        options = take(
            where,
            section(where, table["slow_start"]),
            options_of(SlowStart),
            "balancekit.SlowStart",
        )
        slow_start = SlowStart(**options)
    with_health(balancer, passive, slow_start=slow_start)
    return _active(table["active"], balancer) if "active" in table else None


def _retry(value: object) -> Retry:
    table = section("retry", value)
    options: dict[str, Any] = take(
        "retry", table, options_of(Retry), "balancekit.Retry", extra=("budget",)
    )
    budget = table.get("budget", True)
    if budget is False:
        options["budget"] = None
    elif budget is not True:
        where = "retry.budget"
        budget_options = take(
            where, section(where, budget), options_of(RetryBudget), "balancekit.RetryBudget"
        )
        options["budget"] = RetryBudget(**budget_options)
    return Retry(**options)


def _source(table: Mapping[str, object]) -> tuple[Any, dict[str, Any]]:
    """The discovery source a ``[discovery]`` table names, and the watcher's options."""
    from . import discovery

    kind = expect("discovery", "source", table.get("source"), (STR,))
    if kind not in _SOURCES:
        raise InvalidOption(
            f"discovery.source must be one of {', '.join(_SOURCES)}, not {describe(kind)}"
        )
    watcher_options = options_of(discovery.Watcher.__init__)
    if kind == "static":
        options = take(
            "discovery",
            table,
            watcher_options,
            "balancekit.discovery.Watcher and Static",
            extra=("source", "endpoints"),
        )
        return discovery.Static(
            _endpoints("discovery.endpoints", table.get("endpoints", []))
        ), options
    cls: Any = (
        discovery.DNS if kind == "dns" else discovery.File
    )  # DNS: MissingExtra without dnspython
    positional = "name" if kind == "dns" else "path"
    if positional not in table:
        raise InvalidOption(f"discovery.source = {kind!r} needs {positional}")
    first = expect("discovery", positional, table[positional], (STR,))
    source_options = options_of(cls)
    public = f"balancekit.discovery.Watcher and {cls.__name__}"
    options = take(
        "discovery",
        table,
        {**watcher_options, **source_options},
        public,
        extra=("source", positional),
    )
    source = cls(first, **{k: v for k, v in options.items() if k in source_options})
    return source, {k: v for k, v in options.items() if k not in source_options}


def from_config(config: Mapping[str, Any]) -> Service:
    """Build a :class:`Service` from a configuration mapping (see the module docs)."""
    from . import discovery

    table = section("the configuration", config)
    take("the configuration", table, {}, "balancekit.from_config", extra=_TOP)
    name = table.get("name")
    if name is not None and (
        not isinstance(name, str) or not 0 < len(name) <= 255 or not name.isprintable()
    ):  # printable: no control characters, no lone surrogate ("\ud800") in errors and labels
        raise InvalidOption(
            f"name must be a printable string of 1 to 255 characters, not {describe(name)}"
        )
    endpoints = _endpoints("endpoints", table.get("endpoints", []))
    retry = _retry(table["retry"]) if "retry" in table else None
    source = watcher_options = None
    if "discovery" in table:
        source, watcher_options = _source(section("discovery", table["discovery"]))
    balancer = _strategy(table.get("strategy", "round_robin"), endpoints)
    checker = _health(table["health"], balancer) if "health" in table else None
    watcher = None
    if source is not None:
        watcher = discovery.Watcher(balancer, source, **(watcher_options or {}))
    return Service(name, balancer, retry, watcher, checker)


def from_config_file(path: str | os.PathLike[str]) -> Service:
    """Read ``path`` (``.toml``; ``.yaml``/``.yml`` with PyYAML installed; ``.json``) and build a
    :class:`Service` from it. A file that cannot be read or parsed raises InvalidOption."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise InvalidOption(
            f"a configuration file ends in .toml, .yaml, .yml or .json, not {describe(str(file))}"
        )
    try:  # never blocks (a FIFO, a device is refused); a NUL or a surrogate is a ValueError
        read = read_regular(file, MAX_FILE)
    except (OSError, ValueError) as error:
        raise InvalidOption(
            f"cannot read the configuration {describe(str(file))}: {error}"
        ) from error
    data = read.data
    if len(data) > MAX_FILE:
        raise InvalidOption(f"the configuration {describe(str(file))} is over {MAX_FILE} bytes")
    if read.before != read.after:
        raise InvalidOption(
            f"the configuration {describe(str(file))} changed while it was read: try again"
        )
    return from_config(_parse(file, suffix, data))


#: The most key-value pairs YAML merge keys (``<<: *anchor``) may copy in one document. Each
#: merge copies the anchored mapping (and PyYAML flattens it again at each use), so a small
#: file of merges of one large anchor costs time and memory quadratic in its size: 40 kB took
#: minutes. A configuration merges a few small tables.
MAX_YAML_MERGED = 10_000


def _yaml_loader(yaml: Any) -> Any:
    """PyYAML's SafeLoader, refusing a document whose merge keys copy over
    :data:`MAX_YAML_MERGED` pairs (aliases alone share one object: they cost nothing)."""

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        merged = 0

        def flatten_mapping(self, node: Any) -> None:
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    merges = value.value if isinstance(value, yaml.SequenceNode) else [value]
                    for merge in merges:
                        if isinstance(merge, yaml.MappingNode):
                            self.merged += len(merge.value)
            if self.merged > MAX_YAML_MERGED:
                raise yaml.YAMLError(f"YAML merge keys ('<<') copy over {MAX_YAML_MERGED} entries")
            super().flatten_mapping(node)

    return Loader


def _parse(file: Path, suffix: str, data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        try:
            import yaml  # type: ignore[import-untyped]
        except ModuleNotFoundError as error:
            if (error.name or "").partition(".")[0] != "yaml":
                raise
            raise missing_extra("a YAML configuration", "pyyaml", "yaml", "yaml") from error
        return yaml.load(text, Loader=_yaml_loader(yaml))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # TOMLDecodeError, JSON
        raise InvalidOption(
            f"cannot parse the configuration {describe(str(file))}: {error}"
        ) from error
    except Exception as error:  # yaml.YAMLError has no common base with the others
        if type(error).__module__.startswith("yaml"):
            raise InvalidOption(
                f"cannot parse the configuration {describe(str(file))}: {error}"
            ) from error
        raise
