"""The ledger's tables and the read queries of the REST API.

Every statement names its schema: `bancaire` for the seed's names (namespace ""), `bancaire_<ns>` for
a namespaced run (`topics.Names.schema`), so runs sharing one database never touch each other's rows.
The schema registry table is the one thing they share (`bancaire.schema_registry`): its subjects are
namespaced with the topics, and a reset keeps it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import asyncpg

from targets.bank.registry import DDL as REGISTRY_DDL
from targets.bank.topics import BASE_SCHEMA

#: where the service reads its DSN: the environment, since a password in argv shows in `ps`
ENV_DSN = "EDABENCH_POSTGRES_DSN"
#: the ledger's tables, dropped by a reset of the seed's schema (which keeps the shared registry)
LEDGER_TABLES = ("transactions", "comptes", "processed_events", "start_offsets")
#: serialises DDL of every run on the database: concurrent CREATE ... IF NOT EXISTS can still
#: collide on PostgreSQL's catalogue (a unique violation) when two runs start at once
_DDL_LOCK = 0x62616E6B  # "bank"
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_LEDGER_DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.comptes (
    id          VARCHAR(64) PRIMARY KEY,
    client_id   VARCHAR(64) NOT NULL,
    type_compte VARCHAR(20) NOT NULL,
    devise      VARCHAR(3)  NOT NULL DEFAULT 'EUR',
    solde       NUMERIC(18,2) NOT NULL DEFAULT 0,
    statut      VARCHAR(20) NOT NULL DEFAULT 'ACTIF',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_comptes_client ON {s}.comptes (client_id);
CREATE TABLE IF NOT EXISTS {s}.transactions (
    id         VARCHAR(80) PRIMARY KEY,
    compte_id  VARCHAR(64) NOT NULL REFERENCES {s}.comptes (id),
    type       VARCHAR(30) NOT NULL,
    montant    NUMERIC(18,2) NOT NULL,
    reference  VARCHAR(100),
    event_id   VARCHAR(64) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_transactions_compte ON {s}.transactions (compte_id, created_at DESC);
-- where a fresh consumer group starts on each input partition (the end of the topic at reset),
-- so a clean run never replays records of earlier runs into a fresh ledger
CREATE TABLE IF NOT EXISTS {s}.start_offsets (
    topic     TEXT   NOT NULL,
    partition INT    NOT NULL,
    start     BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
-- one row per event ever seen: the idempotence key, and the decision taken
CREATE TABLE IF NOT EXISTS {s}.processed_events (
    event_id     VARCHAR(64) PRIMARY KEY,
    status       VARCHAR(10) NOT NULL,
    reason       VARCHAR(40),
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""


def checked(schema: str) -> str:
    """`schema` if it is a plain lowercase identifier (it goes into SQL text unquoted), else ValueError."""
    if not _IDENT.fullmatch(schema):
        raise ValueError(f"not a plain PostgreSQL schema name: {schema!r}")
    return schema


@lru_cache(maxsize=16)
def ddl(schema: str = BASE_SCHEMA) -> str:
    """The ledger's tables in `schema`, and the shared registry table."""
    return _LEDGER_DDL.format(s=checked(schema)) + REGISTRY_DDL


async def create_schema(conn: asyncpg.Connection, reset: bool = False, schema: str = BASE_SCHEMA) -> None:
    """Create the tables; with `reset`, drop the ledger's first (a clean ledger for a run).

    A namespaced schema is dropped whole; the seed's loses its ledger tables only, since it also
    holds the schema registry that every namespace shares.
    """
    sql = ddl(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
        if reset:
            if schema == BASE_SCHEMA:
                tables = ", ".join(f"{BASE_SCHEMA}.{t}" for t in LEDGER_TABLES)
                await conn.execute(f"DROP TABLE IF EXISTS {tables} CASCADE")
            else:
                await conn.execute(f"DROP SCHEMA IF EXISTS {checked(schema)} CASCADE")
        await conn.execute(sql)


async def drop_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Drop a namespaced run's schema and everything in it (never the seed's, which holds the registry)."""
    if schema == BASE_SCHEMA:
        raise ValueError(f"the shared schema {BASE_SCHEMA!r} is never dropped whole")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
        await conn.execute(f"DROP SCHEMA IF EXISTS {checked(schema)} CASCADE")


def _compte(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "client_id": row["client_id"],
        "type_compte": row["type_compte"],
        "devise": row["devise"],
        "solde": f"{row['solde']:.2f}",
        "statut": row["statut"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


_COMPTE_COLS = "id, client_id, type_compte, devise, solde, statut, created_at, updated_at"


async def get_compte(pool: asyncpg.Pool, compte_id: str, schema: str = BASE_SCHEMA) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"SELECT {_COMPTE_COLS} FROM {checked(schema)}.comptes WHERE id = $1", compte_id)
    return None if row is None else _compte(row)


async def comptes_of_client(pool: asyncpg.Pool, client_id: str, schema: str = BASE_SCHEMA) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {_COMPTE_COLS} FROM {checked(schema)}.comptes WHERE client_id = $1 ORDER BY created_at, id",
        client_id,
    )
    return [_compte(r) for r in rows]


async def transactions_of(
    pool: asyncpg.Pool, compte_id: str, limit: int, schema: str = BASE_SCHEMA
) -> list[dict[str, Any]] | None:
    """Latest transactions first; None when the account does not exist (a 404, not an empty list)."""
    s = checked(schema)
    async with pool.acquire() as conn:
        if await conn.fetchval(f"SELECT 1 FROM {s}.comptes WHERE id = $1", compte_id) is None:
            return None
        rows = await conn.fetch(
            f"SELECT id, type, montant, reference, event_id, created_at FROM {s}.transactions "
            "WHERE compte_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            compte_id,
            limit,
        )
    return [
        {
            "id": r["id"],
            "type": r["type"],
            "montant": f"{r['montant']:.2f}",
            "reference": r["reference"],
            "event_id": r["event_id"],
            "created_at": r["created_at"].isoformat(),
        }
        for r in rows
    ]


async def save_start_offsets(
    conn: asyncpg.Connection, offsets: dict[tuple[str, int], int], schema: str = BASE_SCHEMA
) -> None:
    await conn.executemany(
        f"INSERT INTO {checked(schema)}.start_offsets (topic, partition, start) VALUES ($1, $2, $3) "
        "ON CONFLICT (topic, partition) DO UPDATE SET start = EXCLUDED.start",
        [(t, p, o) for (t, p), o in offsets.items()],
    )


async def load_start_offsets(conn: asyncpg.Connection, schema: str = BASE_SCHEMA) -> dict[tuple[str, int], int]:
    rows = await conn.fetch(f"SELECT topic, partition, start FROM {checked(schema)}.start_offsets")
    return {(r["topic"], r["partition"]): r["start"] for r in rows}
