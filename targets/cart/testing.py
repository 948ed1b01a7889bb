"""Helpers for tests and measurements: a throwaway database and a running service."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from targets.cart.driver import service_args
from targets.cart.process import ServiceProcess, free_port


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def temp_database(dsn: str, prefix: str = "edabench_cart_test") -> Iterator[str]:
    """Create a uniquely named database on the server of `dsn`, yield its DSN, drop it after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_admin(dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(dsn, name)
    finally:
        asyncio.run(_admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def running_service(
    postgres: str, redis: str, kafka: str | None = None, log_path: str | None = None, **options: object
) -> Iterator[str]:
    """Start the service, wait until healthy, yield its base URL; always stop it."""
    from pathlib import Path

    port = free_port()
    services = {"postgres": postgres, "redis": redis, **({"kafka": kafka} if kafka else {})}
    opts = {"cache_prefix": f"test{secrets.token_hex(3)}:cart:", **options}
    service = ServiceProcess(service_args(opts, services, port), Path(log_path) if log_path else None)
    service.start()
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(service.wait_healthy(url, 60))
        yield url
    finally:
        service.stop()
        asyncio.run(_drop_keys(redis, str(opts["cache_prefix"])))


async def _drop_keys(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
