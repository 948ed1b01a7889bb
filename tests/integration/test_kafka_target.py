"""The kafka target against the embedded broker: produce -> consume runs, a user's topic pair, Avro, refusals.

Every test works on topics of its own (the embedded broker's fetch cost grows with what a partition
holds). Counts are asserted exactly; the one latency comparison is between a single topic and a
pair with a forwarding hop in between, a whole extra produce and fetch.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import fastavro
import orjson
import pytest
from aiohttp import web
from confluent_kafka import Consumer, Producer, TopicPartition

from harness.engine.runner import RunOptions, RunOutcome, execute
from harness.loop import run
from harness.plan import make_plan
from harness.protocol import DriverContext, Op
from harness.spec import parse_spec
from targets.kafka.admin import Admin
from targets.kafka.driver import KafkaDriver

REPO = Path(__file__).resolve().parents[2]
EDABENCH = Path(sys.executable).with_name("edabench")
ORDER_SCHEMA = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "order_id", "type": "long"},
    {"name": "customer", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "note", "type": ["null", "string"], "default": None}]}
ORDER_VALUE = {"order_id": "{id}", "customer": "c-{id}", "amount": 12.5, "note": None}


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def create_topics(bootstrap: str, *topics: str, partitions: int = 3) -> None:
    async def go() -> None:
        admin = Admin(bootstrap)
        for t in topics:
            await admin.create(t, partitions, 1, "test")
    run(go())


def kafka_run(tmp_path: Path, bootstrap: str, name: str, rate: float, duration_s: float,
              options: dict[str, Any], processes: int = 1) -> RunOutcome:
    spec = parse_spec({"name": name, "target": "kafka", "duration_s": duration_s, "timeout_s": 5,
                       "rate": {"rate": rate}, "target_options": options})
    return run(execute(make_plan(spec), RunOptions(runs_root=tmp_path, services={"kafka": bootstrap},
                                                   processes=processes, command=["test"])))


def counts(outcome: RunOutcome) -> dict[str, Any]:
    return outcome.summary["ops"]["op"]["counts"]


class Forwarder:
    """A user's stream processor at its smallest: every record of `source` produced again to `sink`."""

    def __init__(self, bootstrap: str, source: str, sink: str, partitions: int, *, keep_headers: bool = True
                 ) -> None:
        self.bootstrap, self.source, self.sink = bootstrap, source, sink
        self.partitions, self.keep_headers = partitions, keep_headers
        self.copied = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)

    def __enter__(self) -> Forwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "forwarder",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 5})
        consumer.assign([TopicPartition(self.source, p, 0) for p in range(self.partitions)])
        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": False, "linger.ms": 1})
        try:
            while not self._stop.is_set():
                for m in consumer.consume(1000, 0.05):
                    if m.error() is None:
                        producer.produce(self.sink, m.value(), m.key(), headers=m.headers() if self.keep_headers
                                         else None)
                        self.copied += 1
                producer.poll(0)
        finally:
            producer.flush(5)
            consumer.close()


# -- produce -> consume on one topic, and through a topic pair ---------------------------------------------

RATE, SINGLE_S, PAIR_S = 2000, 8, 4


@pytest.fixture(scope="module")
def single_topic_run(tmp_path_factory: pytest.TempPathFactory, embedded_kafka: str) -> RunOutcome:
    topic = fresh("single")
    return kafka_run(tmp_path_factory.mktemp("runs"), embedded_kafka, "kafka-single", RATE, SINGLE_S, {
        "topic": topic, "partitions": 3, "completion": "consume", "output_topic": topic})


def test_every_op_of_a_produce_consume_run_on_one_topic_completes(single_topic_run: RunOutcome) -> None:
    c = counts(single_topic_run)
    assert c["scheduled"] == RATE * SINGLE_S
    assert c["ok"] == c["scheduled"]
    assert (c["error"], c["timeout"], c["not_sent"]) == (0, 0, 0)


def test_the_books_of_a_produce_consume_run_balance(single_topic_run: RunOutcome) -> None:
    assert single_topic_run.summary["books_balanced"] is True
    assert single_topic_run.summary["verify"]["problems"] == []
    assert single_topic_run.ok


def test_consumer_lag_is_reported_every_second(single_topic_run: RunOutcome) -> None:
    lines = [orjson.loads(line) for line in (single_topic_run.run_dir / "timeseries.jsonl").read_bytes().splitlines()]
    measured = [line for line in lines if line["target_rate"] > 0]
    assert len(measured) == SINGLE_S
    assert all(line["extra"]["consumer_lag"] >= 0 for line in measured)


