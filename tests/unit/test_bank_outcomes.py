"""Outcome correlation: expected rejections are ok, surprises are errors with a readable kind."""

from __future__ import annotations

import time

import orjson

from targets.bank.outcomes import Books, OutcomeReader, error_kind


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
        self.calls: list[tuple[str, str | None, int | None]] = []

    def complete(self, op_id: str, error: str | None = None, completed_ns: int | None = None) -> None:
        self.calls.append((op_id, error, completed_ns))


def test_outcomes_complete_in_flight_ops_and_count_the_rest_as_late() -> None:
    books, rec = Books(), _Rec()
    books.in_flight.update({"a": "applied", "b": "rejected"})
    reader = OutcomeReader.__new__(OutcomeReader)  # no Kafka needed for handle()
    reader.books, reader.completions = books, rec
    now = time.time_ns()
    reader.handle(
        orjson.dumps(
            [
                {"op_id": "a", "event_id": "e1", "status": "applied", "reason": None, "processed_at": now - 5_000_000},
                {"op_id": "b", "event_id": "e2", "status": "applied", "reason": None, "processed_at": now},
                {"op_id": "zz", "event_id": "e3", "status": "applied", "reason": None, "processed_at": now},
            ]
        )
    )
    assert [(c[0], c[1]) for c in rec.calls] == [("a", None), ("b", "unexpected_applied")]
    # completion time is the commit time, moved onto the monotonic clock: ~5 ms before "now"
    assert rec.calls[0][2] is not None and rec.calls[0][2] <= time.monotonic_ns() - 4_000_000
    assert books.late == 1 and books.in_flight == {}
    assert books.statuses["applied"] == 2 and sum(books.surprises.values()) == 1
