"""The service's PostgreSQL pool: callers beyond its size wait their turn, a cancelled waiter
loses no connection, and a connection that breaks is replaced."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import asyncpg
import pytest

from targets.cart.db import Pool, create_pool
from targets.cart.testing import temp_database


@pytest.fixture(scope="module")
def database(embedded_postgres: str) -> Iterator[str]:
    with temp_database(embedded_postgres) as dsn:
        yield dsn


async def test_callers_beyond_the_pool_size_each_get_their_own_answer(database: str) -> None:
    pool = await create_pool(database, 2)
    try:
        answers = await asyncio.gather(*(pool.fetchval("SELECT $1::int FROM pg_sleep(0.01)", n) for n in range(20)))
        assert answers == list(range(20))
    finally:
        await pool.close()


async def test_a_cancelled_waiter_leaves_the_connection_to_the_next_caller(database: str) -> None:
    pool = await create_pool(database, 1)
    try:
        held = await pool.acquire()
        waiter = asyncio.create_task(pool.fetchval("SELECT 1"))
        await asyncio.sleep(0.05)  # the waiter is queued behind the held connection
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        await pool.release(held)
        assert await asyncio.wait_for(pool.fetchval("SELECT 2"), 10) == 2
    finally:
        await pool.close()


async def test_a_connection_killed_by_the_server_is_replaced(database: str) -> None:
    pool = await create_pool(database, 1)
    admin = await asyncpg.connect(database)
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
            await pool.fetchval("SELECT 1")  # the first use finds it dead
        new_pid = await asyncio.wait_for(pool.fetchval("SELECT pg_backend_pid()"), 10)
        assert new_pid != pid
    finally:
        await admin.close()
        await pool.close()


async def test_a_closed_pool_refuses_new_callers(database: str) -> None:
    pool: Pool = await create_pool(database, 1)
    held = await pool.acquire()
    await pool.release(held)
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError):
        await pool.fetchval("SELECT 1")
