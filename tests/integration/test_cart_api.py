"""The cart service over real HTTP, PostgreSQL and Redis (embedded servers, a fresh database).

One service per module (snapshots every 5 events); each test uses its own carts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest

from targets.cart.client import CartClient
from targets.cart.domain import Event, replay
from targets.cart.testing import running_service, temp_database

SNAPSHOT_EVERY = 5


@pytest.fixture(scope="module")
def database(embedded_postgres: str) -> Iterator[str]:
    with temp_database(embedded_postgres) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def service(database: str, embedded_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("cart") / "service.log"
    with running_service(database, embedded_redis, log_path=str(log), snapshot_every=SNAPSHOT_EVERY) as url:
        yield url


@pytest.fixture
async def http(service: str) -> AsyncIterator[CartClient]:
    client = CartClient(service, connections=32)
    yield client
    await client.close()


@pytest.fixture
async def db(database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database)
    yield conn
    await conn.close()


def new_cart() -> str:
    return str(uuid.uuid4())


async def add(http: CartClient, cart: str, product: str = "p-0001", qty: int = 1, if_match: str | None = None):
    headers = {"If-Match": if_match} if if_match is not None else None
    body = orjson.dumps({"productId": product, "quantity": qty})
    status, data, etag = await http.call("POST", f"/api/carts/{cart}/items", body, headers)
    return status, orjson.loads(data), etag


async def get_json(http: CartClient, path: str) -> tuple[int, dict]:
    status, data, _ = await http.call("GET", path)
    return status, orjson.loads(data)


async def stored_events(db: asyncpg.Connection, cart: str) -> list[Event]:
    rows = await db.fetch(
        "SELECT event_type, event_data::text FROM domain_events WHERE aggregate_id = $1 ORDER BY event_version", cart
    )
    return [Event(r[0], orjson.loads(r[1])) for r in rows]


async def test_add_update_remove_clear_flow(http: CartClient) -> None:
    cart = new_cart()
    status, body, etag = await add(http, cart, "p-0001", 2)
    assert (status, body["version"], etag) == (200, 1, '"1"')
    await add(http, cart, "p-0002", 1)
    status, data, _ = await http.call("PATCH", f"/api/carts/{cart}/items/p-0002", b'{"quantity": 5}')
    assert status == 200 and orjson.loads(data)["version"] == 3
    status, data, _ = await http.call("DELETE", f"/api/carts/{cart}/items/p-0001")
    assert status == 200
    status, view = await get_json(http, f"/api/carts/{cart}")
    assert status == 200
    assert [(i["productId"], i["quantity"]) for i in view["items"]] == [("p-0002", 5)]
    assert view["version"] == 4 and view["totalItems"] == 5
    status, _, _ = await http.call("DELETE", f"/api/carts/{cart}/items")
    assert status == 200
    _, summary = await get_json(http, f"/api/carts/{cart}/summary")
    assert summary == {"cartId": cart, "version": 5, "lineCount": 0, "totalItems": 0, "totalPrice": 0}
    _, history = await get_json(http, f"/api/carts/{cart}/history")
    assert [e["type"] for e in history["events"]] == [
        "CartItemAdded",
        "CartItemAdded",
        "CartItemQuantityUpdated",
        "CartItemRemoved",
        "CartCleared",
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/items", b'{"productId": "p-9999", "quantity": 1}', 422, "unknown_product"),
        ("POST", "/items", b'{"productId": "p-0001", "quantity": 0}', 422, "quantity_out_of_range"),
        ("POST", "/items", b'{"productId": "p-0001", "quantity": 100}', 422, "quantity_out_of_range"),
        ("POST", "/items", b'{"productId": "p-0001", "quantity": "many"}', 422, "validation_failed"),
        ("POST", "/items", b'{"productId": "p-0001", ', 422, "malformed_json"),
        ("POST", "/items", b'["p-0001", 1]', 422, "validation_failed"),
        ("POST", "/items", b'{"productId": "' + b"x" * 20000 + b'", "quantity": 1}', 413, "body_too_large"),
        ("PATCH", "/items/p-0001", b'{"quantity": -3}', 422, "quantity_out_of_range"),
        ("DELETE", "/items/p-0001", None, 404, "cart_not_found"),
        ("GET", "", None, 404, "cart_not_found"),
        ("GET", "/summary", None, 404, "cart_not_found"),
        ("GET", "/history", None, 404, "cart_not_found"),
    ],
)
async def test_invalid_requests_get_readable_errors(
    http: CartClient, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    got, data, _ = await http.call(method, f"/api/carts/{new_cart()}{path}", body)
    answer = orjson.loads(data)
    assert (got, answer["error"]) == (status, code)
    assert answer["message"]
    if status == 422 and code != "malformed_json" and "details" in answer:
        assert answer["details"][0]["field"] in {"productId", "quantity", "cartId"}


async def test_malformed_cart_id_and_unknown_route(http: CartClient) -> None:
    status, data, _ = await http.call("GET", "/api/carts/not-a-uuid")
    assert status == 422 and orjson.loads(data)["details"][0]["field"] == "cartId"
    status, data, _ = await http.call("GET", "/api/nothing/here")
    assert status == 404 and orjson.loads(data)["error"] == "not_found"


async def test_stale_if_match_gets_409_with_current_version(http: CartClient) -> None:
    cart = new_cart()
    await add(http, cart)
    await add(http, cart, "p-0002")
    status, body, etag = await add(http, cart, "p-0003", if_match='"1"')
    assert status == 409
    assert body["currentVersion"] == 2 and body["expectedVersion"] == 1
    assert etag == '"2"'
    status, body, _ = await add(http, cart, "p-0003", if_match='"2"')
    assert status == 200 and body["version"] == 3


async def test_bad_if_match_is_422(http: CartClient) -> None:
    status, body, _ = await add(http, new_cart(), if_match='"soon"')
    assert status == 422 and body["details"][0]["field"] == "If-Match"


async def test_concurrent_writers_end_consistent(http: CartClient, db: asyncpg.Connection) -> None:
    cart = new_cart()
    await add(http, cart, "p-0001")
    results = await asyncio.gather(*(add(http, cart, f"p-{n:04d}") for n in range(2, 22)))
    statuses = [s for s, _, _ in results]
    assert set(statuses) <= {200, 409}
    accepted = sorted(b["version"] for s, b, _ in results if s == 200)
    assert len(accepted) == len(set(accepted))  # no version handed out twice
    events = await stored_events(db, cart)
    assert len(events) == 1 + statuses.count(200)  # every 200 is one event, no 409 left one behind
    _, view = await get_json(http, f"/api/carts/{cart}")
    assert view == replay(cart, events).view()


async def test_read_after_write_is_never_stale(http: CartClient) -> None:
    cart = new_cart()
    await add(http, cart)

    async def reader(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await http.call("GET", f"/api/carts/{cart}")  # keep refilling the cache concurrently

    stop = asyncio.Event()
    readers = [asyncio.create_task(reader(stop)) for _ in range(4)]
    try:
        for n in range(2, 22):
            status, body, _ = await add(http, cart, f"p-{n:04d}")
            assert status == 200
            _, view = await get_json(http, f"/api/carts/{cart}")
            _, summary = await get_json(http, f"/api/carts/{cart}/summary")
            assert view["version"] >= body["version"]
            assert summary["version"] >= body["version"]
    finally:
        stop.set()
        await asyncio.gather(*readers)


async def test_snapshot_every_n_events(http: CartClient, db: asyncpg.Connection) -> None:
    cart = new_cart()
    for n in range(1, 13):
        assert (await add(http, cart, f"p-{n:04d}"))[0] == 200
    row = await db.fetchrow("SELECT version, aggregate_data::text FROM cart_snapshots WHERE aggregate_id = $1", cart)
    assert row is not None and row[0] == 10
    events = await stored_events(db, cart)
    assert orjson.loads(row[1]) == replay(cart, events[:10]).state()
    # loading = snapshot + tail: the next write still sees every line
    status, body, _ = await add(http, cart, "p-0001")
    assert status == 200 and body["version"] == 13
    assert next(i for i in body["items"] if i["productId"] == "p-0001")["quantity"] == 2


async def test_catalogue_is_paged(http: CartClient) -> None:
    status, page = await get_json(http, "/api/products?offset=20&limit=5")
    assert status == 200
    assert [p["productId"] for p in page["items"]] == [f"p-{n:04d}" for n in range(21, 26)]
    assert page["total"] == 500 and all(p["price"] > 0 for p in page["items"])
    status, body = await get_json(http, "/api/products?limit=1000")
    assert status == 422 and body["details"][0]["field"] == "limit"


async def test_health_reports_each_dependency(http: CartClient) -> None:
    status, body = await get_json(http, "/health")
    assert status == 200 and body["status"] == "up"
    assert {c["name"]: c["status"] for c in body["checks"]} == {"database": "up", "cache": "up", "eventBus": "up"}


async def test_metrics_export_operations_and_cache_ratio(http: CartClient) -> None:
    cart = new_cart()
    await add(http, cart)
    await http.call("GET", f"/api/carts/{cart}")
    await http.call("GET", f"/api/carts/{cart}")
    status, data, _ = await http.call("GET", "/metrics")
    text = data.decode()
    assert status == 200
    assert 'cart_operations_total{operation="add_item"}' in text
    assert "cart_cache_hit_ratio " in text and "cart_cache_hits_total " in text


def test_service_log_is_quiet(service: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No tracebacks in the service log after the suite's requests."""
    logs = list(Path(tmp_path_factory.getbasetemp()).glob("cart*/service.log"))
    assert logs and all("Traceback" not in p.read_text() for p in logs)


