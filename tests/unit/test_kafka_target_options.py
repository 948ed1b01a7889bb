"""The kafka target refuses bad configuration before anything runs, naming the option at fault.

These need no broker: the options model (checked by make_plan when a spec is loaded) and the
compilation of templates, files and a sample value (the first step of the target's launch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.plan import make_plan
from harness.protocol import Op
from harness.spec import SpecError, parse_spec
from harness.templating import OpVars, TemplateError
from targets.kafka.avro import SchemaError
from targets.kafka.driver import ConfigError, KafkaOptions, compile_options

ORDER_SCHEMA = {"type": "record", "name": "Order", "fields": [
    {"name": "order_id", "type": "long"}, {"name": "customer", "type": "string"}]}


def plan_error(**options: Any) -> str:
    spec = parse_spec({"name": "k", "target": "kafka", "target_options": {"topic": "t", **options}})
    with pytest.raises(SpecError) as exc:
        make_plan(spec, "spec.toml")
    return str(exc.value)


async def compile_error(exc_type: type[Exception], **options: Any) -> str:
    o = KafkaOptions.model_validate({"topic": "t", **options})
    with pytest.raises(exc_type) as exc:
        await compile_options(o, "127.0.0.1:9092")
    return str(exc.value)


@pytest.fixture
def schema_file(tmp_path: Path) -> str:
    path = tmp_path / "order.avsc"
    path.write_text(json.dumps(ORDER_SCHEMA))
    return str(path)


def test_a_topic_alone_is_a_complete_configuration() -> None:
    spec = parse_spec({"name": "k", "target": "kafka", "target_options": {"topic": "orders"}})
    assert make_plan(spec).target.cls.name == "kafka"


def test_an_unknown_option_is_refused_by_name() -> None:
    assert "field `target_options.lingerms`: unknown option" in plan_error(lingerms=5)


def test_the_topic_is_required() -> None:
    spec = parse_spec({"name": "k", "target": "kafka", "target_options": {}})
    with pytest.raises(SpecError, match=r"field `target_options.topic`: Field required"):
        make_plan(spec)


def test_a_bootstrap_that_is_not_host_port_is_refused() -> None:
    assert "field `target_options.bootstrap`: 'localhost' is not host:port" in plan_error(bootstrap="localhost")


def test_consume_completion_needs_an_output_topic() -> None:
    assert "field `target_options.output_topic`: completion = \"consume\" needs" in plan_error(completion="consume")


def test_an_output_topic_without_consume_completion_is_refused() -> None:
    assert "field `target_options.output_topic`" in plan_error(output_topic="out")


def test_an_unknown_correlation_mode_is_refused() -> None:
    assert "field `target_options.correlate`" in plan_error(completion="consume", output_topic="t", correlate="body")


def test_correlating_by_a_field_needs_a_structured_value() -> None:
    message = plan_error(completion="consume", output_topic="t", correlate="json:id")
    assert "field `target_options.correlate`" in message and 'serializer "json" or "avro"' in message


def test_correlating_by_an_avro_field_of_json_input_needs_the_processors_registry() -> None:
    message = plan_error(serializer="json", value={"id": "{id}"}, completion="consume", output_topic="out",
                         correlate="avro:id")
    assert "field `target_options.correlate`" in message and "needs the schema_registry" in message


def test_avro_needs_a_schema_file() -> None:
    assert "field `target_options.schema_file`: serializer \"avro\" needs" in plan_error(
        serializer="avro", value={"a": 1})


def test_json_needs_a_value() -> None:
    assert "field `target_options.value`: serializer \"json\" needs a value" in plan_error(serializer="json")


def test_random_bytes_are_for_the_bytes_serializer_only() -> None:
    assert "field `target_options.value_size`" in plan_error(serializer="json", value={"a": 1}, value_size=10)


def test_a_value_and_a_value_size_together_are_refused() -> None:
    assert "field `target_options.value_size`: give value_size or a value" in plan_error(value="x", value_size=10)


def test_acks_must_be_a_kafka_acks_setting() -> None:
    assert "field `target_options.acks`" in plan_error(acks=2)


def test_a_schema_registry_must_be_an_http_url() -> None:
    assert "field `target_options.schema_registry`" in plan_error(
        serializer="avro", schema_file="x.avsc", value={"a": 1}, schema_registry="registry:8081")


async def test_an_unknown_placeholder_in_the_key_is_refused_naming_the_key() -> None:
    message = await compile_error(TemplateError, key="{customer}")
    assert message.startswith("target_options.key: unknown placeholder {customer}")


async def test_an_unknown_placeholder_in_a_header_is_refused_naming_the_header() -> None:
    message = await compile_error(TemplateError, headers={"trace": "{trace_id}"})
    assert message.startswith("target_options.headers.trace: unknown placeholder {trace_id}")


async def test_an_unknown_placeholder_in_a_value_field_is_refused_naming_the_field() -> None:
    message = await compile_error(TemplateError, serializer="json", value={"order": {"id": "{order}"}})
    assert message.startswith("target_options.value.order.id: unknown placeholder {order}")


async def test_a_json_value_that_is_not_json_is_refused() -> None:
    message = await compile_error(TemplateError, serializer="json", value="{id: {id}}")
    assert message.startswith("target_options.value: not a JSON document")


async def test_a_missing_value_file_is_refused_naming_it(tmp_path: Path) -> None:
    message = await compile_error(TemplateError, value_file=str(tmp_path / "nope.txt"))
    assert message.startswith("target_options.value_file: cannot read")


async def test_an_invalid_schema_file_is_refused_with_the_parser_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.avsc"
    bad.write_text(json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}))
    message = await compile_error(SchemaError, serializer="avro", schema_file=str(bad), value={"a": 1})
    assert message.startswith("target_options.schema_file:") and "not a valid Avro schema" in message
    assert "UnknownType: nope" in message


async def test_a_schema_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.avsc"
    bad.write_text("record Order { long id; }")
    message = await compile_error(SchemaError, serializer="avro", schema_file=str(bad), value={"a": 1})
    assert message.startswith("target_options.schema_file:") and "is not JSON" in message


async def test_a_value_that_does_not_fit_the_schema_is_refused_naming_the_value(schema_file: str) -> None:
    message = await compile_error(SchemaError, serializer="avro", schema_file=schema_file,
                                  value={"order_id": "{id!s}", "customer": "c"})
    assert message.startswith("target_options.value: a sample value does not match the schema")
    assert "Order.order_id" in message


async def test_correlating_by_a_field_the_value_lacks_is_refused(schema_file: str) -> None:
    message = await compile_error(ConfigError, serializer="json", value={"id": "{id}"}, completion="consume",
                                  output_topic="out", correlate="json:order.id")
    assert message.startswith("target_options.correlate: the produced value has no field 'order.id'")


async def test_correlating_by_a_field_that_never_changes_is_refused() -> None:
    message = await compile_error(ConfigError, serializer="json", value={"id": "fixed"}, completion="consume",
                                  output_topic="out", correlate="json:id")
    assert "has the same value for every op" in message


async def test_correlating_by_a_key_that_never_changes_is_refused() -> None:
    message = await compile_error(ConfigError, key="same", completion="consume", output_topic="out",
                                  correlate="key")
    assert message.startswith('target_options.key: correlate = "key" needs a key that differs per op')


async def test_a_data_file_column_placeholder_is_checked_against_the_file(tmp_path: Path) -> None:
    data = tmp_path / "customers.csv"
    data.write_text("name,tier\nada,gold\n")
    message = await compile_error(TemplateError, key="{row.customer}", data_file=str(data))
    assert message.startswith("target_options.key: the data file has no column 'customer'")


async def test_a_json_value_file_is_a_document_with_placeholders(tmp_path: Path) -> None:
    doc = tmp_path / "order.json"
    doc.write_text('{"order": {"id": "{id}", "ref": "r-{seq}"}}')
    setup = await compile_options(KafkaOptions.model_validate(
        {"topic": "t", "serializer": "json", "value_file": str(doc)}), "127.0.0.1:9092")
    assert setup.value is not None
    data, rendered = setup.value.make(OpVars(Op(5, "op"), 6, 0, "run", None), 6)
    assert rendered == {"order": {"id": 5, "ref": "r-6"}}
    assert json.loads(data) == rendered


async def test_a_bytes_value_file_is_a_text_template(tmp_path: Path) -> None:
    text = tmp_path / "line.txt"
    text.write_text("op {id} of {kind}")
    setup = await compile_options(KafkaOptions.model_validate({"topic": "t", "value_file": str(text)}),
                                  "127.0.0.1:9092")
    assert setup.value is not None
    assert setup.value.make(OpVars(Op(5, "buy"), 6, 0, "run", None), 6) == (b"op 5 of buy", None)
