"""Correlate outcome records with in-flight ops and keep the books of this generator process.

The expected status travels with each op (deliberately bad events expect "rejected" or "dlq"), so
an expected rejection completes as ok and only a surprise is an error, with kind "status:reason".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from targets.bank.topics import OUTCOMES

log = logging.getLogger(__name__)
OK_BY_DEFAULT = ("applied", "duplicate")


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
    """Counts of what was sent and what came back; `in_flight` maps op id -> expected status."""

    def __init__(self) -> None:
        self.in_flight: dict[str, str | None] = {}
        self.sent = 0
        self.produce_failed = 0
        self.statuses: Counter[str] = Counter()
        self.surprises: Counter[str] = Counter()
        self.late = 0  # outcomes for op ids not in flight (a replay after a crash)

    def snapshot(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "produce_failed": self.produce_failed,
            "in_flight": len(self.in_flight),
            "statuses": dict(self.statuses),
            "surprises": dict(self.surprises),
            "late": self.late,
        }


class OutcomeReader:
    """Reads every partition of the outcomes topic (no group) and completes this process's ops."""

    def __init__(self, bootstrap: str, origin: str, books: Books, completions: Any) -> None:
        self.origin = origin.encode()
        self.books = books
        self.completions = completions
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Positions are pinned at the current end before any op is sent, so none is missed."""
        await self.consumer.start()
        await self.consumer.topics()  # metadata refresh
        parts = self.consumer.partitions_for_topic(OUTCOMES) or set()
        tps = [TopicPartition(OUTCOMES, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run(), name="bank-outcomes")

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            for recs in batch.values():
                for r in recs:
                    if r.key == self.origin:
                        try:
                            self.handle(r.value)
                        except (ValueError, KeyError, TypeError) as exc:  # one bad record must not stop the reader
                            log.error("unreadable outcome record at %s:%d: %r", r.partition, r.offset, exc)

    def handle(self, value: bytes) -> None:
        outs = orjson.loads(value)
        if isinstance(outs, dict):
            outs = [outs]
        mono_now, wall_now = time.monotonic_ns(), time.time_ns()
        books = self.books
        for o in outs:
            op_id = o.get("op_id")
            status = o["status"]
            if op_id is None or op_id not in books.in_flight:
                books.late += 1
                continue
            expect = books.in_flight.pop(op_id)
            books.statuses[status] += 1
            err = error_kind(status, o.get("reason"), expect, o.get("original"))
            if err is not None:
                books.surprises[f"expected {expect or 'ok'}, got {err}"] += 1
            # completion at the service's DB commit (wall clock, same host), in monotonic terms
            done = mono_now - max(0, wall_now - int(o.get("processed_at") or wall_now))
            try:
                self.completions.complete(op_id, err, done)
            except Exception:  # a consumer's bug must not swallow the other outcomes of the record
                log.exception("completing %s failed", op_id)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self.consumer.stop()
