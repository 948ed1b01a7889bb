"""Schema registry clients: Confluent's REST API, or a table in PostgreSQL for the embedded stack.

Both give the same contract: `register(subject, schema) -> id` (idempotent for the same schema text)
and `get(id) -> schema text | None`. Callers cache; these clients do not.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol

import aiohttp
import asyncpg

ENV_URL = "EDABENCH_SCHEMA_REGISTRY_URL"
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistry(Protocol):
    async def register(self, subject: str, schema: str) -> int: ...

    async def get(self, schema_id: int) -> str | None: ...

    async def close(self) -> None: ...


class RegistryError(RuntimeError):
    """The registry answered with something other than an id or a schema."""


class ConfluentRegistry:
    """Confluent Schema Registry REST API (also served by Redpanda and Karapace)."""

    def __init__(self, url: str) -> None:
        self._url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def register(self, subject: str, schema: str) -> int:
        async with self._http().post(
            f"{self._url}/subjects/{subject}/versions",
            json={"schema": schema},
            headers={"Content-Type": _CONTENT_TYPE},
        ) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200 or "id" not in body:
                raise RegistryError(f"register {subject}: HTTP {resp.status} {body}")
            return int(body["id"])

    async def get(self, schema_id: int) -> str | None:
        async with self._http().get(f"{self._url}/schemas/ids/{schema_id}") as resp:
            if resp.status == 404:
                return None
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise RegistryError(f"get {schema_id}: HTTP {resp.status} {body}")
            return str(body["schema"])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


#: one table for every namespace (subjects are namespaced with the topics, ids are per subject and
#: schema): a driver registers where the service looks, whichever run's schema holds the ledger
DDL = """
CREATE SCHEMA IF NOT EXISTS bancaire;
CREATE TABLE IF NOT EXISTS bancaire.schema_registry (
    id          SERIAL PRIMARY KEY,
    subject     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    schema      TEXT NOT NULL,
    UNIQUE (subject, fingerprint)
);
"""


class PostgresRegistry:
    """Registry kept in `bancaire.schema_registry`, shared by every namespace; created with the ledger."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def register(self, subject: str, schema: str) -> int:
        fp = hashlib.sha256(schema.encode()).hexdigest()
        # DO UPDATE (a no-op) so RETURNING also yields the id of an existing row
        return int(
            await self._pool.fetchval(
                "INSERT INTO bancaire.schema_registry (subject, fingerprint, schema) VALUES ($1, $2, $3) "
                "ON CONFLICT (subject, fingerprint) DO UPDATE SET subject = EXCLUDED.subject RETURNING id",
                subject,
                fp,
                schema,
            )
        )

    async def get(self, schema_id: int) -> str | None:
        if not 0 < schema_id < 2**31:
            return None
        return await self._pool.fetchval("SELECT schema FROM bancaire.schema_registry WHERE id = $1", schema_id)

    async def close(self) -> None:
        return None


def make_registry(pool: asyncpg.Pool, url: str | None = None) -> SchemaRegistry:
    """Confluent REST when a URL is given (argument or environment), else the PostgreSQL table."""
    url = url or os.environ.get(ENV_URL)
    return ConfluentRegistry(url) if url else PostgresRegistry(pool)
