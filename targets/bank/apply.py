"""Apply one decoded batch to PostgreSQL in a single transaction and a handful of round trips.

Round trips per batch, whatever its size: claim event ids (the idempotence check), lock the touched
accounts in id order (so concurrent instances never deadlock), then a single statement whose
data-modifying CTEs write every table. The rules run in Python between the lock and the writes.

`LedgerWriter` wraps that for the consumer: an outage is waited out (the transaction is retried
until the database answers), and a batch the database refuses because of a record's values is
split until the record is alone, so the others are applied exactly once and it goes to the DLQ.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg

from targets.bank.db import checked
from targets.bank.retry import Backoff, is_record_error, reason_of, until_done
from targets.bank.rules import Account, Effects, accounts_touched, apply_event
from targets.bank.topics import BASE_SCHEMA

log = logging.getLogger(__name__)

APPLIED, DUPLICATE, REJECTED, DLQ = "applied", "duplicate", "rejected", "dlq"

_CLAIM = (
    "INSERT INTO {s}.processed_events (event_id, status) "
    "SELECT e, 'applied' FROM unnest($1::text[]) AS e ORDER BY e "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_EARLIER = "SELECT event_id, status FROM {s}.processed_events WHERE event_id = ANY($1::text[])"
_LOCK = (
    "SELECT id, client_id, type_compte, devise, solde, statut FROM {s}.comptes "
    "WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)


@dataclass(slots=True)
class Decision:
    status: str
    reason: str | None = None
    #: for a duplicate, the first delivery's status: a replay after a crash (same op, delivered
    #: twice) can then be told from a deliberate resend by whoever knows what it expected
    original: str | None = None
    #: for a DLQ decision, what exactly was wrong (goes to the DLQ record, not to the outcome)
    detail: str | None = None


def _cols(rows: list[tuple[Any, ...]], n: int) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(n)]


async def apply_batch(
    conn: asyncpg.Connection, events: list[tuple[str, dict[str, Any]]], schema: str = BASE_SCHEMA
) -> list[Decision]:
    """Apply `events` (name, record) in order to the ledger in `schema`; returns one Decision per
    event, same order.

    Must be called inside a transaction: on any exception nothing is written.
    """
    sql = statements(schema)
    ids = [rec["event_id"] for _, rec in events]
    first_seen: dict[str, int] = {}
    for i, eid in enumerate(ids):
        first_seen.setdefault(eid, i)
    claimed = {r[0] for r in await conn.fetch(sql.claim, list(first_seen))}

    touched: set[str] = set()
    for i, (name, rec) in enumerate(events):
        if first_seen[ids[i]] == i and ids[i] in claimed:
            touched.update(accounts_touched(name, rec))
    accounts: dict[str, Account] = {}
    if touched:
        for r in await conn.fetch(sql.lock, list(touched)):
            accounts[r[0]] = Account(r[0], r[1], r[2], r[3], r[4], r[5])

    seen_before = [eid for eid in first_seen if eid not in claimed]
    earlier: dict[str, str] = {}
    if seen_before:  # only batches holding duplicates pay this round trip
        earlier = {r[0]: r[1] for r in await conn.fetch(sql.earlier, seen_before)}

    fx = Effects()
    out: list[Decision] = []
    for i, (name, rec) in enumerate(events):
        eid = ids[i]
        if first_seen[eid] != i:  # repeated within this batch: the first occurrence decided
            out.append(Decision(DUPLICATE, original=out[first_seen[eid]].original or out[first_seen[eid]].status))
            continue
        if eid not in claimed:
            out.append(Decision(DUPLICATE, original=earlier.get(eid)))
            continue
        reason = apply_event(name, rec, accounts, fx)
        if reason is None:
            out.append(Decision(APPLIED))
        else:
            out.append(Decision(REJECTED, reason))
            fx.rejected.append((eid, reason))
    await _write(conn, fx, sql.write)
    return out


_WRITE = """
WITH new_accounts AS (
    INSERT INTO {s}.comptes (id, client_id, type_compte, devise, solde, statut)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[])
), changed AS (
    UPDATE {s}.comptes AS c SET solde = v.solde, statut = v.statut, updated_at = now()
    FROM unnest($7::text[], $8::numeric[], $9::text[]) AS v(id, solde, statut) WHERE c.id = v.id
), txs AS (
    INSERT INTO {s}.transactions (id, compte_id, type, montant, reference, event_id, created_at)
    SELECT i, c, t, m, r, e, to_timestamp(ms / 1000.0)
    FROM unnest($10::text[], $11::text[], $12::text[], $13::numeric[], $14::text[], $15::text[], $16::bigint[])
         AS v(i, c, t, m, r, e, ms)
), rejected AS (
    UPDATE {s}.processed_events AS p SET status = 'rejected', reason = v.reason
    FROM unnest($17::text[], $18::text[]) AS v(event_id, reason) WHERE p.event_id = v.event_id
)
SELECT 1
"""


@dataclass(frozen=True, slots=True)
class Statements:
    """The batch's SQL for one schema (a run's namespace), formatted once."""

    claim: str
    earlier: str
    lock: str
    write: str


@lru_cache(maxsize=16)
def statements(schema: str = BASE_SCHEMA) -> Statements:
    s = checked(schema)
    return Statements(_CLAIM.format(s=s), _EARLIER.format(s=s), _LOCK.format(s=s), _WRITE.format(s=s))


async def _write(conn: asyncpg.Connection, fx: Effects, write: str) -> None:
    """Every write of the batch in one statement (one round trip); empty arrays write nothing."""
    rows = [(a.id, a.client_id, a.type_compte, a.devise, a.solde, a.statut) for a in fx.new_accounts]
    rows2 = [(a.id, a.solde, a.statut) for a in sorted(fx.changed.values(), key=lambda a: a.id)]
    if not (rows or rows2 or fx.transactions or fx.rejected):
        return
    await conn.execute(write, *_cols(rows, 6), *_cols(rows2, 3), *_cols(fx.transactions, 7), *_cols(fx.rejected, 2))


class LedgerWriter:
    """Applies batches so that no record can stop the ledger and no outage can lose one."""

    def __init__(
        self, pool: asyncpg.Pool, stopping: asyncio.Event, backoff: Backoff | None = None, schema: str = BASE_SCHEMA
    ) -> None:
        self.pool = pool
        self.schema = checked(schema)
        self.stopping = stopping
        self.backoff = backoff or Backoff()
        self.isolations = 0  # batches split to find a refused record (a metric for tests and logs)

    async def apply(self, events: list[tuple[str, dict[str, Any]]], confirmed: bool = False) -> list[Decision]:
        """One Decision per event, in order; a record the database refuses gets a DLQ decision.

        Raises `retry.Stopping` when the service stops while the database is away: nothing of
        the batch was committed by the failed attempt, and its offsets are not committed either.
        """
        try:
            return await self._retrying(events)
        except Exception as exc:
            if not is_record_error(exc):
                raise
            if len(events) == 1:
                reason, detail = reason_of(exc)
                if not confirmed and not isinstance(exc, asyncpg.PostgresError):
                    # not the database's verdict on a value: dead-letter only what fails twice
                    log.warning("event %.64r failed (%r): trying it once more", events[0][1].get("event_id"), exc)
                    await asyncio.sleep(self.backoff.delay(2))
                    return await self.apply(events, confirmed=True)
                log.error("event %.64r refused by the database: %s", events[0][1].get("event_id"), detail)
                return [Decision(DLQ, reason, detail=detail)]
            self.isolations += 1
            mid = len(events) // 2  # in order: an event still sees the effects of those before it
            return [*await self.apply(events[:mid]), *await self.apply(events[mid:])]

    async def _retrying(self, events: list[tuple[str, dict[str, Any]]]) -> list[Decision]:
        async def attempt() -> list[Decision]:
            async with self.pool.acquire() as conn, conn.transaction():
                return await apply_batch(conn, events, self.schema)

        return await until_done(attempt, self.stopping, f"batch of {len(events)}", self.backoff)


def total(decisions: list[Decision]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in decisions:
        out[d.status] = out.get(d.status, 0) + 1
    return out
