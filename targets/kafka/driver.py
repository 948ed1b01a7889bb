"""KafkaDriver: a record per op to a user's topic, done at the broker's ack or when it comes out the far side.

    [target_options]
    topic = "orders"                  # required: where each op's record is produced
    bootstrap = "broker:9092"         # default: the harness's Kafka (embedded, or --kafka /
                                      # EDABENCH_KAFKA_BOOTSTRAP); when set, no broker is started
    kafka_config = { "security.protocol" = "SASL_SSL" }   # librdkafka properties for every client
    create = true                     # a missing topic is created; false: refused before the run
    partitions = 1                    # partitions of a topic this run creates
    replication = 1                   # replication factor of a topic this run creates

    key = "{row.customer}"            # template; default none: partitions taken in turn, each
                                      # generator process its own share when they divide evenly
    headers = { "source" = "edabench", "trace" = "{uuid}" }   # templates
    serializer = "bytes"              # "bytes" | "json" | "avro"
    value_size = 100                  # "bytes": random bytes, drawn once (the default: 100)
    value = "text {seq}"              # "bytes": a template, sent as UTF-8
                                      # "json"/"avro": a document (a table, or JSON text) whose string
                                      # leaves are templates; a lone placeholder keeps its type
                                      # ("{id}" is a number, "{id!s}" text)
    value_file = "order.json"         # instead of value: a template file ("bytes") or a JSON document
    data_file = "customers.csv"       # rows feed {row.COLUMN} (CSV with a header line, or JSON lines)
    data_order = "sequential"         # or "random"
    schema_file = "order.avsc"        # "avro": the value's schema, in the Confluent wire format
    schema_registry = "http://registry:8081"   # "avro": where it is registered (Confluent REST;
                                      # user:secret@ in the URL for basic auth); default: an
                                      # embedded registry served for the run
    subject = "orders-value"          # "avro": default "<topic>-value" (TopicNameStrategy)

    acks = "all"                      # 0 | 1 | -1 | "all"
    linger_ms = 5                     # librdkafka's default; 0 for the lowest latency at low rates
    compression = "none"              # "none" | "gzip" | "snappy" | "lz4" | "zstd"

    completion = "ack"                # "ack": done at the broker's acknowledgement (produce latency)
                                      # "consume": done when the op's record arrives on output_topic
    output_topic = "orders-enriched"  # "consume": where results arrive; may be `topic` itself
    correlate = "header"              # "consume": how an output record names its op:
                                      #   "header"  the driver sets edabench-op = "<run tag>/<op id>";
                                      #             the processor copies record headers (default)
                                      #   "key"     the processor keeps the record key (default key:
                                      #             "<run tag>/<op id>")
                                      #   "json:<dotted.path>"  the JSON output carries the produced
                                      #             value's field at that path
                                      #   "avro:<dotted.path>"  the same, Confluent Avro output (writer
                                      #             schemas looked up in the registry by id)

    [target_options.value]            # serializer "json" or "avro", as a table
    order_id = "{id}"
    customer = "{row.customer}"

Placeholders are those of harness.templating. Everything is checked once, before the first op:
options, placeholders, files, a sample value against the schema, the broker, the topics, the
registry; a problem is refused naming its option. With completion = "consume" every partition of
the output topic is read from its current end, without a consumer group, and the records not read
yet are reported once a second as the gauge `consumer_lag` (from the broker's end offsets). A field
or key correlation keeps the ops in flight in a table until their record arrives or they are twice
the spec's timeout old; records stamped more than 2 s before the driver started are not matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate as avro_validate
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from harness.protocol import Driver, DriverContext, Op, Result
from harness.templating import DataRows, OpVars, Template, TemplateError, load_rows
from harness.transports.kafka import KafkaProducer, KafkaReader
from targets.kafka.admin import Admin, bootstrap_hosts, probe
from targets.kafka.avro import AvroDecoder, AvroEncoder, SchemaError, load_schema
from targets.kafka.correlate import HEADER, Correlation, HeaderMatcher, TokenMatcher, lookup, token
from targets.kafka.registry import RegistryClient, RegistryError, embedded_registry
from targets.kafka.values import (
    AvroValue,
    JsonValue,
    RandomBytes,
    TextValue,
    ValueMaker,
    compile_doc,
    parse_json_doc,
)

log = logging.getLogger(__name__)

DEFAULT_VALUE_SIZE = 100
LAG_EVERY_S = 1.0
STALE_SLACK_MS = 2_000  # clock slack when leaving out records stamped before the run


class ConfigError(ValueError):
    """Options that cannot work together; the message names the field."""


class KafkaOptions(BaseModel):
    """`[target_options]` of the kafka target (field order matters: later checks read earlier fields)."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(min_length=1)
    bootstrap: str | None = None
    create: bool = True
    partitions: int = Field(1, ge=1, le=100_000)
    replication: int = Field(1, ge=1, le=32)
    serializer: Literal["bytes", "json", "avro"] = "bytes"
    schema_file: str | None = Field(None, validate_default=True)
    schema_registry: str | None = None
    subject: str | None = None
    key: str | None = None
    value_file: str | None = None
    value: str | dict[str, Any] | None = Field(None, validate_default=True)
    value_size: int | None = Field(None, ge=0, le=64 << 20)
    headers: dict[str, str] = Field(default_factory=dict)
    data_file: str | None = None
    data_order: Literal["sequential", "random"] = "sequential"
    acks: Literal[0, 1, -1, "all"] = "all"
    linger_ms: float = Field(5.0, ge=0, le=60_000)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    kafka_config: dict[str, str | int | float | bool] = Field(default_factory=dict)
    completion: Literal["ack", "consume"] = "ack"
    output_topic: str | None = Field(None, validate_default=True)
    correlate: str = "header"

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap(cls, v: str | None) -> str | None:
        if v is not None:
            bootstrap_hosts(v)  # ValueError: "'x' is not host:port"
        return v

    @field_validator("schema_file")
    @classmethod
    def _schema_file(cls, v: str | None, info: ValidationInfo) -> str | None:
        avro = info.data.get("serializer") == "avro"
        if avro and not v:
            raise ValueError('serializer "avro" needs a schema_file (an .avsc file)')
        if v and not avro:
            raise ValueError('a schema_file is used with serializer = "avro" only')
        return v

    @field_validator("schema_registry")
    @classmethod
    def _registry(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{v!r} is not an http:// or https:// URL")
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: str | dict[str, Any] | None, info: ValidationInfo) -> str | dict[str, Any] | None:
        serializer = info.data.get("serializer")
        if v is not None and info.data.get("value_file"):
            raise ValueError("give value or value_file, not both")
        if isinstance(v, dict) and serializer == "bytes":
            raise ValueError('a table value needs serializer = "json" or "avro"')
        if v is None and serializer in ("json", "avro") and not info.data.get("value_file"):
            raise ValueError(f'serializer "{serializer}" needs a value (a table, or a JSON document) or a value_file')
        return v

    @field_validator("value_size")
    @classmethod
    def _value_size(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and info.data.get("serializer") != "bytes":
            raise ValueError('value_size (random bytes) is for serializer = "bytes"')
        if v is not None and (info.data.get("value") is not None or info.data.get("value_file")):
            raise ValueError("give value_size or a value, not both")
        return v

    @field_validator("output_topic")
    @classmethod
    def _output_topic(cls, v: str | None, info: ValidationInfo) -> str | None:
        consume = info.data.get("completion") == "consume"
        if consume and not v:
            raise ValueError('completion = "consume" needs the output_topic where each op\'s record arrives')
        if v and not consume:
            raise ValueError('an output_topic is read with completion = "consume" only')
        return v

    @field_validator("correlate")
    @classmethod
    def _correlate(cls, v: str, info: ValidationInfo) -> str:
        corr = Correlation.parse(v)
        if corr.mode != "header" and info.data.get("completion") != "consume":
            raise ValueError('correlate is used with completion = "consume" only')
        serializer = info.data.get("serializer")
        if corr.by_field and serializer not in ("json", "avro"):
            raise ValueError(f'{v!r} reads a field of the produced value too: it needs serializer "json" or "avro"')
        if corr.mode == "avro" and serializer != "avro" and not info.data.get("schema_registry"):
            raise ValueError(f"{v!r} decodes the processor's Avro output: it needs the schema_registry its "
                             "writer schemas are registered in")
        return v


@dataclass
class Setup:
    """The options compiled: templates checked, files read, a sample value checked."""

    options: KafkaOptions
    bootstrap: str
    correlation: Correlation
    key: Template | None
    headers: list[tuple[str, Template]]
    rows: DataRows | None
    schema_text: str | None
    schema: Any
    render: Any  # json/avro: renders the value's document for an op
    value: ValueMaker | None  # None for avro until the schema id is known


def _bootstrap_of(o: KafkaOptions, services: dict[str, str]) -> tuple[str, str]:
    """(bootstrap, the name to blame when it does not answer)."""
    if o.bootstrap:
        return o.bootstrap, "target_options.bootstrap"
    kafka = services.get("kafka")
    if not kafka:
        raise ConfigError("target_options.bootstrap: no Kafka to produce to: set bootstrap, or run under the "
                          "harness, which provides one (embedded, or --kafka)")
    return kafka, "the kafka service (--kafka / EDABENCH_KAFKA_BOOTSTRAP)"


def _read_text(path: str, where: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None


async def compile_options(o: KafkaOptions, bootstrap: str, process_index: int = 0) -> Setup:
    """Everything about the options that needs no broker: templates, files, the sample value."""
    where = "target_options"
    corr = Correlation.parse(o.correlate)
    rows = None
    if o.data_file:
        rows = DataRows(await asyncio.to_thread(load_rows, o.data_file, f"{where}.data_file"), o.data_order,
                        process_index + 1)
    columns = rows.columns if rows is not None else None
    key_text = o.key if o.key is not None else ("{run_id}.{process}/{id}" if corr.mode == "key" else None)
    key = Template(key_text, f"{where}.key", columns) if key_text is not None else None
    headers = [(name, Template(text, f"{where}.headers.{name}", columns)) for name, text in o.headers.items()]
    schema_text, schema = None, None
    if o.serializer == "avro":
        assert o.schema_file is not None
        schema_text, schema = await asyncio.to_thread(load_schema, o.schema_file, f"{where}.schema_file")
    render: Any = None
    value: ValueMaker | None
    if o.serializer == "bytes":
        if o.value is None and o.value_file is None:
            value = RandomBytes(DEFAULT_VALUE_SIZE if o.value_size is None else o.value_size)
        else:
            text = o.value if isinstance(o.value, str) else await asyncio.to_thread(
                _read_text, o.value_file or "", f"{where}.value_file")
            value = TextValue(Template(text, f"{where}.value_file" if o.value is None else f"{where}.value", columns))
    else:
        field = f"{where}.value" if o.value is not None else f"{where}.value_file"
        raw: Any = o.value
        if raw is None:
            raw = parse_json_doc(await asyncio.to_thread(_read_text, o.value_file or "", field), field)
        elif isinstance(raw, str):
            raw = parse_json_doc(raw, field)
        render = compile_doc(raw, field, columns)
        value = JsonValue(render) if o.serializer == "json" else None
    setup = Setup(o, bootstrap, corr, key, headers, rows, schema_text, schema, render, value)
    _check_sample(setup)
    return setup


def _sample_vars(setup: Setup, op_id: int) -> OpVars:
    rows = setup.rows
    return OpVars(Op(op_id, "op"), op_id + 1, 0, "sample", rows.pick(op_id + 1) if rows is not None else None)


def _check_sample(setup: Setup) -> None:
    """Render two ops' values: they must encode, and the correlation value must differ between ops."""
    o = setup.options
    field = "target_options.value" if o.value is not None else "target_options.value_file"
    samples = []
    for op_id in (0, 1):
        values = _sample_vars(setup, op_id)
        try:
            doc = setup.render(values) if setup.render is not None else None
            key = setup.key.render(values) if setup.key is not None else None
            for _, t in setup.headers:
                t.render(values)
        except (KeyError, AttributeError, ValueError) as exc:
            raise TemplateError(f"{field}: a sample op cannot be rendered: {exc}") from None
        if o.serializer == "avro":
            try:
                avro_validate(doc, setup.schema, raise_errors=True)
            except AvroValidationError as exc:
                detail = "; ".join(str(e) for e in exc.errors)
                raise SchemaError(f"{field}: a sample value does not match the schema in {o.schema_file}: "
                                  f"{detail}") from None
        samples.append((key, doc))
    corr = setup.correlation
    if o.completion != "consume" or corr.mode == "header":
        return
    if corr.mode == "key":
        if samples[0][0] == samples[1][0]:
            raise ConfigError('target_options.key: correlate = "key" needs a key that differs per op, e.g. "{id}"')
        return
    path = ".".join(corr.path)
    tokens = [token(lookup(doc, corr.path)) for _, doc in samples]
    if tokens[0] is None:
        raise ConfigError(f"target_options.correlate: the produced value has no field {path!r} to correlate by")
    if tokens[0] == tokens[1]:
        raise ConfigError(f"target_options.correlate: the field {path!r} has the same value for every op; "
                          'put a placeholder such as "{id}" in it')


async def check_broker(setup: Setup, blame: str) -> Admin:
    """The broker answers; the topics exist or are created (create = true). Returns the admin client."""
    o = setup.options
    await probe(setup.bootstrap, blame)
    admin = Admin(setup.bootstrap, o.kafka_config)
    topics = await admin.topics(blame)
    wanted = [("target_options.topic", o.topic)]
    if o.output_topic and o.output_topic != o.topic:
        wanted.append(("target_options.output_topic", o.output_topic))
    for field, topic in wanted:
        if topic in topics:
            continue
        if not o.create:
            raise LookupError(f"{field}: topic {topic!r} does not exist on {setup.bootstrap} (create = false)")
        await admin.create(topic, o.partitions, o.replication, field)
    return admin


def _needs_registry(o: KafkaOptions) -> bool:
    return o.serializer == "avro" or Correlation.parse(o.correlate).mode == "avro"


async def register(setup: Setup, url: str) -> tuple[RegistryClient, int | None]:
    """The schema registered under its subject (idempotent); (client, id), id None without a schema."""
    o = setup.options
    client = RegistryClient(url)
    if setup.schema_text is None:
        return client, None
    subject = o.subject or f"{o.topic}-value"
    try:
        return client, await client.register(subject, setup.schema_text)
    except (ConnectionError, RegistryError) as exc:
        await client.close()
        raise type(exc)(f"target_options.schema_registry: {exc}") from None


def _ignore(op_ids: list[int]) -> None:
    pass


def own_partitions(partitions: int, process_index: int, process_count: int) -> list[int]:
    """The partitions a generator process sends keyless records to: its own share when they divide
    evenly among the processes, so that each partition has one producer (on the embedded broker a
    reader tailing a partition that two producers append to at once was seen to skip records),
    else all of them (an uneven share would load some partitions more than others)."""
    if process_count > 1 and partitions % process_count == 0:
        return [p for p in range(partitions) if p % process_count == process_index]
    return list(range(partitions))


class KafkaDriver(Driver):
    name: ClassVar[str] = "kafka"
    Options: ClassVar[type[BaseModel]] = KafkaOptions

    @classmethod
    def needs_for(cls, options: dict[str, Any]) -> Iterable[str]:
        return () if options.get("bootstrap") else ("kafka",)

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, options: dict[str, Any], services: dict[str, str], run_dir: str
                     ) -> AsyncIterator[dict[str, Any]]:
        """Check everything once before any generator starts, create missing topics, and serve an
        embedded schema registry for the run when Avro is used without one."""
        o = KafkaOptions.model_validate(options)
        bootstrap, blame = _bootstrap_of(o, services)
        setup = await compile_options(o, bootstrap)
        await check_broker(setup, blame)
        if not _needs_registry(o):
            yield {}
            return
        if o.schema_registry:
            client, _ = await register(setup, o.schema_registry)
            await client.close()
            yield {}
            return
        async with embedded_registry() as url:
            client, _ = await register(setup, url)
            await client.close()
            log.info("embedded schema registry for this run: %s", url)
            yield {"schema_registry": url}

    def __init__(self) -> None:
        self._ctx: DriverContext | None = None
        self._setup: Setup | None = None
        self._producer: KafkaProducer | None = None
        self._reader: KafkaReader | None = None
        self._registry: RegistryClient | None = None
        self._admin: Admin | None = None
        self._matcher: HeaderMatcher | TokenMatcher | None = None
        self._topic = ""
        self._tag = b""
        self._seq = 0
        self._last_id = -1
        self._own: list[int] = []  # partitions this process writes keyless records to
        self._consume = False
        self._start_offsets: dict[tuple[str, int], int] = {}

    async def start(self, ctx: DriverContext) -> None:
        o = KafkaOptions.model_validate(ctx.options)
        self._ctx = ctx
        bootstrap, blame = _bootstrap_of(o, ctx.services)
        setup = self._setup = await compile_options(o, bootstrap, ctx.process_index)
        self._admin = await check_broker(setup, blame)
        schema_id = None
        if _needs_registry(o):
            if not o.schema_registry:
                raise ConfigError("target_options.schema_registry: no registry given and none was launched "
                                  "(the harness starts an embedded one)")
            self._registry, schema_id = await register(setup, o.schema_registry)
        if o.serializer == "avro":
            assert schema_id is not None
            setup.value = AvroValue(setup.render, AvroEncoder(schema_id, setup.schema).encode)
        self._topic = o.topic
        tag = f"{ctx.run_id}.{ctx.process_index}"
        self._tag = f"{tag}/".encode()
        self._consume = o.completion == "consume"
        # acks finish their ops in one call per poll (ack mode); in consume mode they finish nothing
        acked = _ignore if self._consume else ctx.completions.complete_many
        self._producer = KafkaProducer(bootstrap, self._failed, on_acked=acked, acks=o.acks,
                                       linger_ms=o.linger_ms, config=dict(o.kafka_config),
                                       compression=None if o.compression == "none" else o.compression)
        partitions = (await self._producer.prepare([o.topic]))[o.topic]
        self._own = own_partitions(partitions, ctx.process_index, ctx.process_count)
        ctx.background(self._producer.run, "kafka-producer")
        if not self._consume:
            return
        assert o.output_topic is not None
        complete_many = ctx.completions.complete_many
        if setup.correlation.mode == "header":
            self._matcher = HeaderMatcher(tag, complete_many)
        else:
            decoder = None
            if setup.correlation.mode == "avro":
                known = {schema_id: setup.schema} if schema_id is not None else {}
                decoder = AvroDecoder(self._registry, known)
            self._matcher = TokenMatcher(setup.correlation, complete_many, spawn=ctx.background, decoder=decoder,
                                         not_before_ms=time.time_ns() // 1_000_000 - STALE_SLACK_MS)
        partitions = (await self._admin.topics(blame)).get(o.output_topic, 0)
        # explicit start offsets, asked before the reader exists: an "end" resolved lazily by the
        # client could land after the first records of the run, which would then never be read
        self._start_offsets = await self._admin.end_offsets(o.output_topic, partitions)
        self._reader = KafkaReader(bootstrap, [o.output_topic], self._matcher.on_records,
                                   config=dict(o.kafka_config))
        await self._reader.assign(self._start_offsets)
        ctx.background(self._reader.run, "kafka-output")
        ctx.background(self._watch, "kafka-lag")

    def _failed(self, op_id: int, error: str | None) -> None:
        """A record the broker did not take finishes its op with the error, in either mode."""
        if error is not None:
            self._ctx.completions.complete(op_id, error)  # type: ignore[union-attr]

    async def send(self, op: Op) -> Result | None:
        self.send_batch([op])
        return None

    def send_batch(self, ops: list[Op]) -> None:
        """Every due op's record into librdkafka's queue in one pass; outcomes come later."""
        setup, ctx, producer = self._setup, self._ctx, self._producer
        assert setup is not None and ctx is not None and producer is not None and setup.value is not None
        produce, topic, make = producer.produce, self._topic, setup.value.make
        key_t, header_ts, rows = setup.key, setup.headers, setup.rows
        own = self._own
        n_own = len(own)
        needs_vars = setup.value.needs_vars or key_t is not None or bool(header_ts)
        process, run_id = ctx.process_index, ctx.run_id
        matcher = self._matcher
        by_header = isinstance(matcher, HeaderMatcher)
        by_token = isinstance(matcher, TokenMatcher)
        by_key = by_token and setup.correlation.mode == "key"
        path = setup.correlation.path
        tag = self._tag
        complete = ctx.completions.complete
        for op in ops:
            self._seq += 1
            seq = self._seq
            try:
                values = OpVars(op, seq, process, run_id, rows.pick(seq) if rows is not None else None
                                ) if needs_vars else None
                value, doc = make(values, seq)
                key = key_t.render(values).encode() if key_t is not None else None  # type: ignore[arg-type]
                headers = [(n, t.render(values).encode()) for n, t in header_ts] if header_ts else None  # type: ignore[arg-type]
            except Exception as exc:  # a data row that does not fit the template or the schema
                complete(op.id, f"encode_{type(exc).__name__}")
                continue
            if by_header:
                mark = (HEADER, tag + b"%d" % op.id)
                headers = [*headers, mark] if headers else [mark]
            elif by_token:
                corr_value = key if by_key else token(lookup(doc, path))
                if corr_value is None:
                    complete(op.id, "no_correlation_value")
                    continue
                matcher.expect(corr_value, op.id)  # type: ignore[union-attr]
            try:
                produce(topic, value, key, own[seq % n_own] if key is None else None, headers, op.id)
            except BufferError:
                complete(op.id, "produce_queue_full")
            except Exception as exc:  # KafkaException: e.g. a record larger than the broker takes
                complete(op.id, f"produce_{type(exc).__name__}")
            self._last_id = op.id

    async def _watch(self) -> None:
        """Once a second: the consumer lag gauge, and forgetting ops long past their timeout."""
        ctx, admin, reader, matcher = self._ctx, self._admin, self._reader, self._matcher
        assert ctx is not None and admin is not None and reader is not None and matcher is not None
        topic = ctx.options["output_topic"]
        partitions = len(self._start_offsets)
        keep_s = 2 * ctx.timeout_s + 5  # an op is forgotten long after the harness timed it out
        marks: deque[tuple[float, int]] = deque()
        loop = asyncio.get_running_loop()
        warned = False
        while True:
            await asyncio.sleep(LAG_EVERY_S)
            try:
                ends = await admin.end_offsets(topic, partitions)
            except Exception as exc:  # a lag probe that fails is a gap in a gauge, not a reason to stop
                if not warned:
                    log.warning("consumer lag not measured: %s: %s", type(exc).__name__, exc)
                    warned = True
                ends = {}
            if ends:
                positions = reader.positions()
                lag = 0
                for tp, end in ends.items():
                    pos = positions.get(tp, -1)
                    if pos < 0:
                        pos = self._start_offsets.get(tp, end)
                    lag += max(0, end - pos)
                ctx.completions.gauge("consumer_lag", float(lag))
            now = loop.time()
            marks.append((now, self._last_id))
            while len(marks) > 1 and marks[1][0] <= now - keep_s:
                marks.popleft()
            if marks[0][0] <= now - keep_s:
                matcher.forget_before(marks[0][1] + 1)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.close()
        if self._reader is not None:
            await self._reader.close()
        if self._registry is not None:
            await self._registry.close()