def test_each_generator_process_finishes_its_own_ops_from_the_shared_output(
        tmp_path: Path, embedded_kafka: str) -> None:
    topic = fresh("two-procs")
    outcome = kafka_run(tmp_path, embedded_kafka, "kafka-procs", 1000, 2, {
        "topic": topic, "partitions": 2, "completion": "consume", "output_topic": topic}, processes=2)
    c = counts(outcome)
    assert c["ok"] == c["scheduled"] == 2000
    assert outcome.summary["books_balanced"] and outcome.summary["verify"]["problems"] == []


def test_a_forwarding_hop_between_a_topic_pair_shows_in_the_latency(
        tmp_path: Path, embedded_kafka: str, single_topic_run: RunOutcome) -> None:
    source, sink = fresh("pair-in"), fresh("pair-out")
    create_topics(embedded_kafka, source, sink)
    with Forwarder(embedded_kafka, source, sink, 3) as forwarder:
        pair = kafka_run(tmp_path, embedded_kafka, "kafka-pair", RATE, PAIR_S, {
            "topic": source, "completion": "consume", "output_topic": sink})
    c = counts(pair)
    assert c["ok"] == c["scheduled"] == RATE * PAIR_S
    assert forwarder.copied == c["scheduled"]
    single_p50 = single_topic_run.summary["ops"]["op"]["response_time_us"]["p50"]
    assert pair.summary["ops"]["op"]["response_time_us"]["p50"] > single_p50


def test_a_processor_that_drops_headers_is_measured_by_a_json_field(tmp_path: Path, embedded_kafka: str) -> None:
    source, sink = fresh("json-in"), fresh("json-out")
    create_topics(embedded_kafka, source, sink)
    with Forwarder(embedded_kafka, source, sink, 3, keep_headers=False):
        outcome = kafka_run(tmp_path, embedded_kafka, "kafka-json", 500, 2, {
            "topic": source, "serializer": "json", "value": {"order": {"id": "{run_id}-{id}"}, "qty": 1},
            "completion": "consume", "output_topic": sink, "correlate": "json:order.id"})
    c = counts(outcome)
    assert c["ok"] == c["scheduled"] == 1000 and outcome.summary["books_balanced"]


def test_a_processor_that_keeps_keys_is_measured_by_the_key(tmp_path: Path, embedded_kafka: str) -> None:
    source, sink = fresh("key-in"), fresh("key-out")
    create_topics(embedded_kafka, source, sink)
    with Forwarder(embedded_kafka, source, sink, 3, keep_headers=False):
        outcome = kafka_run(tmp_path, embedded_kafka, "kafka-key", 500, 2, {
            "topic": source, "completion": "consume", "output_topic": sink, "correlate": "key"})
    c = counts(outcome)
    assert c["ok"] == c["scheduled"] == 1000 and outcome.summary["books_balanced"]


def test_ack_completion_measures_every_op_at_the_brokers_acknowledgement(
        tmp_path: Path, embedded_kafka: str) -> None:
    outcome = kafka_run(tmp_path, embedded_kafka, "kafka-ack", 1000, 2, {
        "topic": fresh("ack"), "value_size": 512, "acks": 1, "linger_ms": 0, "compression": "lz4",
        "key": "{seq}", "headers": {"source": "test-{process}"}})
    c = counts(outcome)
    assert c["ok"] == c["scheduled"] == 2000 and outcome.summary["books_balanced"]


# -- Avro through a Confluent-format registry ---------------------------------------------------------------

class Done:
    """The completions a driver reports, kept for the test."""

    def __init__(self) -> None:
        self.finished: dict[int, str | None] = {}
        self.gauges: dict[str, float] = {}

    def complete(self, op_id: int, error: str | None = None, completed_ns: int | None = None) -> None:
        self.finished[op_id] = error

    def complete_many(self, op_ids: Any, completed_ns: int | None = None, errors: Any = None) -> None:
        for op_id in op_ids:
            self.finished[op_id] = None

    def observe(self, metric: str, value_us: int) -> None:
        pass

    def gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def expect(self, metric: str, n: int = 1) -> None:
        pass


