"""Record values of the kafka target: documents with placeholders, random bytes, Confluent Avro framing."""

from __future__ import annotations

import io
import struct
import uuid

import fastavro
import orjson
import pytest

from harness.protocol import Op
from harness.templating import DataRows, OpVars, Template
from targets.kafka.avro import AvroDecoder, AvroEncoder, frame, schema_id_of
from targets.kafka.driver import own_partitions
from targets.kafka.values import JsonValue, RandomBytes, TextValue, compile_doc

ORDER = fastavro.parse_schema({"type": "record", "name": "Order", "fields": [
    {"name": "order_id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": None}]})


def op_vars(op_id: int = 42, seq: int = 7, row: dict[str, object] | None = None) -> OpVars:
    rows = DataRows([row]) if row is not None else None
    return OpVars(Op(op_id, "buy"), seq, 3, "run-1", rows.pick(0) if rows is not None else None)


def test_a_lone_placeholder_keeps_its_type() -> None:
    render = compile_doc({"id": "{id}", "seq": "{seq}"}, "value", None)
    assert render(op_vars()) == {"id": 42, "seq": 7}


def test_a_placeholder_with_text_around_it_renders_as_text() -> None:
    render = compile_doc({"ref": "order-{id}", "as_text": "{id!s}"}, "value", None)
    assert render(op_vars()) == {"ref": "order-42", "as_text": "42"}


def test_nested_tables_lists_and_constants_are_rendered_in_place() -> None:
    render = compile_doc({"a": {"b": ["{kind}", 1, True, None]}, "c": 2.5}, "value", None)
    assert render(op_vars()) == {"a": {"b": ["buy", 1, True, None]}, "c": 2.5}


def test_a_lone_uuid_placeholder_is_its_text_form() -> None:
    doc = compile_doc({"u": "{uuid}"}, "value", None)(op_vars())
    assert str(uuid.UUID(doc["u"])) == doc["u"]


def test_a_data_row_value_keeps_the_type_it_has_in_the_file() -> None:
    render = compile_doc({"tier": "{row.tier}", "limit": "{row.limit}"}, "value", {"tier", "limit"})
    assert render(op_vars(row={"tier": "gold", "limit": 500})) == {"tier": "gold", "limit": 500}


def test_a_json_value_is_the_rendered_document_serialized() -> None:
    data, doc = JsonValue(compile_doc({"id": "{id}", "ref": "r-{seq}"}, "value", None)).make(op_vars(), 7)
    assert orjson.loads(data) == doc == {"id": 42, "ref": "r-7"}


def test_a_text_value_is_sent_as_utf8() -> None:
    data, doc = TextValue(Template("café {id}", "value")).make(op_vars(), 7)
    assert (data, doc) == ("café 42".encode(), None)


def test_random_values_are_drawn_once_and_taken_in_turn() -> None:
    maker = RandomBytes(200)
    first = [maker.make(None, seq)[0] for seq in range(len(maker.pool))]
    again = [maker.make(None, seq + len(maker.pool))[0] for seq in range(len(maker.pool))]
    assert all(len(v) == 200 for v in first)
    assert all(a is b for a, b in zip(first, again, strict=True)), "no value is made per op"
    assert len(set(first)) == len(first) > 1, "consecutive records differ (compression sees real data)"


def test_a_large_random_value_is_kept_once() -> None:
    assert len(RandomBytes(32 << 20).pool) == 1


def test_avro_values_are_in_the_confluent_wire_format() -> None:
    data = AvroEncoder(7, ORDER).encode({"order_id": 42, "note": "hi"})
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert (magic, schema_id) == (0, 7)
    assert fastavro.schemaless_reader(io.BytesIO(data[5:]), ORDER, None) == {"order_id": 42, "note": "hi"}


def test_the_schema_id_is_read_back_from_the_frame() -> None:
    assert schema_id_of(frame(300, b"x")) == 300
    assert schema_id_of(b"\x01\x00\x00\x00\x01x") is None
    assert schema_id_of(b"\x00\x00") is None
    assert schema_id_of(None) is None


def test_a_decoder_reads_records_of_the_ids_it_knows() -> None:
    decoder = AvroDecoder(None, {7: ORDER})
    assert decoder.decode(AvroEncoder(7, ORDER).encode({"order_id": 1, "note": None})) == {
        "order_id": 1, "note": None}


async def test_an_id_no_registry_has_is_remembered_as_unknown() -> None:
    decoder = AvroDecoder(None)
    await decoder.resolve({9})
    assert decoder.knows(9)
    with pytest.raises(ValueError, match="schema id 9 is not in the registry"):
        decoder.decode(frame(9, b"\x02"))


def test_keyless_records_of_each_process_go_to_its_own_share_of_the_partitions() -> None:
    assert [own_partitions(6, i, 3) for i in range(3)] == [[0, 3], [1, 4], [2, 5]]


def test_partitions_that_do_not_divide_evenly_are_all_used_by_every_process() -> None:
    assert own_partitions(3, 1, 2) == [0, 1, 2]
    assert own_partitions(4, 0, 1) == [0, 1, 2, 3]
