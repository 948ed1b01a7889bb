"""Async mode: outbox -> embedded Kafka broker -> projector, and read-your-writes probes."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from harness.protocol import DriverContext, Op
from targets.cart.client import CartClient
from targets.cart.domain import Event, replay
from targets.cart.driver import PROJECTION_METRIC, RYW_METRIC, CartDriver
from targets.cart.testing import running_service, temp_database

TOPIC = f"cart-events-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def database(embedded_postgres: str) -> Iterator[str]:
    with temp_database(embedded_postgres) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def service(database: str, embedded_redis: str, embedded_kafka: str) -> Iterator[str]:
    with running_service(database, embedded_redis, embedded_kafka, mode="async", topic=TOPIC) as url:
        yield url


@pytest.fixture
async def http(service: str) -> AsyncIterator[CartClient]:
    client = CartClient(service, connections=32)
    yield client
    await client.close()


async def _add(http: CartClient, cart: str, n: int) -> int:
    body = orjson.dumps({"productId": f"p-{n % 40 + 1:04d}", "quantity": 1})
    status, _, _ = await http.call("POST", f"/api/carts/{cart}/items", body)
    return status


async def _caught_up(db: asyncpg.Connection, carts: list[str], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        behind = await db.fetchval(
            "SELECT count(*) FROM (SELECT aggregate_id, max(event_version) v FROM domain_events "
            "WHERE aggregate_id = ANY($1::uuid[]) GROUP BY aggregate_id) e "
            "LEFT JOIN cart_projections p ON p.user_id = e.aggregate_id WHERE p.version IS DISTINCT FROM e.v",
            carts,
        )
        if behind == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def _outbox_drained(db: asyncpg.Connection, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while await db.fetchval("SELECT count(*) FROM event_outbox"):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _projected_count(http: CartClient) -> float:
    _, data, _ = await http.call("GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith("cart_projector_events_total "):
            return float(line.split()[1])
    return 0.0


async def _wait_count(http: CartClient, want: float, timeout_s: float = 5.0) -> float:
    deadline = time.monotonic() + timeout_s
    got = await _projected_count(http)
    while got < want and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        got = await _projected_count(http)
    return got


async def test_projector_catches_up_without_lost_or_doubled_events(
    http: CartClient, database: str, embedded_kafka: str
) -> None:
    carts = [str(uuid.uuid4()) for _ in range(8)]
    before = await _projected_count(http)
    statuses = await asyncio.gather(*(_add(http, c, n) for n in range(15) for c in carts))
    assert all(s in (200, 409) for s in statuses)
    db = await asyncpg.connect(database)
    try:
        assert await _caught_up(db, carts)
        total = 0
        for cart in carts:
            rows = await db.fetch(
                "SELECT event_type, event_data::text FROM domain_events WHERE aggregate_id = $1 ORDER BY event_version",
                cart,
            )
            total += len(rows)
            proj = orjson.loads(
                await db.fetchval("SELECT cart_data::text FROM cart_projections WHERE user_id = $1", cart)
            )
            assert proj == replay(cart, [Event(r[0], orjson.loads(r[1])) for r in rows]).view()
        assert total == statuses.count(200)
        # the relay deletes a row after the broker acked it, so the projector may apply an event first
        assert await _outbox_drained(db), "every published outbox row is deleted"
        # each event applied exactly once (the counter moves just after the projection commits)
        assert await _wait_count(http, before + total) == before + total

        # a redelivered (duplicate) message changes nothing
        producer = AIOKafkaProducer(bootstrap_servers=embedded_kafka, enable_idempotence=False)
        await producer.start()
        try:
            dup = {"cartId": carts[0], "version": 1, "type": "CartItemAdded", "data": {}}
            await producer.send_and_wait(TOPIC, orjson.dumps(dup), key=carts[0].encode())
        finally:
            await producer.stop()
        await asyncio.sleep(0.5)
        assert await _projected_count(http) == before + total
    finally:
        await db.close()


class _Recorder:
    def __init__(self) -> None:
        self.observed: list[tuple[str, int]] = []
        self.gauges: list[tuple[str, float]] = []

    def complete(self, op_id: str, error: str | None = None, completed_ns: int | None = None) -> None:
        raise AssertionError("the cart driver completes synchronously")

    def observe(self, metric: str, value_us: int) -> None:
        self.observed.append((metric, value_us))

    def gauge(self, name: str, value: float) -> None:
        self.gauges.append((name, value))


async def test_driver_reports_read_your_writes_lag(service: str, database: str) -> None:
    recorder = _Recorder()
    driver = CartDriver()
    ctx = DriverContext(
        options={"url": service, "mode": "async", "ryw_sample": 1.0},
        completions=recorder,
        services={"postgres": database},
    )
    await driver.start(ctx)
    try:
        carts = [str(uuid.uuid4()) for _ in range(5)]
        for n, cart in enumerate(carts):
            payload = {"cart": cart, "product": f"p-{n + 1:04d}", "quantity": 1}
            assert (await driver.send(Op(str(n), "add", payload))).error is None
        deadline = time.monotonic() + 10
        while len(recorder.observed) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        metrics = sorted(m for m, _ in recorder.observed)
        assert metrics == [PROJECTION_METRIC] * 5 + [RYW_METRIC] * 5
        assert all(v > 0 for _, v in recorder.observed)
        assert await driver.verify() == []
    finally:
        await driver.stop()