class Background:
    """Stands in for the harness's supervisor: starts the driver's tasks and cancels them at the end."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def __call__(self, factory: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(factory(), name=name))

    async def cancel(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def produce_with_driver(options: dict[str, Any], bootstrap: str, run_dir: Path, n: int
                              ) -> tuple[list[bytes], str]:
    """Launch and start the driver as the harness would, send `n` ops, wait for their acks; returns the
    topic's record values and the schema text the registry gives for the id in the first frame."""
    services = {"kafka": bootstrap}
    async with KafkaDriver.launch(options, services, str(run_dir)) as launched:
        done, background, driver = Done(), Background(), KafkaDriver()
        ctx = DriverContext(options={**options, **launched}, completions=done, services=services,
                            run_id="avro-test", supervise=background)
        await driver.start(ctx)
        try:
            driver.send_batch([Op(i, "op") for i in range(n)])
            for _ in range(1000):
                if len(done.finished) == n:
                    break
                await asyncio.sleep(0.01)
        finally:
            await background.cancel()
            await driver.stop()
        assert done.finished == dict.fromkeys(range(n))
        values = await asyncio.to_thread(read_values, bootstrap, options["topic"], n)
        schema_id = int.from_bytes(values[0][1:5], "big")
        url = ctx.options["schema_registry"]
        async with aiohttp.ClientSession() as session, session.get(f"{url}/schemas/ids/{schema_id}") as resp:
            schema = (await resp.json(content_type=None))["schema"]
    return values, schema


