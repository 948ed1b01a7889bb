"""The cart service with two workers sharing its port: optimistic concurrency and
read-your-writes hold whichever worker takes a request (each keeps its own copies of the
carts it wrote, so these tests also prove a stale copy never costs a wrong answer)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest

from targets.cart.client import CartClient
from targets.cart.domain import Event, replay
from targets.cart.driver import service_args
from targets.cart.process import ServiceProcess, free_port
from targets.cart.testing import running_service, temp_database


@pytest.fixture(scope="module")
def database(embedded_postgres: str) -> Iterator[str]:
    with temp_database(embedded_postgres) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def service(database: str, embedded_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    port = free_port()
    options = {"workers": 2, "snapshot_every": 5, "cache_prefix": f"test{secrets.token_hex(3)}:cart:"}
    log = tmp_path_factory.mktemp("cart-workers") / "service.log"
    proc = ServiceProcess(service_args(options, {"postgres": database, "redis": embedded_redis}, port), log)
    proc.start()
    try:
        asyncio.run(proc.wait_healthy(f"http://127.0.0.1:{port}", 60))
        proc.port = port  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def http(service: ServiceProcess) -> AsyncIterator[CartClient]:
    client = CartClient(f"http://127.0.0.1:{service.port}", connections=32)  # type: ignore[attr-defined]
    yield client
    await client.close()


async def add(http: CartClient, cart: str, product: str, if_match: str | None = None) -> tuple[int, dict]:
    headers = {"If-Match": if_match} if if_match is not None else None
    body = orjson.dumps({"productId": product, "quantity": 1})
    status, data, _ = await http.call("POST", f"/api/carts/{cart}/items", body, headers)
    return status, orjson.loads(data)


async def stored(database: str, cart: str) -> tuple[list[Event], dict]:
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch(
            "SELECT event_type, event_data::text FROM domain_events WHERE aggregate_id = $1 ORDER BY event_version",
            cart,
        )
        projection = await conn.fetchval("SELECT cart_data::text FROM cart_projections WHERE user_id = $1", cart)
        return [Event(r[0], orjson.loads(r[1])) for r in rows], orjson.loads(projection)
    finally:
        await conn.close()


def test_the_service_runs_two_workers_on_one_port(service: ServiceProcess) -> None:
    assert len(service.pids()) >= 3  # the supervisor and its two workers


async def test_concurrent_writers_get_each_version_once(http: CartClient, database: str) -> None:
    cart = str(uuid.uuid4())
    results = await asyncio.gather(*(add(http, cart, f"p-{n:04d}") for n in range(1, 41)))
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 409}
    versions = sorted(b["version"] for s, b in results if s == 200)
    assert versions == list(range(1, len(versions) + 1))  # no version handed out twice, none skipped
    events, projection = await stored(database, cart)
    assert len(events) == len(versions)
    assert projection == replay(cart, events).view()


async def test_every_read_after_a_write_shows_it_on_any_worker(http: CartClient) -> None:
    cart = str(uuid.uuid4())
    for n in range(1, 16):
        status, body = await add(http, cart, f"p-{n:04d}")
        assert status == 200
        reads = await asyncio.gather(
            *(http.call("GET", f"/api/carts/{cart}" + ("/summary" if i % 2 else "")) for i in range(16))
        )
        assert all(orjson.loads(data)["version"] >= body["version"] for _, data, _ in reads)


async def test_a_stale_if_match_is_a_409_on_any_worker(http: CartClient) -> None:
    cart = str(uuid.uuid4())
    for n in range(1, 5):
        assert (await add(http, cart, f"p-{n:04d}"))[0] == 200
    results = await asyncio.gather(*(add(http, cart, "p-0009", if_match='"2"') for _ in range(8)))
    assert {s for s, _ in results} == {409}
    assert {b["currentVersion"] for _, b in results} == {4}


def test_a_refusal_decided_on_a_stale_copy_is_checked_against_the_store(database: str, embedded_redis: str) -> None:
    """Process A keeps its copy of the cart at version 1 (no p-0002); B adds p-0002. An update
    of p-0002 sent to A must see B's write, not answer 404 from A's copy."""
    cart = str(uuid.uuid4())

    async def scenario(url_a: str, url_b: str) -> None:
        a, b = CartClient(url_a), CartClient(url_b)
        try:
            assert (await add(a, cart, "p-0001"))[0] == 200
            assert (await add(b, cart, "p-0002"))[0] == 200
            status, data, _ = await a.call("PATCH", f"/api/carts/{cart}/items/p-0002", b'{"quantity": 4}')
            body = orjson.loads(data)
            assert (status, body["version"]) == (200, 3)
            assert {i["productId"]: i["quantity"] for i in body["items"]} == {"p-0001": 1, "p-0002": 4}
        finally:
            await a.close()
            await b.close()

    with (
        running_service(database, embedded_redis, aggregate_cache=1000) as url_a,
        running_service(database, embedded_redis, aggregate_cache=1000) as url_b,
    ):
        asyncio.run(scenario(url_a, url_b))


def test_workers_log_no_traceback(service: ServiceProcess) -> None:
    assert service.log_path is not None and "Traceback" not in Path(service.log_path).read_text()
