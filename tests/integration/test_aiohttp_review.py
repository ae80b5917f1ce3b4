"""Regression tests from the adversarial review of balancekit.aiohttp: how a body that breaks
while being read is counted. An in-process aiohttp.web server that stalls part-way through a
body (until the test ends), so the break is the client's read timeout, not a race."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

import balancekit as bk
from balancekit.integrations.aiohttp import BalancedMiddleware


async def _stalling_server(release: asyncio.Event) -> tuple[web.AppRunner, str]:
    async def answer(request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse()
        await stream.prepare(request)
        await stream.write(b"x" * 1024)
        await release.wait()  # silent part-way through the body
        return stream

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"{host}:{port}"


def test_a_body_read_timeout_counts_as_a_failure() -> None:
    """The server answered, then went silent: aiohttp's ``sock_read`` timeout breaks the body
    with a ServerTimeoutError (not a ClientPayloadError). Was counted as a success."""

    async def main() -> bk.Balancer:
        release = asyncio.Event()
        runner, address = await _stalling_server(release)
        lb = bk.LeastResponseTime([address])
        try:
            middleware = BalancedMiddleware(lb, eject=None)
            async with aiohttp.ClientSession("http://backend", middlewares=(middleware,)) as s:
                timeout = aiohttp.ClientTimeout(sock_read=0.2)
                async with s.get("/", timeout=timeout) as response:
                    assert response.status == 200
                    with pytest.raises(aiohttp.ServerTimeoutError):
                        await response.read()
        finally:
            release.set()
            await runner.cleanup()
        return lb

    lb = asyncio.run(main())
    (stats,) = lb.stats().values()
    assert (stats.in_flight, stats.succeeded, stats.failed) == (0, 0, 1)


def test_host_matches_an_internationalised_name_in_its_ascii_form() -> None:
    """``host=`` takes an ASCII name, so an IDN service is named by its punycode; yarl's
    ``url.host`` is the decoded form, so the request was passed through unbalanced (to DNS)."""

    async def main() -> tuple[int, str]:
        async def answer(request: web.Request) -> web.Response:
            return web.Response(text=request.host)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        lb = bk.RoundRobin([f"{host}:{port}"])
        middleware = BalancedMiddleware(lb, host="XN--bcher-kva.example.")
        try:
            async with (
                aiohttp.ClientSession("http://Bücher.example", middlewares=(middleware,)) as s,
                s.get("/", timeout=aiohttp.ClientTimeout(total=5)) as response,
            ):
                return response.status, await response.text()
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) == (200, "xn--bcher-kva.example")


def test_a_body_read_cancelled_by_the_caller_is_given_back_uncounted() -> None:
    """``asyncio.timeout`` (or ``wait_for``) around the whole fetch cancelled the body read;
    the release in ``async with``'s exit counted it as a success with the time until the
    cancellation, so a server slow in its body looked fast and healthy."""

    async def main() -> bk.Balancer:
        release = asyncio.Event()
        runner, address = await _stalling_server(release)
        lb = bk.LeastResponseTime([address])
        try:
            middleware = BalancedMiddleware(lb, eject=None)
            async with aiohttp.ClientSession("http://backend", middlewares=(middleware,)) as s:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.3), s.get("/") as response:
                        assert response.status == 200
                        await response.read()
        finally:
            release.set()
            await runner.cleanup()
        return lb

    lb = asyncio.run(main())
    (stats,) = lb.stats().values()
    assert (stats.in_flight, stats.succeeded, stats.failed, stats.latency) == (0, 0, 0, None)


@pytest.mark.parametrize(
    "host", ["backend:8080", "http://backend", "backend/api", "user@backend", "a b", "a" * 300]
)
def test_a_host_that_no_url_can_have_is_refused(host: str) -> None:
    """Was accepted, then matched no request: every request silently bypassed the balancer
    (``host="backend:8080"`` is an easy mistake: the option takes a name, any port)."""
    with pytest.raises(bk.InvalidOption, match="host"):
        BalancedMiddleware(bk.RoundRobin(["127.0.0.1:1"]), host=host)
