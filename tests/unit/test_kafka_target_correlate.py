"""Which output record finishes which op, for each `correlate` mode of the kafka target."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import fastavro
import orjson
import pytest

from targets.kafka.avro import AvroDecoder, AvroEncoder
from targets.kafka.correlate import HEADER, Correlation, HeaderMatcher, TokenMatcher

ORDER = {"type": "record", "name": "Order", "fields": [{"name": "order_id", "type": "long"}]}


class Record:
    """The parts of a librdkafka message the matchers read."""

    def __init__(self, value: bytes | None = None, key: bytes | None = None,
                 headers: list[tuple[str, bytes | None]] | None = None, timestamp_ms: int = 10_000) -> None:
        self._value, self._key, self._headers, self._ts = value, key, headers, timestamp_ms

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)


class Completed:
    def __init__(self) -> None:
        self.ids: list[int] = []
        self.instants: list[int | None] = []

    def __call__(self, op_ids: list[int], completed_ns: int | None = None) -> None:
        self.ids.extend(op_ids)
        self.instants.extend([completed_ns] * len(op_ids))


class Tasks:
    """Stands in for ctx.background: keeps the coroutines so the test can await them."""

    def __init__(self) -> None:
        self.started: list[asyncio.Task[None]] = []

    def __call__(self, factory: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self.started.append(asyncio.get_running_loop().create_task(factory(), name=name))


def json_record(doc: Any) -> Record:
    return Record(orjson.dumps(doc))


@pytest.mark.parametrize(("text", "expected"), [
    ("header", Correlation("header")),
    ("key", Correlation("key")),
    ("json:order.id", Correlation("json", ("order", "id"))),
    ("avro:order_id", Correlation("avro", ("order_id",))),
])
def test_correlation_modes_are_read_from_their_text(text: str, expected: Correlation) -> None:
    assert Correlation.parse(text) == expected


@pytest.mark.parametrize("text", ["body", "json", "json:", "avro:a..b", "header:x"])
def test_a_malformed_correlation_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Correlation.parse(text)


def test_the_op_header_of_this_process_finishes_its_op() -> None:
    done = Completed()
    HeaderMatcher("run-1.0", done).on_records([Record(headers=[("x", b"1"), (HEADER, b"run-1.0/42")])])
    assert done.ids == [42]


def test_records_of_other_runs_and_processes_are_left_alone() -> None:
    done = Completed()
    matcher = HeaderMatcher("run-1.0", done)
    matcher.on_records([Record(headers=[(HEADER, b"run-0.0/42")]), Record(headers=[(HEADER, b"run-1.1/43")]),
                        Record(headers=[(HEADER, b"run-1.0/not-a-number")])])
    assert done.ids == [] and matcher.foreign == 3


def test_a_record_without_the_op_header_is_counted_as_unmatched() -> None:
    done = Completed()
    matcher = HeaderMatcher("run-1.0", done)
    matcher.on_records([Record(), Record(headers=[("other", b"1")])])
    assert done.ids == [] and matcher.unmatched == 2


def test_a_kept_key_finishes_the_op_that_produced_it() -> None:
    done = Completed()
    matcher = TokenMatcher(Correlation("key"), done)
    matcher.expect(b"k1", 1)
    matcher.expect(b"k2", 2)
    matcher.on_records([Record(key=b"k2"), Record(key=b"k1")], arrived_ns=5)
    assert done.ids == [2, 1] and done.instants == [5, 5]
    assert matcher.waiting == 0


def test_ops_with_the_same_value_are_matched_first_in_first_out() -> None:
    done = Completed()
    matcher = TokenMatcher(Correlation("key"), done)
    for op_id in (1, 2, 3):
        matcher.expect(b"same", op_id)
    matcher.on_records([Record(key=b"same")])
    matcher.on_records([Record(key=b"same")])
    assert done.ids == [1, 2] and matcher.waiting == 1


def test_a_json_field_matches_across_number_and_text() -> None:
    done = Completed()
    matcher = TokenMatcher(Correlation("json", ("order", "id")), done)
    matcher.expect("42", 42)
    matcher.on_records([json_record({"order": {"id": 42}, "status": "paid"})])
    assert done.ids == [42]


def test_output_that_is_not_json_or_lacks_the_field_is_unmatched() -> None:
    done = Completed()
    matcher = TokenMatcher(Correlation("json", ("id",)), done)
    matcher.expect("1", 1)
    matcher.on_records([Record(b"not json"), json_record({"other": 1}), Record(None)])
    assert done.ids == [] and matcher.unmatched == 3


def test_records_stamped_before_the_run_are_left_out() -> None:
    done = Completed()
    matcher = TokenMatcher(Correlation("key"), done, not_before_ms=5_000)
    matcher.expect(b"k", 1)
    matcher.on_records([Record(key=b"k", timestamp_ms=4_999)])
    assert done.ids == [] and matcher.stale == 1
    matcher.on_records([Record(key=b"k", timestamp_ms=5_000)])
    assert done.ids == [1]


def test_ops_long_past_their_timeout_are_forgotten() -> None:
    matcher = TokenMatcher(Correlation("key"), Completed())
    for op_id in range(10):
        matcher.expect(b"k%d" % op_id, op_id)
    matcher.expect(b"k9", 12)
    assert matcher.forget_before(5) == 5
    assert sorted(matcher.pending.values()) == [5, 6, 7, 8, 9]
    assert matcher.forget_before(13) == 6 and matcher.waiting == 0


def test_an_avro_field_of_a_known_schema_is_matched_at_once() -> None:
    done = Completed()
    parsed = fastavro.parse_schema(ORDER)
    matcher = TokenMatcher(Correlation("avro", ("order_id",)), done, decoder=AvroDecoder(None, {3: parsed}))
    matcher.expect("7", 7)
    matcher.on_records([Record(AvroEncoder(3, parsed).encode({"order_id": 7}))])
    assert done.ids == [7]


async def test_an_avro_record_of_a_new_schema_waits_for_its_lookup_and_keeps_its_arrival_time() -> None:
    class Registry:
        def __init__(self) -> None:
            self.asked: list[int] = []

        async def get(self, schema_id: int) -> str | None:
            self.asked.append(schema_id)
            return orjson.dumps(ORDER).decode()

    done, tasks, registry = Completed(), Tasks(), Registry()
    matcher = TokenMatcher(Correlation("avro", ("order_id",)), done, spawn=tasks,
                           decoder=AvroDecoder(registry))  # type: ignore[arg-type]
    matcher.expect("7", 7)
    matcher.on_records([Record(AvroEncoder(5, fastavro.parse_schema(ORDER)).encode({"order_id": 7}))],
                       arrived_ns=1234)
    assert done.ids == [] and len(tasks.started) == 1
    await asyncio.gather(*tasks.started)
    assert registry.asked == [5]
    assert done.ids == [7] and done.instants == [1234]