def test_two_services_with_stale_aggregate_caches_stay_consistent(database: str, embedded_redis: str) -> None:
    """Each process caches the carts it wrote; writes alternating between two processes make
    every cached entry stale, which must cost a retry, never a lost or wrong event."""
    cart = new_cart()

    async def scenario(url_a: str, url_b: str) -> None:
        a, b = CartClient(url_a), CartClient(url_b)
        try:
            for n in range(1, 21):
                status, body, _ = await add(a if n % 2 else b, cart, f"p-{n:04d}")
                assert (status, body["version"]) == (200, n)
            # an If-Match with the true version is accepted even where the cached entry is stale
            status, body, _ = await add(b, cart, "p-0001", if_match='"20"')
            assert (status, body["version"]) == (200, 21)
            status, body, _ = await add(a, cart, "p-0001", if_match='"20"')
            assert status == 409 and body["currentVersion"] == 21
        finally:
            await a.close()
            await b.close()

    async def stored() -> tuple[list[Event], dict]:
        conn = await asyncpg.connect(database)
        try:
            raw = await conn.fetchval("SELECT cart_data::text FROM cart_projections WHERE user_id = $1", cart)
            return await stored_events(conn, cart), orjson.loads(raw)
        finally:
            await conn.close()

    with (
        running_service(database, embedded_redis, aggregate_cache=1000) as url_a,
        running_service(database, embedded_redis, aggregate_cache=1000) as url_b,
    ):
        asyncio.run(scenario(url_a, url_b))
    events, projection = asyncio.run(stored())
    assert len(events) == 21
    assert projection == replay(cart, events).view()