def read_values(bootstrap: str, topic: str, n: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        values: list[bytes] = []
        for _ in range(100):
            values += [m.value() for m in consumer.consume(n, 0.1) if m.error() is None]
            if len(values) >= n:
                break
        return values
    finally:
        consumer.close()


def decode_plain(schema_text: str, value: bytes) -> Any:
    """What any consumer does with a Confluent Avro value: skip the 5-byte frame, read with fastavro."""
    return fastavro.schemaless_reader(io.BytesIO(value[5:]), fastavro.parse_schema(json.loads(schema_text)), None)


@pytest.fixture
def schema_file(tmp_path: Path) -> str:
    path = tmp_path / "order.avsc"
    path.write_text(json.dumps(ORDER_SCHEMA, indent=2))
    return str(path)


def avro_options(topic: str, schema_file: str, **more: Any) -> dict[str, Any]:
    return {"topic": topic, "serializer": "avro", "schema_file": schema_file, "value": ORDER_VALUE,
            "linger_ms": 0, **more}


def expected_order(i: int) -> dict[str, Any]:
    return {"order_id": i, "customer": f"c-{i}", "amount": 12.5, "note": None}


async def test_avro_values_round_trip_through_the_embedded_registry(
        tmp_path: Path, embedded_kafka: str, schema_file: str) -> None:
    values, schema = await produce_with_driver(avro_options(fresh("avro"), schema_file), embedded_kafka, tmp_path, 20)
    assert all(v[0] == 0 for v in values), "magic byte 0"
    assert json.loads(schema) == ORDER_SCHEMA
    assert [decode_plain(schema, v) for v in values] == [expected_order(i) for i in range(20)]


@pytest.fixture
async def user_registry() -> AsyncIterator[tuple[str, list[tuple[str, str, dict[str, Any]]]]]:
    """A Confluent-compatible registry of the user's, independent of the target's: ids start at 100."""
    posts: list[tuple[str, str, dict[str, Any]]] = []
    schemas: dict[int, str] = {}

    async def register(request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        posts.append((request.path, request.content_type, body))
        text = body["schema"]
        sid = next((i for i, s in schemas.items() if s == text), 100 + len(schemas))
        schemas[sid] = text
        return web.json_response({"id": sid})

    async def by_id(request: web.Request) -> web.Response:
        sid = int(request.match_info["id"])
        if sid not in schemas:
            return web.json_response({"error_code": 40403, "message": "Schema not found"}, status=404)
        return web.json_response({"schema": schemas[sid]})

    app = web.Application()
    app.router.add_post("/subjects/{subject}/versions", register)
    app.router.add_get("/schemas/ids/{id}", by_id)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", posts
    finally:
        await runner.cleanup()


async def test_avro_values_round_trip_through_a_registry_given_by_url(
        tmp_path: Path, embedded_kafka: str, schema_file: str,
        user_registry: tuple[str, list[tuple[str, str, dict[str, Any]]]]) -> None:
    url, posts = user_registry
    topic = fresh("avro-url")
    values, schema = await produce_with_driver(avro_options(topic, schema_file, schema_registry=url),
                                               embedded_kafka, tmp_path, 20)
    assert {int.from_bytes(v[1:5], "big") for v in values} == {100}, "the id the user's registry gave"
    assert {(path, ctype) for path, ctype, _ in posts} == {
        (f"/subjects/{topic}-value/versions", "application/vnd.schemaregistry.v1+json")}
    assert json.loads(posts[0][2]["schema"]) == ORDER_SCHEMA
    assert [decode_plain(schema, v) for v in values] == [expected_order(i) for i in range(20)]


def test_an_avro_processor_output_is_correlated_by_a_field(
        tmp_path: Path, embedded_kafka: str, schema_file: str) -> None:
    source, sink = fresh("avro-in"), fresh("avro-out")
    create_topics(embedded_kafka, source, sink)
    with Forwarder(embedded_kafka, source, sink, 3, keep_headers=False):
        outcome = kafka_run(tmp_path, embedded_kafka, "kafka-avro", 500, 2, {
            **avro_options(source, schema_file), "completion": "consume", "output_topic": sink,
            "correlate": "avro:order_id"})
    c = counts(outcome)
    assert c["ok"] == c["scheduled"] == 1000 and outcome.summary["books_balanced"]


# -- bad configuration, refused by `edabench run` before the run -------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(x)}' for k, x in v.items()) + " }"
    return json.dumps(v)


def edabench_run(tmp_path: Path, options: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    lines = ['name = "refused"', 'target = "kafka"', "duration_s = 1", "[rate]", "rate = 10", "[target_options]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in options.items()]
    spec = tmp_path / "spec.toml"
    spec.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDABENCH_")}
    return subprocess.run([str(EDABENCH), "run", str(spec), "--runs-dir", str(tmp_path / "runs"), "--no-report"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)


@pytest.fixture
def refused(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], str]]:
    """Runs `edabench run` on the options; checks it failed before any op and returns its error text."""
    def check(options: dict[str, Any]) -> str:
        proc = edabench_run(tmp_path, options)
        assert proc.returncode == 2, proc.stderr
        assert not list((tmp_path / "runs").glob("*/summary.json")), "nothing ran"
        return " ".join(proc.stderr.split())
    yield check


def test_an_unknown_option_is_refused_naming_it(refused: Callable[[dict[str, Any]], str]) -> None:
    assert "field `target_options.partition`: unknown option" in refused({"topic": "t", "partition": 3})


def test_an_unreachable_broker_is_refused_naming_the_bootstrap(refused: Callable[[dict[str, Any]], str]) -> None:
    port = free_port()
    message = refused({"topic": "t", "bootstrap": f"127.0.0.1:{port}"})
    assert f"target_options.bootstrap: cannot connect to the Kafka broker at 127.0.0.1:{port}" in message


def test_a_missing_topic_is_refused_when_it_may_not_be_created(
        refused: Callable[[dict[str, Any]], str], embedded_kafka: str) -> None:
    topic = fresh("missing")
    message = refused({"topic": topic, "bootstrap": embedded_kafka, "create": False})
    assert f"target_options.topic: topic '{topic}' does not exist" in message


def test_a_missing_output_topic_is_refused_when_it_may_not_be_created(
        refused: Callable[[dict[str, Any]], str], embedded_kafka: str) -> None:
    topic = fresh("in")
    create_topics(embedded_kafka, topic, partitions=1)
    message = refused({"topic": topic, "bootstrap": embedded_kafka, "create": False, "completion": "consume",
                       "output_topic": "no-such-output"})
    assert "target_options.output_topic: topic 'no-such-output' does not exist" in message


def test_an_invalid_schema_file_is_refused_naming_it(
        refused: Callable[[dict[str, Any]], str], tmp_path: Path, embedded_kafka: str) -> None:
    bad = tmp_path / "bad.avsc"
    bad.write_text(json.dumps({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "int64"}]}))
    message = refused({"topic": "t", "bootstrap": embedded_kafka, "serializer": "avro", "schema_file": str(bad),
                       "value": {"id": "{id}"}})
    assert "target_options.schema_file:" in message and "not a valid Avro schema" in message


def test_a_template_with_an_unknown_placeholder_is_refused_naming_it(
        refused: Callable[[dict[str, Any]], str], embedded_kafka: str) -> None:
    message = refused({"topic": "t", "bootstrap": embedded_kafka, "key": "{customer_id}"})
    assert "target_options.key: unknown placeholder {customer_id}" in message


def test_an_unreachable_schema_registry_is_refused_naming_it(
        refused: Callable[[dict[str, Any]], str], schema_file: str, embedded_kafka: str) -> None:
    port = free_port()
    message = refused({"topic": fresh("avro"), "bootstrap": embedded_kafka, "serializer": "avro",
                       "schema_file": schema_file, "value": {"order_id": "{id}", "customer": "c", "amount": 1.5},
                       "schema_registry": f"http://127.0.0.1:{port}"})
    assert f"target_options.schema_registry: cannot reach the schema registry at http://127.0.0.1:{port}" in message
