"""Limits of the cart service that a client meets: a request past the admission bound is
answered 503 with Retry-After (not queued into a timeout), a body that never completes is
answered 408 and its connection closed, and malformed numbers are a readable 4xx."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import aiohttp
import orjson
import pytest

from targets.cart.testing import running_service, temp_database


@pytest.fixture(scope="module")
def database(embedded_postgres: str) -> Iterator[str]:
    with temp_database(embedded_postgres) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def service(database: str, embedded_redis: str) -> Iterator[str]:
    with running_service(database, embedded_redis, max_inflight=2, body_timeout_s=0.5) as url:
        yield url


async def test_requests_past_the_admission_bound_get_503_with_retry_after(service: str) -> None:
    body = orjson.dumps({"productId": "p-0001", "quantity": 1})
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(service, connector=connector) as session:

        async def one() -> tuple[int, str | None, bytes]:
            async with session.post(f"/api/carts/{uuid.uuid4()}/items", data=body) as resp:
                return resp.status, resp.headers.get("Retry-After"), await resp.read()

        answers: list[tuple[int, str | None, bytes]] = []
        for _ in range(10):  # 64 at once against a bound of 2: a round without a 503 is rare
            answers += await asyncio.gather(*(one() for _ in range(64)))
            if any(status == 503 for status, _, _ in answers):
                break
    assert {status for status, _, _ in answers} == {200, 503}
    shed = [(retry, orjson.loads(data)) for status, retry, data in answers if status == 503]
    assert all(retry == "1" and doc["error"] == "overloaded" and doc["message"] for retry, doc in shed)


async def test_health_is_admitted_past_the_bound(service: str) -> None:
    async with aiohttp.ClientSession(service) as session:
        results = await asyncio.gather(*(session.get("/health") for _ in range(16)))
        statuses = [r.status for r in results]
        for r in results:
            r.release()
    assert statuses == [200] * 16


async def test_a_body_shorter_than_its_content_length_gets_408_and_the_connection_closes(service: str) -> None:
    host, port = service.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /api/carts/{uuid.uuid4()}/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 64\r\n\r\n".encode()
            + b'{"productId":'
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)  # read() returns at EOF: the server closed
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert orjson.loads(body)["error"] == "request_timeout"


@pytest.mark.parametrize(
    "if_match", ['"999999999999999999999999999"', '"²"', '"' + "9" * 10_000 + '"'], ids=["27-digits", "²", "10000"]
)
async def test_an_if_match_that_is_no_version_is_a_422(service: str, if_match: str) -> None:
    async with aiohttp.ClientSession(service) as session:
        path = f"/api/carts/{uuid.uuid4()}/items"
        async with session.post(path, data=b'{"productId":"p-0001","quantity":1}', headers={"If-Match": if_match}) as r:
            status, doc = r.status, orjson.loads(await r.read())
    assert (status, doc["details"][0]["field"]) == (422, "If-Match")


@pytest.mark.parametrize(("query", "field"), [("limit=%C2%B2", "limit"), ("offset=%E2%91%A0", "offset")])
async def test_page_numbers_that_are_not_ascii_digits_are_a_422(service: str, query: str, field: str) -> None:
    async with aiohttp.ClientSession(service) as session:
        async with session.get(f"/api/products?{query}") as r:
            status, doc = r.status, orjson.loads(await r.read())
    assert (status, doc["details"][0]["field"]) == (422, field)
