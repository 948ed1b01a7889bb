"""Prepare hook of the bank locustfile: the Avro schema ids, resolved on the asyncio side.

Locust's processes run on gevent, where asyncpg and aiohttp do not; the edabench command
calls this before starting them and hands the ids over with the target options.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from targets.bank.avro import Encoder
from targets.bank.registry import make_registry


async def schema_ids(options: dict[str, Any]) -> dict[str, Any]:
    """{"schema_ids": {event: id}}; registering again returns the ids the launch registered."""
    pool = await asyncpg.create_pool(options["services"]["postgres"], min_size=1, max_size=1)
    registry = make_registry(pool, options.get("schema_registry_url"))
    try:
        return {"schema_ids": await Encoder(registry).register_all()}
    finally:
        await registry.close()
        await pool.close()
