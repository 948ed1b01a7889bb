"""PostgreSQL plumbing: pool with orjson JSONB codecs, schema creation, catalogue seeding."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import asyncpg
import orjson

from targets.cart.catalogue import Product

_SCHEMA_LOCK = 0x0CA27  # advisory lock: several services may prepare one database at once
_SCHEMA = files("targets.cart").joinpath("schema.sql").read_text()  # read once, off the event loop


def _encode(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)  # JSONB binary format: version byte + text


def _decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", schema="pg_catalog", encoder=_encode, decoder=_decode, format="binary")


async def _keep(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset, a round trip per release (a third of all
    queries): the service keeps no session state on pooled connections (no temp tables,
    SETs or advisory locks; the relay removes its listener before releasing)."""


async def create_pool(dsn: str, size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min(2, size), max_size=size, init=_init, reset=_keep)


async def prepare(dsn: str, catalogue: dict[str, Product]) -> None:
    """Create the schema and (re)seed the catalogue; idempotent and safe to run concurrently."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _SCHEMA_LOCK)
        try:
            await conn.execute(_SCHEMA)
            await conn.executemany(
                "INSERT INTO products (product_id, name, price_cents) VALUES ($1, $2, $3) "
                "ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name, "
                "price_cents = EXCLUDED.price_cents",
                [(p.product_id, p.name, p.price_cents) for p in catalogue.values()],
            )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _SCHEMA_LOCK)
    finally:
        await conn.close()


async def load_catalogue(pool: asyncpg.Pool) -> dict[str, Product]:
    rows = await pool.fetch("SELECT product_id, name, price_cents FROM products WHERE is_active")
    return {r[0]: Product(r[0], r[1], r[2]) for r in rows}
