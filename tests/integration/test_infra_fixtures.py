"""The session fixtures give working services to sync and async tests alike."""

from __future__ import annotations

import asyncpg
import redis


def test_embedded_redis_from_a_sync_test(embedded_redis: str) -> None:
    client = redis.Redis.from_url(embedded_redis)
    try:
        assert client.ping()
    finally:
        client.close()


async def test_embedded_postgres_from_an_async_test(embedded_postgres: str) -> None:
    conn = await asyncpg.connect(embedded_postgres)
    try:
        assert await conn.fetchval("SELECT 41 + 1") == 42
    finally:
        await conn.close()


async def test_embedded_kafka_bootstrap(embedded_kafka: str) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=embedded_kafka, enable_idempotence=False)
    await producer.start()
    try:
        meta = await producer.send_and_wait("fixture-topic", b"x")
        assert meta.offset >= 0
    finally:
        await producer.stop()


def test_run_dir_is_fresh(run_dir) -> None:
    assert run_dir.is_dir() and not any(run_dir.iterdir())
