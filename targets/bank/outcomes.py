"""Correlate outcome records with in-flight ops, and watch that the outcomes keep coming.

The expected status travels with each op (deliberately bad events expect "rejected" or "dlq"), so
an expected rejection completes as ok and only a surprise is an error, with kind "status:reason".

The reader is the librdkafka `KafkaReader` (assign, no group), supervised by the harness: if it
raises, the run stops at once naming it. A watchdog also fails the run when outcomes stop while
ops wait for them and the outcome partitions' end keeps moving: the harness has gone deaf, and
saying so beats reporting applied events as lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

log = logging.getLogger(__name__)
OK_BY_DEFAULT = ("applied", "duplicate")


class OutcomeStall(RuntimeError):
    """Outcomes stopped reaching the driver while the service kept publishing them."""


def error_kind(status: str, reason: str | None, expect: str | None, original: str | None = None) -> str | None:
    """None when the outcome is what the op expected (applied/duplicate when it expected nothing).

    A "duplicate" whose first delivery had the expected status is this very op delivered twice
    (a replay after a crash before the offset commit): the op did what it should, once.
    """
    if status == expect or (expect is None and status in OK_BY_DEFAULT):
        return None
    if status == "duplicate" and original is not None and original == expect:
        return None
    if status in ("rejected", "dlq"):
        return f"{status}:{reason or 'unknown'}"
    return f"unexpected_{status}"


class Books:
    """What was sent and what came back. `in_flight`: op id -> (expected status, intended ns)."""

    def __init__(self) -> None:
        self.in_flight: dict[int, tuple[str | None, int]] = {}
        self.sent = 0
        self.produce_failed = 0
        self.statuses: Counter[str] = Counter()
        self.surprises: Counter[str] = Counter()
        self.late = 0  # outcomes for op ids not in flight (a replay after a crash, or after a timeout)
        self.forgotten = 0  # ops given up on (timed out) without an outcome
        self.last_outcome_ns = 0

    def forget_older_than(self, deadline_ns: int) -> None:
        """Drop ops intended before `deadline_ns` (the harness has timed them out): memory stays
        bounded by the ops of the last timeout window, however long the run.

        One pass, then the deletions: `next(iter(d))` after each `del` at a dict's front rescans
        every slot already deleted, which made this quadratic (minutes, GIL held, for 300,000 ops
        timed out at once by a saturated broker)."""
        drop = []
        for op_id, (_, intended) in self.in_flight.items():
            if intended >= deadline_ns:
                break
            drop.append(op_id)
        for op_id in drop:
            del self.in_flight[op_id]
        self.forgotten += len(drop)

    def snapshot(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "produce_failed": self.produce_failed,
            "in_flight": len(self.in_flight),
            "statuses": dict(self.statuses),
            "surprises": dict(self.surprises),
            "late": self.late,
            "forgotten": self.forgotten,
        }


Complete = Callable[[int, str | None, int | None], None]


class OutcomeHandler:
    """Turns outcome records of this process (key = its origin) into completions."""

    def __init__(self, origin: bytes, books: Books, complete: Complete) -> None:
        self.origin = origin
        self.books = books
        self.complete = complete
        self.unreadable = 0

    def on_records(self, records: list[Any]) -> None:
        origin = self.origin
        for rec in records:
            if rec.key() != origin:
                continue
            try:
                self.handle(rec.value())
            except (ValueError, KeyError, TypeError) as exc:  # one bad record must not stop the reader
                self.unreadable += 1
                log.error("unreadable outcome record at %s:%d: %r", rec.partition(), rec.offset(), exc)

    def handle(self, value: bytes) -> None:
        outs = orjson.loads(value)
        if isinstance(outs, dict):
            outs = [outs]
        mono_now, wall_now = time.monotonic_ns(), time.time_ns()
        books = self.books
        books.last_outcome_ns = mono_now
        for o in outs:
            raw = o.get("op_id")
            status = o["status"]
            op_id = int(raw) if raw is not None else -1
            entry = books.in_flight.pop(op_id, None)
            if entry is None:
                books.late += 1
                continue
            expect = entry[0]
            books.statuses[status] += 1
            err = error_kind(status, o.get("reason"), expect, o.get("original"))
            if err is not None:
                books.surprises[f"expected {expect or 'ok'}, got {err}"] += 1
            # completion at the service's DB commit (wall clock, same host), in monotonic terms
            done = mono_now - max(0, wall_now - int(o.get("processed_at") or wall_now))
            try:
                self.complete(op_id, err, done)
            except Exception:  # a bug there must not swallow the other outcomes of the record
                log.exception("completing %s failed", op_id)


SLOW_BROKER_S = 1.0  # an end-offset query slower than this says the broker, not the reader, is stuck


async def watchdog(books: Books, positions: Callable[[], dict[tuple[str, int], int]],
                   ends: Callable[[], Awaitable[dict[tuple[str, int], int]]], stall_s: float, timeout_ns: int) -> None:
    """Fail loudly when ops wait for outcomes that the service published but the reader never got.

    Checked once a second: if the oldest op in flight is older than `stall_s` (beyond the run's
    timeout), no outcome arrived for `stall_s`, and the outcome partitions hold records past the
    reader's positions, the reader is deaf: raise (the supervisor stops the run, naming it)."""
    while True:
        await asyncio.sleep(1.0)
        if not books.in_flight:
            continue
        now = time.monotonic_ns()
        oldest = next(iter(books.in_flight.values()))[1]
        quiet_ns = now - max(books.last_outcome_ns, oldest)
        if now - oldest < timeout_ns + stall_s * 1e9 or quiet_ns < stall_s * 1e9:
            continue
        asked = time.monotonic()
        pos, end = positions(), await ends()
        answer_s = time.monotonic() - asked
        behind = {tp: end[tp] - pos[tp] for tp in end if pos.get(tp, -1) >= 0 and end[tp] > pos[tp]}
        if behind:
            slow = (f"; the broker took {answer_s:.1f} s to say where the partitions end: an overloaded "
                    "broker, not the reader, is the likely cause" if answer_s >= SLOW_BROKER_S else "")
            raise OutcomeStall(f"the outcome reader received nothing for {quiet_ns / 1e9:.0f} s while "
                               f"{len(books.in_flight)} ops waited and the outcome partitions hold "
                               f"{sum(behind.values())} records past its position ({behind}){slow}")
