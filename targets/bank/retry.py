"""Sort database failures into "this record" and "the database, for now", and wait out the latter.

Why: one record the database refuses must cost that record (it goes to the DLQ), never the
service; an outage (PostgreSQL restarting, connections dropped, too many clients) must cost time,
never a record. Everything here is decided from the exception alone, so it is unit-tested.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

log = logging.getLogger(__name__)
T = TypeVar("T")

#: SQLSTATE classes that a record's own values cause: 22 data exception, 23 integrity constraint,
#: 54 program limit exceeded (e.g. an index row too large)
_RECORD_CLASSES = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, asyncpg.ProgramLimitExceededError)
#: the database or the way to it, for now: 08 connection, 57 operator intervention (admin
#: shutdown, starting up), 53 insufficient resources, 40 deadlock/serialization
_TRANSIENT_CLASSES = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError,
    # the client's protocol state when the server drops the connection mid-operation, e.g.
    # "cannot switch to state 15; another operation (2) is in progress" during a fast shutdown
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class Stopping(Exception):
    """The service is stopping while the database is away: give up the batch, it will be replayed."""


def is_record_error(exc: BaseException) -> bool:
    """True when re-applying the same record will fail again whatever the database's state."""
    if isinstance(exc, _RECORD_CLASSES):
        return True
    if isinstance(exc, asyncpg.InterfaceError):  # asyncpg's argument encoding errors are also ValueErrors
        return isinstance(exc, ValueError)
    # a bug of ours that one record triggers: isolate it rather than stop the ledger
    return not isinstance(exc, (asyncpg.PostgresError, *_TRANSIENT_CLASSES))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT_CLASSES):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, ValueError)  # connection closed


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error")).lower()


def reason_of(exc: BaseException) -> tuple[str, str]:
    """(reason, detail) for a record the database refused: "db:<condition name>" and its message."""
    if isinstance(exc, asyncpg.PostgresError):
        return f"db:{_snake(type(exc).__name__)}", f"SQLSTATE {exc.sqlstate}: {str(exc)[:300]}"
    if isinstance(exc, asyncpg.InterfaceError):
        return "db:bad_argument", str(exc)[:300]
    return f"internal:{_snake(type(exc).__name__)}", str(exc)[:300]


class Backoff:
    """Exponential delays with jitter, capped: 50 ms, 100 ms, ... up to `cap_s`."""

    def __init__(self, base_s: float = 0.05, cap_s: float = 2.0, rng: random.Random | None = None) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        raw = min(self.cap_s, self.base_s * 2 ** min(attempt, 30))
        return raw * self._rng.uniform(0.8, 1.0)


async def until_done(
    attempt_fn: Callable[[], Awaitable[T]],
    stopping: asyncio.Event,
    what: str,
    backoff: Backoff | None = None,
    record_error: Callable[[BaseException], bool] = is_record_error,
) -> T:
    """Run `attempt_fn` until it succeeds or fails on its record; wait out every other failure.

    Record errors are raised to the caller (which isolates the record); anything else is retried
    with backoff for as long as it takes, or until `stopping` is set (then `Stopping` is raised).
    """
    backoff = backoff or Backoff()
    attempt = 0
    first_failure = 0.0
    while True:
        try:
            result = await attempt_fn()
        except Exception as exc:
            if record_error(exc):
                raise
            if stopping.is_set():
                raise Stopping(f"{what}: stopping while the database is away ({exc!r})") from exc
            if attempt == 0:
                first_failure = time.monotonic()
            level = logging.WARNING if is_transient(exc) else logging.ERROR
            if attempt == 0 or attempt % 20 == 0:  # an outage of minutes logs a line every ~40 s
                log.log(level, "%s failed (%s: %s); retrying until the database answers", what, type(exc).__name__, exc)
            delay = backoff.delay(attempt)
            attempt += 1
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except TimeoutError:
                pass
            continue
        if attempt:
            log.warning("%s succeeded after %d retries (%.1fs)", what, attempt, time.monotonic() - first_failure)
        return result
