"""HTTPS to endpoints listed by IP, with a certificate issued for the logical name only.

The certificates come from the openssl command line (a throwaway CA and a server certificate
for ``backend``); the test is skipped when openssl is missing.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

import balancekit as bk
from balancekit.integrations.httpx import BalancedTransport
from balancekit.integrations.requests import BalancedAdapter

from ._server import ThreadServer


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=balancekit test CA", cwd=d)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=backend",
             cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=DNS:backend\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
             cwd=d)  # fmt: skip
    return d


@pytest.fixture
def tls_servers(certs: Path) -> Iterator[list[ThreadServer]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    pool = [ThreadServer(f"127.0.0.{i + 2}", f"s{i + 1}", tls=context) for i in range(2)]
    yield pool
    for server in pool:
        server.stop()


def test_httpx_verifies_the_logical_name_over_https(
    certs: Path, tls_servers: list[ThreadServer]
) -> None:
    lb = bk.RoundRobin([s.address for s in tls_servers])
    verify = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    transport = BalancedTransport(lb, transport=httpx.HTTPTransport(verify=verify))
    with httpx.Client(base_url="https://backend", transport=transport) as client:
        answers = [client.get("/").json() for _ in range(4)]
    assert [a["id"] for a in answers] == ["s1", "s2", "s1", "s2"]
    assert {a["host"] for a in answers} == {"backend"}
    # the same request verified against the endpoint's IP fails: the check really happens
    strict = BalancedTransport(
        bk.RoundRobin([tls_servers[0].address]),
        transport=httpx.HTTPTransport(verify=verify),
        host_header="endpoint",
        retry=None,
    )
    with (
        httpx.Client(base_url="https://backend", transport=strict) as client,
        pytest.raises(httpx.ConnectError, match="certificate"),
    ):
        client.get("/")


def test_requests_verifies_the_logical_name_over_https(
    certs: Path, tls_servers: list[ThreadServer]
) -> None:
    lb = bk.RoundRobin([s.address for s in tls_servers])
    with requests.Session() as session:
        session.mount("https://backend/", BalancedAdapter(lb))
        answers = [
            session.get("https://backend/", verify=str(certs / "ca.pem")).json() for _ in range(4)
        ]
    assert [a["id"] for a in answers] == ["s1", "s2", "s1", "s2"]
    with requests.Session() as session:
        plain = requests.adapters.HTTPAdapter()  # checks the endpoint's IP: fails
        session.mount("https://backend/", BalancedAdapter(lb, adapter=plain, retry=None))
        with pytest.raises(requests.exceptions.SSLError):
            session.get("https://backend/", verify=str(certs / "ca.pem"))


def test_aiohttp_verifies_the_logical_name_over_https(
    certs: Path, tls_servers: list[ThreadServer]
) -> None:
    import asyncio

    import aiohttp

    from balancekit.integrations.aiohttp import BalancedMiddleware

    lb = bk.RoundRobin([s.address for s in tls_servers])
    verify = ssl.create_default_context(cafile=str(certs / "ca.pem"))

    async def main() -> list[dict[str, str]]:
        middleware = BalancedMiddleware(lb)
        connector = aiohttp.TCPConnector(ssl=verify)
        async with aiohttp.ClientSession(
            "https://backend", connector=connector, middlewares=(middleware,)
        ) as session:
            answers = []
            for _ in range(4):
                async with session.get("/") as response:
                    answers.append(await response.json())
            # a server name the request sets itself is used: the IP, which the cert lacks
            strict = BalancedMiddleware(bk.RoundRobin([tls_servers[0].address]), retry=None)
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get("/", server_hostname="127.0.0.2", middlewares=(strict,))
            return answers

    answers = asyncio.run(main())
    assert [a["id"] for a in answers] == ["s1", "s2", "s1", "s2"]
    assert {a["host"] for a in answers} == {"backend"}
