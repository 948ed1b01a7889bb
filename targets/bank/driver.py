"""BankDriver: the harness's handle on the bank pipeline.

`launch` (once per run, in the harness's process) prepares the run's namespaced topics, tables
and schemas and starts the bancaire service (1..N supervised instance processes). `start` then
opens the librdkafka producer and the outcome reader; `send_batch` encodes every due event and
hands it to librdkafka in one pass; completion is asynchronous: the outcome record the service
publishes after its PostgreSQL commit, correlated by the `edabench-op-id` header it echoes.

With `gateway = true` the launch also starts the Gateway in front of the pipeline
(targets/bank/gateway), and every generator process opens its share of `subscribers` WebSocket
clients: each event sent is owed one delivery per subscriber of its topic
(`Completions.expect("ws_delivery", n)`), and each delivery is measured from the event's intended
start into the `ws_delivery` histogram (and `ws_delivery.<subscriber>`), so the stage users watch
(event -> screen) is measured next to produce -> persisted. Deliveries that never came are listed
in the summary; a subscriber the gateway dropped is a problem, with its reason. With
`attach = true` the driver runs against a pipeline already running in `namespace` (nothing is
started, reset or deleted).

Ops carry a payload built by the bank workload (`workloads.bank`), a dict:
``{"event": "DepotEffectue", "key": compte_id, "fields": {...Avro record...},
"expect": "applied"|"duplicate"|"rejected"|"dlq", "raw": bytes | None}``. With `raw`, those bytes
are sent as they are (corrupt-record tests). An outcome equal to `expect` completes the op as ok,
so a deliberate overdraft that is rejected counts as ok; any other outcome completes it as an
error of kind "status:reason" (e.g. "rejected:insufficient_funds" for a deposit that should have
applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from harness.protocol import Driver, DriverContext, Op
from harness.transports.kafka import KafkaProducer, KafkaReader
from targets.bank.avro import Encoder
from targets.bank.launcher import Launcher
from targets.bank.outcomes import Books, OutcomeHandler, watchdog
from targets.bank.registry import make_registry
from targets.bank.topics import H_OP_ID, H_ORIGIN, SEED, Names, group_lag, own_partition

log = logging.getLogger(__name__)
# Outcomes carry the service's commit instant and success acks complete nothing, so the reader and the
# producer's delivery reports need no 1 ms polling: at 500 events/s those two loops were half of a bank
# generator's CPU (py-spy), and a 10 ms poll delays only when the books see what has already happened.
POLL_S = 0.01


class BankOptions(BaseModel):
    """`[target_options]` of the bank target (and what its launch adds for the drivers)."""

    model_config = ConfigDict(extra="forbid")

    partitions: int = Field(3, ge=1)
    instances: int = Field(1, ge=1)
    reset: bool = True
    group: str | None = None
    namespace: str = "auto"  # "auto": a namespace per run; "": the seed's topic and schema names
    schema_registry_url: str | None = None
    api_port: int = Field(0, ge=0)
    max_batch: int = Field(2000, ge=1)
    fetch_wait_ms: int = Field(5, ge=0)
    linger_ms: float = Field(5, ge=0)  # the generator's producer
    outcome_partitions: int | None = Field(None, ge=1)
    outcome_linger_ms: float = Field(5, ge=0)
    reader_fetch_wait_ms: int = Field(5, ge=0)
    ready_timeout_s: float = Field(60, gt=0)
    stop_timeout_s: float = Field(15, gt=0)
    kill_at_s: float | None = None
    restart_after_s: float = 5
    restart: Literal["always", "never"] = "always"
    max_restarts: int = Field(5, ge=0)
    keep_topics: bool = False
    keep_schema: bool = True
    lag_interval_s: float = Field(1.0, ge=0)
    stall_s: float = Field(15.0, gt=0)  # outcomes silent this long while due: the reader is deaf
    attach: bool = False  # run against a pipeline already running in `namespace`; start nothing
    gateway: bool = False  # start the Gateway in front of the pipeline
    subscribers: int = Field(0, ge=0)  # WebSocket subscribers in all (spread over generator processes)
    subscriber_topics: str | list[str] = "*"  # "*": every event topic; "spread": subscriber i on topic i mod 5
    gateway_ws_queue: int = Field(1000, ge=1)
    gateway_url: str | None = None  # set by the launch
    # what launch() yields, merged in by the harness
    bank_launched: bool = False
    api_ports: list[int] = Field(default_factory=list)
    pids: dict[str, int] = Field(default_factory=dict)


async def _attached(opts: BankOptions, services: dict[str, str]) -> dict[str, Any]:
    """`attach = true`: a pipeline already runs in `namespace`; check its topics, start nothing."""
    from targets.bank.topics import input_partitions

    if opts.namespace == "auto":
        raise ValueError("target_options.namespace: attach = true needs the running pipeline's namespace "
                         "('' for the seed's topic names)")
    names = Names(opts.namespace)
    present = {tp.topic for tp in await input_partitions(services["kafka"], names)}
    missing = sorted(set(names.inputs) - present)
    if missing:
        raise RuntimeError(f"target_options.namespace: no bank pipeline runs in namespace {names.namespace!r}: "
                           f"topics {missing} do not exist")
    return {"bank_launched": True, "namespace": names.namespace, "group": opts.group or names.group,
            "api_ports": list(opts.api_ports), "pids": {}, "problems": []}


class BankDriver(Driver):
    name: ClassVar[str] = "bank"
    needs: ClassVar[tuple[str, ...]] = ("kafka", "postgres")
    Options: ClassVar[type[BaseModel]] = BankOptions

    def __init__(self) -> None:
        self.books = Books()
        self.dsn = ""
        self.names = Names("")
        self._pool: asyncpg.Pool | None = None
        self._producer: KafkaProducer | None = None
        self._reader: KafkaReader | None = None
        self._launcher: Launcher | None = None
        self._encoder: Encoder | None = None
        self._ctx: DriverContext | None = None
        self._origin = b""
        self._headers_origin: tuple[str, bytes] = (H_ORIGIN, b"")
        self._own: tuple[int, int] | None = None  # (process index, count) when several processes write
        self._subs: list[Any] = []
        self._subs_per_topic: dict[str, int] = {}
        self._ws_pending: dict[int, list[int]] = {}  # op id -> [intended ns, deliveries still owed]
        self.ws_problems: list[str] = []
        self._closing = False

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, options: dict[str, Any], services: dict[str, str], run_dir: str
                     ) -> AsyncIterator[dict[str, Any]]:
        """Start the service (and the gateway) once per run; the yielded dict reaches every driver."""
        opts = BankOptions.model_validate({k: v for k, v in options.items() if k in BankOptions.model_fields})
        async with contextlib.AsyncExitStack() as stack:
            if opts.attach:
                launched = await _attached(opts, services)
            else:
                launcher = Launcher(options, services, run_dir)
                stack.push_async_callback(launcher.stop)
                launched = await launcher.start()
            if opts.gateway:
                from targets.bank.gateway.launch import gateway_up

                gw = await stack.enter_async_context(gateway_up(
                    services["kafka"], services["postgres"], launched["namespace"], list(launched["api_ports"]),
                    str(launched["group"]), opts.gateway_ws_queue, Path(run_dir) / "logs"))
                launched["gateway_url"] = gw.url
                launched["pids"]["gateway"] = gw.pid
                stack.callback(lambda: launched["problems"].extend(gw.problems))
            yield launched

    @property
    def api_urls(self) -> list[str]:
        """Base URLs of the service instances' REST API."""
        if self._launcher is not None and self._launcher.procs is not None:
            ports = self._launcher.procs.ports
        else:
            ports = list(self._ctx.options.get("api_ports", ())) if self._ctx else []
        return [f"http://127.0.0.1:{p}" for p in ports]

    @property
    def pids(self) -> dict[str, int]:
        return self._launcher.pids if self._launcher is not None else {}

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self, ctx: DriverContext) -> None:
        self._ctx = ctx
        o = dict(ctx.options)
        kafka, self.dsn = ctx.services["kafka"], ctx.services["postgres"]
        if not o.get("bank_launched"):
            if ctx.process_index != 0:
                raise RuntimeError("bank: several generator processes need the harness's launch() hook")
            self._launcher = Launcher(o, ctx.services, ctx.run_dir)
            o = ctx.options = {**o, **await self._launcher.start()}
        opts = BankOptions.model_validate({k: v for k, v in o.items() if k in BankOptions.model_fields})
        self.names = Names(str(o.get("namespace", "")))
        self._origin = f"{ctx.run_id}/{ctx.process_index}".encode()
        self._headers_origin = (H_ORIGIN, self._origin)
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
            registry = make_registry(self._pool, opts.schema_registry_url)
            try:
                self._encoder = Encoder(registry, self.names)
                await self._encoder.register_all()  # already registered by the launch: returns the ids
            finally:
                await registry.close()
            complete = ctx.completions.complete
            handler = OutcomeHandler(self._origin, self.books, complete)
            self._reader = KafkaReader(kafka, [self.names.outcomes], handler.on_records,
                                       fetch_wait_ms=opts.reader_fetch_wait_ms)
            await self._reader.assign()
            ctx.background(lambda r=self._reader: r.run(POLL_S), "bank outcome reader")
            self._producer = KafkaProducer(kafka, self._delivered, linger_ms=opts.linger_ms)
            await self._producer.prepare(list(self.names.inputs))
            ctx.background(lambda p=self._producer: p.run(POLL_S), "bank producer")
            if ctx.process_count > 1:  # each generator process appends to partitions of its own
                self._own = (ctx.process_index, ctx.process_count)
            timeout_ns = int(ctx.timeout_s * 1e9)
            reader = self._reader
            ctx.background(lambda: watchdog(self.books, reader.positions, reader.end_offsets, opts.stall_s,
                                            timeout_ns), "bank outcome watchdog")
            ctx.background(self._forget_timed_out, "bank in-flight pruning")
            if opts.gateway_url and opts.subscribers:
                await self._subscribe(ctx, opts)
            if opts.lag_interval_s > 0 and ctx.process_index == 0:
                ctx.background(lambda: self._lag_loop(kafka, str(o.get("group") or "bancaire"),
                                                      opts.lag_interval_s), "bank consumer lag")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        self._closing = True
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.close()
        try:
            if self._producer is not None:
                await self._producer.close()
            if self._reader is not None:
                await self._reader.close()
        finally:
            self._producer = self._reader = None
            if self._launcher is not None:
                await self._launcher.stop()
                self._launcher = None
            if self._pool is not None:
                await self._pool.close()
                self._pool = None

    async def _subscribe(self, ctx: DriverContext, opts: BankOptions) -> None:
        """This process's share of the WebSocket subscribers (j with j % processes == index)."""
        from targets.bank.gateway.subscriber import Subscriber

        # clients subscribe by the seed's topic names (the gateway maps them to the run's namespace)
        public = dict(zip(SEED.events.values(), self.names.events.values(), strict=True))
        events = list(public)
        for j in range(ctx.process_index, opts.subscribers, ctx.process_count):
            if opts.subscriber_topics == "*":
                topics = events
            elif opts.subscriber_topics == "spread":
                topics = [events[j % len(events)]]
            else:
                topics = [SEED.events.get(t, t) for t in opts.subscriber_topics]
            name = f"s{j}"
            sub = Subscriber(str(opts.gateway_url), topics, self._on_delivery(name), name=name)
            await sub.connect()
            self._subs.append(sub)
            for topic in topics:
                own = public.get(topic, topic)
                self._subs_per_topic[own] = self._subs_per_topic.get(own, 0) + 1
            ctx.background(lambda s=sub: self._listen(s), f"WebSocket subscriber {name}")

    async def _listen(self, sub: Any) -> None:
        """A subscription that ends is a problem of the run, not a reason to stop it."""
        try:
            await sub.run()
        except Exception as exc:
            log.warning("subscriber %s failed: %r", sub.name, exc)
            self.ws_problems.append(f"WebSocket subscriber {sub.name} failed: {type(exc).__name__}: {exc}")
        else:
            if not self._closing:
                self.ws_problems.append(
                    f"WebSocket subscriber {sub.name} was closed by the {sub.closed_by or 'server'}"
                    f" (code {sub.close_code}: {sub.close_reason or 'no reason'}) after {sub.received} messages")
        await asyncio.Event().wait()  # the run goes on; the supervisor must not see this task end

    def _on_delivery(self, name: str) -> Any:
        observe = self._ctx.completions.observe  # type: ignore[union-attr]
        per_sub = f"ws_delivery.{name}"
        pending, origin = self._ws_pending, self._origin.decode()

        def on_event(topic: str, op_id: int | None, event_origin: str | None, payload: Any) -> None:
            if event_origin != origin or op_id is None:
                return
            entry = pending.get(op_id)
            if entry is None:
                return  # already past its horizon
            us = (time.monotonic_ns() - entry[0]) // 1000
            observe("ws_delivery", us)
            observe(per_sub, us)
            entry[1] -= 1
            if entry[1] <= 0:
                del pending[op_id]
        return on_event

    # ---- ops ----------------------------------------------------------------------------------
    async def send(self, op: Op) -> None:
        self.send_batch([op])

    def send_batch(self, ops: list[Op]) -> None:
        """Encode and hand every due event to librdkafka: no await, no Task per op."""
        encode = self._encoder.encode  # type: ignore[union-attr]
        produce = self._producer.produce  # type: ignore[union-attr]
        topics = self.names.events
        in_flight = self.books.in_flight
        origin = self._headers_origin
        own = self._own
        subs = self._subs_per_topic
        expect = self._ctx.completions.expect if subs and self._ctx is not None else None
        for op in ops:
            p: dict[str, Any] = op.payload
            value = p.get("raw")
            if value is None:
                value = encode(p["event"], p["fields"])
            topic, key = topics[p["event"]], p["key"].encode()
            part = None
            if own is not None:
                part = own_partition(own[0], own[1], self._producer.partitions(topic), key)  # type: ignore[union-attr]
            in_flight[op.id] = (p.get("expect"), op.intended_ns)
            produce(topic, value, key, part, [(H_OP_ID, str(op.id).encode()), origin], op_id=op.id)
            self.books.sent += 1
            p["sent"] = True  # tells the workload's ledger this op left (unsent ones are not reconciled)
            if expect is not None and (k := subs.get(topic, 0)):
                expect("ws_delivery", k)
                self._ws_pending[op.id] = [op.intended_ns, k]

    def _delivered(self, op_id: int, error: str | None) -> None:
        """librdkafka's delivery report: only failures matter (success waits for the outcome)."""
        if error is None:
            return
        self.books.produce_failed += 1
        if self.books.in_flight.pop(op_id, None) is not None and self._ctx is not None:
            self._ctx.completions.complete(op_id, "produce_failed")

    async def _forget_timed_out(self) -> None:
        """Ops the harness has timed out are dropped from the driver's table (bounded memory); a
        margin past the timeout lets a late outcome still be counted as late, not unknown."""
        horizon = int(((self._ctx.timeout_s if self._ctx else 30.0) * 2 + 30) * 1e9)
        while True:
            await asyncio.sleep(1.0)
            deadline = time.monotonic_ns() - horizon
            self.books.forget_older_than(deadline)
            pending = self._ws_pending
            drop = []  # one pass, then the deletions (see Books.forget_older_than)
            for op_id, (intended, _) in pending.items():
                if intended >= deadline:
                    break
                drop.append(op_id)
            for op_id in drop:
                del pending[op_id]  # its missing deliveries stay missing: the summary counts them

    # ---- what a workload's verify() needs ------------------------------------------------------
    def tallies(self) -> dict[str, Any]:
        return self.books.snapshot()

    async def accounts(self, prefix: str) -> dict[str, tuple[Decimal, str]]:
        """Balances and statuses of the accounts whose id starts with `prefix`."""
        rows = await self._pool.fetch(  # type: ignore[union-attr]
            f"SELECT id, solde, statut FROM {self.names.schema}.comptes WHERE starts_with(id, $1)", prefix
        )
        return {r["id"]: (r["solde"], r["statut"]) for r in rows}

    async def event_statuses(self, event_ids: list[str]) -> dict[str, str]:
        rows = await self._pool.fetch(  # type: ignore[union-attr]
            f"SELECT event_id, status FROM {self.names.schema}.processed_events WHERE event_id = ANY($1::text[])",
            event_ids,
        )
        return {r["event_id"]: r["status"] for r in rows}

    # ---- background ---------------------------------------------------------------------------
    async def _lag_loop(self, kafka: str, group: str, interval: float) -> None:
        """Gauge `consumer_lag`: end offsets minus the group's committed offsets, all input partitions."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        probe = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
        await probe.start()
        try:
            await probe.topics()
            tps = [TopicPartition(t, p) for t in self.names.inputs for p in sorted(probe.partitions_for_topic(t) or ())]
            while True:
                await asyncio.sleep(interval)
                try:
                    lag = await group_lag(probe, tps)
                except Exception as exc:
                    log.info("consumer lag unavailable (%s); gauge disabled", exc)
                    await asyncio.Event().wait()  # stay alive (a supervised task must not end early)
                    return
                if self._ctx is not None:
                    self._ctx.completions.gauge("consumer_lag", float(lag))
        finally:
            await probe.stop()
