"""The ledger's tables (schema `bancaire`, per the seed) and the read queries of the REST API."""

from __future__ import annotations

from typing import Any

import asyncpg

from targets.bank.registry import DDL as REGISTRY_DDL

#: where the service reads its DSN: the environment, since a password in argv shows in `ps`
ENV_DSN = "EDABENCH_POSTGRES_DSN"

DDL = (
    """
CREATE SCHEMA IF NOT EXISTS bancaire;
CREATE TABLE IF NOT EXISTS bancaire.comptes (
    id          VARCHAR(64) PRIMARY KEY,
    client_id   VARCHAR(64) NOT NULL,
    type_compte VARCHAR(20) NOT NULL,
    devise      VARCHAR(3)  NOT NULL DEFAULT 'EUR',
    solde       NUMERIC(18,2) NOT NULL DEFAULT 0,
    statut      VARCHAR(20) NOT NULL DEFAULT 'ACTIF',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_comptes_client ON bancaire.comptes (client_id);
CREATE TABLE IF NOT EXISTS bancaire.transactions (
    id         VARCHAR(80) PRIMARY KEY,
    compte_id  VARCHAR(64) NOT NULL REFERENCES bancaire.comptes (id),
    type       VARCHAR(30) NOT NULL,
    montant    NUMERIC(18,2) NOT NULL,
    reference  VARCHAR(100),
    event_id   VARCHAR(64) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_transactions_compte ON bancaire.transactions (compte_id, created_at DESC);
-- one row per event ever seen: the idempotence key, and the decision taken
-- where a fresh consumer group starts on each input partition (the end of the topic at reset),
-- so a clean run never replays records of earlier runs into a fresh ledger
CREATE TABLE IF NOT EXISTS bancaire.start_offsets (
    topic     TEXT   NOT NULL,
    partition INT    NOT NULL,
    start     BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS bancaire.processed_events (
    event_id     VARCHAR(64) PRIMARY KEY,
    status       VARCHAR(10) NOT NULL,
    reason       VARCHAR(40),
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""
    + REGISTRY_DDL
)


async def create_schema(conn: asyncpg.Connection, reset: bool = False) -> None:
    """Create the tables; with `reset`, drop everything first (a clean ledger for a run)."""
    async with conn.transaction():
        if reset:
            await conn.execute("DROP SCHEMA IF EXISTS bancaire CASCADE")
        await conn.execute(DDL)


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


async def get_compte(pool: asyncpg.Pool, compte_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"SELECT {_COMPTE_COLS} FROM bancaire.comptes WHERE id = $1", compte_id)
    return None if row is None else _compte(row)


async def comptes_of_client(pool: asyncpg.Pool, client_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {_COMPTE_COLS} FROM bancaire.comptes WHERE client_id = $1 ORDER BY created_at, id", client_id
    )
    return [_compte(r) for r in rows]


async def transactions_of(pool: asyncpg.Pool, compte_id: str, limit: int) -> list[dict[str, Any]] | None:
    """Latest transactions first; None when the account does not exist (a 404, not an empty list)."""
    async with pool.acquire() as conn:
        if await conn.fetchval("SELECT 1 FROM bancaire.comptes WHERE id = $1", compte_id) is None:
            return None
        rows = await conn.fetch(
            "SELECT id, type, montant, reference, event_id, created_at FROM bancaire.transactions "
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


async def save_start_offsets(conn: asyncpg.Connection, offsets: dict[tuple[str, int], int]) -> None:
    await conn.executemany(
        "INSERT INTO bancaire.start_offsets (topic, partition, start) VALUES ($1, $2, $3) "
        "ON CONFLICT (topic, partition) DO UPDATE SET start = EXCLUDED.start",
        [(t, p, o) for (t, p), o in offsets.items()],
    )


async def load_start_offsets(conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
    rows = await conn.fetch("SELECT topic, partition, start FROM bancaire.start_offsets")
    return {(r["topic"], r["partition"]): r["start"] for r in rows}
