"""Outcome correlation: expected rejections are ok, surprises are errors with a readable kind."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from targets.bank.outcomes import SLOW_BROKER_S, Books, OutcomeHandler, OutcomeStall, error_kind, watchdog


def test_error_kinds() -> None:
    assert error_kind("applied", None, "applied") is None
    assert error_kind("duplicate", None, None) is None
    assert error_kind("rejected", "insufficient_funds", "rejected") is None
    assert error_kind("rejected", "insufficient_funds", "applied") == "rejected:insufficient_funds"
    assert error_kind("dlq", "bad_magic", None) == "dlq:bad_magic"
    assert error_kind("applied", None, "rejected") == "unexpected_applied"


def test_a_replayed_op_is_ok_but_a_stray_duplicate_is_not() -> None:
    # same op delivered twice (crash before the offset commit): its first delivery applied it
    assert error_kind("duplicate", None, "applied", original="applied") is None
    # an event that was already there, unknown to this op: a surprise
    assert error_kind("duplicate", None, "applied", original=None) == "unexpected_duplicate"
    assert error_kind("duplicate", None, "applied", original="rejected") == "unexpected_duplicate"


class _Rec:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None, int | None]] = []

    def complete(self, op_id: int, error: str | None = None, completed_ns: int | None = None) -> None:
        self.calls.append((op_id, error, completed_ns))


def test_outcomes_complete_in_flight_ops_and_count_the_rest_as_late() -> None:
    books, rec = Books(), _Rec()
    books.in_flight.update({1: ("applied", 0), 2: ("rejected", 0)})
    handler = OutcomeHandler(b"run/0", books, rec.complete)
    now = time.time_ns()
    handler.handle(
        orjson.dumps(
            [
                {"op_id": "1", "event_id": "e1", "status": "applied", "reason": None, "processed_at": now - 5_000_000},
                {"op_id": "2", "event_id": "e2", "status": "applied", "reason": None, "processed_at": now},
                {"op_id": "99", "event_id": "e3", "status": "applied", "reason": None, "processed_at": now},
            ]
        )
    )
    assert [(c[0], c[1]) for c in rec.calls] == [(1, None), (2, "unexpected_applied")]
    # completion time is the commit time, moved onto the monotonic clock: ~5 ms before "now"
    assert rec.calls[0][2] is not None and rec.calls[0][2] <= time.monotonic_ns() - 4_000_000
    assert books.late == 1 and books.in_flight == {}
    assert books.statuses["applied"] == 2 and sum(books.surprises.values()) == 1


class _Msg:
    def __init__(self, key: bytes, value: bytes) -> None:
        self._key, self._value = key, value

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


def test_outcome_records_of_another_origin_are_ignored() -> None:
    books, rec = Books(), _Rec()
    books.in_flight[1] = ("applied", 0)
    handler = OutcomeHandler(b"run/0", books, rec.complete)
    value = orjson.dumps([{"op_id": "1", "status": "applied", "processed_at": time.time_ns()}])
    handler.on_records([_Msg(b"other-run/0", value)])
    assert rec.calls == [] and 1 in books.in_flight
    handler.on_records([_Msg(b"run/0", value)])
    assert [c[0] for c in rec.calls] == [1]


def test_an_unreadable_outcome_record_is_counted_and_the_next_one_still_completes() -> None:
    books, rec = Books(), _Rec()
    books.in_flight[1] = ("applied", 0)
    handler = OutcomeHandler(b"run/0", books, rec.complete)
    value = orjson.dumps([{"op_id": "1", "status": "applied", "processed_at": time.time_ns()}])
    handler.on_records([_Msg(b"run/0", b"{not json"), _Msg(b"run/0", value)])
    assert handler.unreadable == 1 and [c[0] for c in rec.calls] == [1]


def test_ops_older_than_the_horizon_are_forgotten_so_memory_stays_bounded() -> None:
    books = Books()
    books.in_flight.update({1: ("applied", 100), 2: ("applied", 200), 3: ("applied", 300)})
    books.forget_older_than(250)
    assert list(books.in_flight) == [3] and books.forgotten == 2


async def test_the_watchdog_raises_when_outcomes_stop_while_the_partitions_hold_more() -> None:
    books = Books()
    books.in_flight[1] = ("applied", time.monotonic_ns() - 10_000_000_000)  # due long ago

    async def ends() -> dict[tuple[str, int], int]:
        return {("out", 0): 50}

    with pytest.raises(OutcomeStall, match="received nothing"):
        await asyncio.wait_for(watchdog(books, lambda: {("out", 0): 10}, ends, stall_s=1, timeout_ns=1), 10)


async def test_the_watchdog_names_a_slow_broker_when_its_end_offsets_come_late() -> None:
    books = Books()
    books.in_flight[1] = ("applied", time.monotonic_ns() - 10_000_000_000)

    async def ends() -> dict[tuple[str, int], int]:
        await asyncio.sleep(SLOW_BROKER_S)  # a saturated broker answers, late
        return {("out", 0): 50}

    with pytest.raises(OutcomeStall, match="overloaded broker, not the reader"):
        await asyncio.wait_for(watchdog(books, lambda: {("out", 0): 10}, ends, stall_s=1, timeout_ns=1), 10)


async def test_a_prompt_broker_leaves_the_reader_named_alone() -> None:
    books = Books()
    books.in_flight[1] = ("applied", time.monotonic_ns() - 10_000_000_000)

    async def ends() -> dict[tuple[str, int], int]:
        return {("out", 0): 50}

    with pytest.raises(OutcomeStall) as raised:
        await asyncio.wait_for(watchdog(books, lambda: {("out", 0): 10}, ends, stall_s=1, timeout_ns=1), 10)
    assert "broker" not in str(raised.value)


def test_forgetting_a_long_front_of_timed_out_ops_keeps_the_rest_in_order() -> None:
    books = Books()
    books.in_flight.update({i: ("applied", i) for i in range(100_000)})
    books.forget_older_than(99_990)
    assert list(books.in_flight) == list(range(99_990, 100_000)) and books.forgotten == 99_990


async def test_the_watchdog_stays_quiet_when_the_reader_is_at_the_end() -> None:
    books = Books()
    books.in_flight[1] = ("applied", time.monotonic_ns() - 10_000_000_000)

    async def ends() -> dict[tuple[str, int], int]:
        return {("out", 0): 10}

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watchdog(books, lambda: {("out", 0): 10}, ends, stall_s=1, timeout_ns=1), 2.5)
