"""Database failures: which ones a record causes (isolate it) and which ones time heals (wait)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from targets.bank import apply as apply_module
from targets.bank.apply import APPLIED, DLQ, Decision, LedgerWriter
from targets.bank.retry import Backoff, Stopping, is_record_error, is_transient, reason_of, until_done


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.StringDataRightTruncationError("value too long for type character varying(64)"),
        asyncpg.NumericValueOutOfRangeError("numeric field overflow"),
        asyncpg.CharacterNotInRepertoireError("invalid byte sequence"),
        asyncpg.CheckViolationError("check constraint"),
        asyncpg.ProgramLimitExceededError("index row size exceeds maximum"),
        KeyError("compte_id"),
    ],
)
def test_errors_a_record_causes_are_record_errors(exc: Exception) -> None:
    assert is_record_error(exc) and not is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
)
def test_outages_are_transient(exc: Exception) -> None:
    assert is_transient(exc) and not is_record_error(exc)


def test_an_environment_error_is_neither_isolated_nor_called_transient() -> None:
    exc = asyncpg.UndefinedTableError('relation "bancaire.comptes" does not exist')
    assert not is_record_error(exc) and not is_transient(exc)  # retried, logged as an error


def test_a_refused_record_is_labelled_with_the_condition_name_and_sqlstate() -> None:
    exc = asyncpg.StringDataRightTruncationError("value too long for type character varying(64)")
    exc.sqlstate = "22001"
    reason, detail = reason_of(exc)
    assert reason == "db:string_data_right_truncation"
    assert detail == "SQLSTATE 22001: value too long for type character varying(64)"


def test_backoff_doubles_from_its_base_up_to_its_cap() -> None:
    b = Backoff(base_s=0.1, cap_s=1.0, rng=random.Random(1))
    delays = [b.delay(n) for n in range(6)]
    assert all(0.08 <= d <= 0.1 for d in delays[:1])
    assert all(0.8 <= d <= 1.0 for d in delays[4:])
    assert delays[1] > delays[0] and delays[2] > delays[1]


async def test_an_outage_is_retried_until_the_call_succeeds() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        return "done"

    assert await until_done(flaky, asyncio.Event(), "test", Backoff(base_s=0.001, cap_s=0.002)) == "done"
    assert calls == 4


async def test_a_record_error_reaches_the_caller_without_retry() -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise asyncpg.NumericValueOutOfRangeError("numeric field overflow")

    with pytest.raises(asyncpg.NumericValueOutOfRangeError):
        await until_done(refused, asyncio.Event(), "test", Backoff(base_s=0.001))
    assert calls == 1


async def test_stopping_ends_the_wait_for_a_database_that_stays_away() -> None:
    stopping = asyncio.Event()

    async def down() -> None:
        stopping.set()  # the stop arrives during the outage
        raise ConnectionRefusedError(111, "Connect call failed")

    with pytest.raises(Stopping):
        await until_done(down, stopping, "test", Backoff(base_s=0.001))


class _Pool:
    """Just enough of asyncpg's pool for LedgerWriter: acquire() and transaction() as no-ops."""

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Pool]:
        yield self

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield None


async def test_a_record_that_fails_once_outside_the_database_is_tried_again_not_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = [RuntimeError("glitch")]

    async def apply_batch(conn: Any, events: list[Any], schema: str = "bancaire") -> list[Decision]:
        if failures:
            raise failures.pop()
        return [Decision(APPLIED)]

    monkeypatch.setattr(apply_module, "apply_batch", apply_batch)
    writer = LedgerWriter(_Pool(), asyncio.Event(), Backoff(base_s=0.001))  # type: ignore[arg-type]
    assert [d.status for d in await writer.apply([("DepotEffectue", {"event_id": "e"})])] == [APPLIED]


async def test_a_record_that_fails_twice_the_same_way_is_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    async def apply_batch(conn: Any, events: list[Any], schema: str = "bancaire") -> list[Decision]:
        raise KeyError("montant")

    monkeypatch.setattr(apply_module, "apply_batch", apply_batch)
    writer = LedgerWriter(_Pool(), asyncio.Event(), Backoff(base_s=0.001))  # type: ignore[arg-type]
    (d,) = await writer.apply([("DepotEffectue", {"event_id": "e"})])
    assert (d.status, d.reason) == (DLQ, "internal:key")
