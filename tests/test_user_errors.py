"""Errors a new user meets say what to do: a missing extra, a misspelt option, a service down."""

from __future__ import annotations

import asyncio
import enum
import importlib
import inspect
import pkgutil
import socket
import sys

import pytest

import balancekit as bk

# (what the user touches, the module it imports, the module to hide, the extra to install)
EXTRAS = [
    (lambda: bk.httpx, "balancekit.integrations.httpx", "httpx", "httpx"),
    (lambda: bk.requests, "balancekit.integrations.requests", "requests", "requests"),
    (lambda: bk.discovery.DNS, "balancekit.discovery.dns", "dns", "dns"),
    (lambda: bk.grpc, "balancekit.integrations.grpc", "grpc", "grpc"),
    (lambda: bk.aiohttp, "balancekit.integrations.aiohttp", "aiohttp", "aiohttp"),
    (lambda: bk.discovery.Etcd, "balancekit.discovery.etcd", "httpx", "etcd"),
    (
        lambda: importlib.import_module("balancekit.metrics.otel"),
        "balancekit.metrics.otel",
        "opentelemetry",
        "otel",
    ),
    (
        lambda: importlib.import_module("balancekit.metrics.prometheus"),
        "balancekit.metrics.prometheus",
        "prometheus_client",
        "prometheus",
    ),
]


@pytest.mark.parametrize(("touch", "module", "hidden", "extra"), EXTRAS)
def test_a_missing_extra_names_the_pip_install_to_run(
    monkeypatch: pytest.MonkeyPatch, touch: object, module: str, hidden: str, extra: str
) -> None:
    for loaded in [name for name in sys.modules if name.startswith(f"{hidden}.")]:
        monkeypatch.setitem(sys.modules, loaded, None)  # a cached submodule would still import
    monkeypatch.setitem(sys.modules, hidden, None)  # import hidden -> ModuleNotFoundError
    monkeypatch.delitem(sys.modules, module, raising=False)
    for name in ("httpx", "requests", "grpc", "aiohttp"):  # cached in the package once imported
        monkeypatch.delitem(vars(bk), name, raising=False)
    with pytest.raises(bk.MissingExtra) as caught:
        touch()  # type: ignore[operator]
    assert f"pip install 'balancekit[{extra}]'" in str(caught.value)
    assert isinstance(caught.value, ImportError) and caught.value.name == hidden


def test_rate_limit_without_limits_names_the_guard_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from balancekit.guard import rate

    monkeypatch.setitem(sys.modules, "limits", None)
    with pytest.raises(bk.MissingExtra, match=r"pip install 'balancekit\[guard\]'"):
        rate._limits()


def test_every_extra_named_in_an_error_exists_in_pyproject() -> None:
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert {"httpx", "requests", "dns", "guard", "yaml", "envoy"} <= set(extras)


def _public_classes() -> list[tuple[str, type]]:
    found: dict[type, str] = {}
    for info in pkgutil.walk_packages(bk.__path__, "balancekit."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            value = getattr(module, name, None)
            if (
                inspect.isclass(value)
                and not issubclass(value, BaseException)
                and value.__init__ is not object.__init__
                and not getattr(value, "_is_protocol", False)
                and not issubclass(value, dict)  # TypedDicts
                and not issubclass(value, enum.Enum)
            ):
                found.setdefault(value, name)
    return sorted(((name, cls) for cls, name in found.items()), key=lambda item: item[0])


@pytest.mark.parametrize(("name", "cls"), _public_classes())
def test_a_misspelt_option_names_the_public_class(name: str, cls: type) -> None:
    parameters = inspect.signature(cls).parameters.values()
    given = {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):  # **options
        given["balancer"] = bk.RoundRobin(["127.0.0.1:1"])
    with pytest.raises(TypeError) as caught:
        cls(*given.values(), nonexistent_option_xyz=1)
    assert f"{name}.__init__() got an unexpected keyword argument" in str(caught.value)


def _closed_ports(n: int) -> list[str]:
    addresses = []
    for _ in range(n):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            addresses.append(f"127.0.0.1:{probe.getsockname()[1]}")
    return addresses


def test_httpx_all_endpoints_down_names_the_service_and_how_many_were_tried() -> None:
    httpx = pytest.importorskip("httpx")
    lb = bk.RoundRobin(_closed_ports(3))
    transport = bk.httpx.BalancedTransport(lb, retry=bk.Retry(attempts=3, backoff=0))
    with (
        httpx.Client(base_url="http://orders", transport=transport) as client,
        pytest.raises(httpx.ConnectError) as caught,
    ):
        client.get("/")
    message = str(caught.value)
    assert "service 'orders'" in message and "all 3 endpoints tried (of 3)" in message
    assert isinstance(caught.value, bk.NoEndpointAvailable)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_httpx_name_option_and_an_empty_pool() -> None:
    httpx = pytest.importorskip("httpx")
    transport = bk.httpx.BalancedTransport(bk.RoundRobin(), name="billing")
    with (
        httpx.Client(base_url="http://b", transport=transport) as client,
        pytest.raises(bk.NoEndpointAvailable, match="service 'billing' \\(0 endpoints\\)"),
    ):
        client.get("/")
    for bad in (5, "", "x" * 300):
        with pytest.raises(bk.InvalidOption, match="name must be"):
            bk.httpx.BalancedTransport(bk.RoundRobin(), name=bad)


def test_async_httpx_all_endpoints_down_names_the_service() -> None:
    httpx = pytest.importorskip("httpx")
    lb = bk.RoundRobin(_closed_ports(2))
    transport = bk.httpx.AsyncBalancedTransport(lb, retry=bk.Retry(attempts=3, backoff=0))

    async def get() -> None:
        async with httpx.AsyncClient(base_url="http://users", transport=transport) as client:
            await client.get("/")

    with pytest.raises(bk.NoEndpointAvailable, match="'users': all 2 endpoints tried"):
        asyncio.run(get())


def test_requests_all_endpoints_down_names_the_service() -> None:
    requests = pytest.importorskip("requests")
    lb = bk.RoundRobin(_closed_ports(2))
    with requests.Session() as session:
        session.mount("http://orders/", bk.requests.BalancedAdapter(lb, name="orders-api"))
        with pytest.raises(requests.ConnectionError) as caught:
            session.get("http://orders/x", timeout=5)
    assert "service 'orders-api': all 2 endpoints tried (of 2)" in str(caught.value)
    assert isinstance(caught.value, bk.NoEndpointAvailable)
