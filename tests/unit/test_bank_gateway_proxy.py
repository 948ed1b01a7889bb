"""The gateway's proxy and routes (the seed's service_proxy_test.go, as behaviours), served by
uvicorn in this process in front of a stand-in bank API on a local port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest_asyncio
import uvicorn
from aiohttp import web

from targets.bank.gateway.app import Gateway
from targets.bank.gateway.hub import Hub
from targets.bank.gateway.proxy import Backend
from targets.bank.gateway.server import _Server
from targets.bank.gateway.web import Cors
from targets.bank.procs import free_port
from targets.bank.topics import EVENT_TOPICS

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UI = "http://localhost:5173"


async def _echo(request: web.Request) -> web.Response:
    """What the backend saw of the request."""
    return web.json_response({"path": request.path, "query": request.query_string, "method": request.method,
                              "body": (await request.read()).decode(),
                              "headers": {k.lower(): v for k, v in request.headers.items()}},
                             headers={"X-Backend": "bank"})


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.json_response({})


async def _missing(request: web.Request) -> web.Response:
    return web.json_response({"error": "compte_not_found", "id": "C9"}, status=404)


@contextlib.asynccontextmanager
async def bank_api() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("GET", "/api/v1/slow", _slow)
    app.router.add_route("GET", "/api/v1/comptes/C9", _missing)
    app.router.add_route("*", "/{tail:.*}", _echo)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def gateway(app: Gateway) -> AsyncIterator[str]:
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                    ws="websockets-sansio", ws_per_message_deflate=False))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@dataclass
class Front:
    url: str
    backend: str
    http: aiohttp.ClientSession
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
        async with self.http.request(method, self.url + path, **kw) as r:
            return r.status, await r.json(content_type=None), r.headers


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


@contextlib.asynccontextmanager
async def front(urls: list[str] | None = None, timeout_s: float = 5.0) -> AsyncIterator[Front]:
    async with bank_api() as backend, aiohttp.ClientSession(auto_decompress=False) as session, \
            aiohttp.ClientSession() as http:
        bancaire = Backend("bancaire", urls or [backend], session, timeout_s, "/api/v1/bancaire/", "/api/v1/")
        app = Gateway(Hub(EVENT_TOPICS.values()), bancaire, None, Cors([UI]), access_log=False)
        async with gateway(app) as url:
            yield Front(url, backend, http, session)


@pytest_asyncio.fixture
async def gw() -> AsyncIterator[Front]:
    async with front() as f:
        yield f


async def test_a_bancaire_request_reaches_the_bank_apis_own_path_with_its_query(gw: Front) -> None:
    status, body, headers = await gw.call("GET", "/api/v1/bancaire/comptes/C1/transactions?limit=5")
    assert status == 200 and body["path"] == "/api/v1/comptes/C1/transactions" and body["query"] == "limit=5"
    assert headers["X-Backend"] == "bank"


async def test_the_bank_apis_status_and_body_come_back_as_they_are(gw: Front) -> None:
    status, body, _ = await gw.call("GET", "/api/v1/bancaire/comptes/C9")
    assert status == 404 and body == {"error": "compte_not_found", "id": "C9"}


async def test_the_callers_headers_reach_the_backend_but_not_its_host(gw: Front) -> None:
    _, body, _ = await gw.call("GET", "/api/v1/bancaire/x", headers={
        "Host": "gateway.example", "Authorization": "Bearer t", "X-Request-Id": "r-1", "Accept-Language": "fr"})
    seen = body["headers"]
    assert seen["authorization"] == "Bearer t" and seen["x-request-id"] == "r-1" and seen["accept-language"] == "fr"
    assert seen["host"] == gw.backend.removeprefix("http://") and seen["x-forwarded-host"] == "gateway.example"


async def test_the_callers_trace_continues_at_the_backend_under_the_gateways_span(gw: Front) -> None:
    _, body, headers = await gw.call("GET", "/api/v1/bancaire/x",
                                     headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    at_backend = body["headers"]["traceparent"]
    assert at_backend.startswith(f"00-{TRACE}-") and "00f067aa0ba902b7" not in at_backend
    assert headers["traceparent"] == at_backend  # the caller learns the span the backend was called from


async def test_a_request_without_a_trace_starts_one_that_the_backend_and_the_caller_share(gw: Front) -> None:
    _, body, headers = await gw.call("GET", "/api/v1/bancaire/x")
    assert body["headers"]["traceparent"] == headers["traceparent"]
    assert len(headers["traceparent"].split("-")[1]) == 32


async def test_a_request_body_is_forwarded(gw: Front) -> None:
    _, body, _ = await gw.call("POST", "/api/v1/bancaire/x", data=b'{"a": 1}',
                               headers={"Content-Type": "application/json"})
    assert body["method"] == "POST" and body["body"] == '{"a": 1}'
    assert body["headers"]["content-type"] == "application/json"


async def test_a_backend_that_is_down_is_a_503_saying_which_service_and_why() -> None:
    dead = dead_url()
    async with front([dead]) as f:
        status, body, headers = await f.call("GET", "/api/v1/bancaire/comptes/C1")
    assert status == 503 and headers["Retry-After"] == "1"
    assert body["error"] == "service_unavailable" and body["service"] == "bancaire" and dead in body["detail"]
    assert body["trace_id"] == headers["traceparent"].split("-")[1]


async def test_a_backend_slower_than_the_timeout_is_a_503() -> None:
    async with front(timeout_s=0.3) as f:
        status, body, _ = await f.call("GET", "/api/v1/bancaire/slow")
    assert status == 503 and body["error"] == "service_timeout" and "0.3 s" in body["detail"]


async def test_a_get_goes_to_the_next_instance_when_one_is_down() -> None:
    async with bank_api() as live:
        async with front([dead_url(), live]) as f:
            answers = [await f.call("GET", "/api/v1/bancaire/x") for _ in range(2)]
    assert [a[0] for a in answers] == [200, 200]


async def test_a_post_is_never_sent_to_a_second_instance() -> None:
    async with bank_api() as live:
        async with front([dead_url(), live]) as f:
            status, body, _ = await f.call("POST", "/api/v1/bancaire/x", data=b"once")
    assert status == 503 and body["error"] == "service_unavailable"


async def test_an_allowed_origins_preflight_is_answered(gw: Front) -> None:
    async with gw.http.options(gw.url + "/api/v1/bancaire/x", headers={
            "Origin": UI, "Access-Control-Request-Method": "POST"}) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == UI


async def test_another_origins_preflight_is_refused_with_a_reason(gw: Front) -> None:
    status, body, _ = await gw.call("OPTIONS", "/api/v1/bancaire/x", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
    assert status == 403 and body["error"] == "origin_not_allowed"


async def test_an_allowed_origin_gets_cors_headers_on_a_proxied_answer(gw: Front) -> None:
    _, _, headers = await gw.call("GET", "/api/v1/bancaire/x", headers={"Origin": UI})
    assert headers["Access-Control-Allow-Origin"] == UI and "traceparent" in headers["Access-Control-Expose-Headers"]


async def test_an_unknown_route_is_a_404_naming_it(gw: Front) -> None:
    status, body, _ = await gw.call("GET", "/api/v2/nothing")
    assert status == 404 and "/api/v2/nothing" in body["detail"]


async def test_metrics_are_prometheus_text_with_the_requests_counted(gw: Front) -> None:
    await gw.call("GET", "/api/v1/bancaire/x")
    async with gw.http.get(gw.url + "/metrics") as r:
        text = await r.text()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert 'gateway_http_requests_total{method="GET",route="bancaire",status="200"}' in text
    assert "gateway_ws_clients" in text


async def test_health_is_a_503_naming_the_instance_that_is_down() -> None:
    dead = dead_url()
    async with front([dead]) as f:
        status, body, _ = await f.call("GET", "/api/v1/health")
    instance = body["services"]["bancaire"]["instances"][0]
    assert status == 503 and body["status"] == "unhealthy" and instance["url"] == dead and not instance["healthy"]


async def test_a_gateway_without_a_simulation_api_says_so(gw: Front) -> None:
    status, body, _ = await gw.call("GET", "/api/v1/simulation/status")
    assert status == 503 and body["service"] == "simulation"
