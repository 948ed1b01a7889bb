"""BankDriver: the harness's handle on the bank pipeline.

`launch` (once per run, parent process) prepares topics, tables and schemas and starts the
bancaire service (1..N instance processes); without it, `start` does the same in process 0.
`start` then opens an outcome reader and a producer; `send` encodes an event and hands it to Kafka
(completion is asynchronous: the outcome record, correlated by the `edabench-op-id` header).

Ops carry a payload built by the bank workload (`workloads.bank`), a dict:
``{"event": "DepotEffectue", "key": compte_id, "fields": {...Avro record...},
"expect": "applied"|"duplicate"|"rejected"|"dlq", "raw": bytes | None}``. With `raw`, those bytes are
sent as they are (corrupt-record tests). An outcome equal to `expect` completes the op as ok, so a
deliberate overdraft that is rejected counts as ok; any other outcome completes it as an error of
kind "status:reason" (e.g. "rejected:insufficient_funds" for a deposit that should have applied).

Options (spec `[target_options]`): partitions (3), instances (1), reset (true: fresh tables, and a
fresh consumer group starting at the current end of the topics), group (default per run),
schema_registry_url (env EDABENCH_SCHEMA_REGISTRY_URL; default: a PostgreSQL table), api_port
(0 = free ports), max_batch (2000), fetch_wait_ms (5), linger_ms (1), ready_timeout_s (60),
stop_timeout_s (15), kill_at_s / restart_after_s (chaos: SIGKILL instance 0 that many seconds
after the service is up, restart it later), lag_interval_s (1; 0 = no consumer_lag gauge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, ClassVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from harness.protocol import DriverContext, Op
from targets.bank.avro import Encoder
from targets.bank.launcher import Launcher
from targets.bank.outcomes import Books, OutcomeReader
from targets.bank.registry import make_registry
from targets.bank.topics import EVENT_TOPICS, H_OP_ID, H_ORIGIN, group_lag, input_partitions, own_partition
from targets.kafka_pump import ProducerPump

log = logging.getLogger(__name__)


class BankDriver:
    name: ClassVar[str] = "bank"
    needs: ClassVar[tuple[str, ...]] = ("kafka", "postgres")

    def __init__(self) -> None:
        self.books = Books()
        self.dsn = ""
        self._pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._pump: ProducerPump | None = None
        self._reader: OutcomeReader | None = None
        self._launcher: Launcher | None = None
        self._encoder: Encoder | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ctx: DriverContext | None = None
        self._origin = b""
        self._n_parts: dict[str, int] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls, options: dict[str, Any], services: dict[str, str], run_dir: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Start the service once per run; the yielded dict reaches every driver's options."""
        launcher = Launcher(options, services, run_dir)
        try:
            yield await launcher.start()
        finally:
            await launcher.stop()

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

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self, ctx: DriverContext) -> None:
        self._ctx = ctx
        o = ctx.options
        kafka, self.dsn = ctx.services["kafka"], ctx.services["postgres"]
        self._origin = f"{ctx.run_id or uuid.uuid4().hex}/{ctx.process_index}".encode()
        if not o.get("bank_launched"):
            if ctx.process_index != 0:
                raise RuntimeError("bank: several generator processes need the harness's launch() hook")
            self._launcher = Launcher(o, ctx.services, ctx.run_dir)
            o = ctx.options = {**o, **await self._launcher.start()}
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
            registry = make_registry(self._pool, o.get("schema_registry_url"))
            try:
                self._encoder = Encoder(registry)
                await self._encoder.register_all()  # already registered: returns the existing ids
            finally:
                await registry.close()
            self._reader = OutcomeReader(kafka, self._origin.decode(), self.books, ctx.completions)
            await self._reader.start()
            self._producer = AIOKafkaProducer(
                bootstrap_servers=kafka,
                acks=1,
                linger_ms=int(o.get("linger_ms", 1)),
                enable_idempotence=False,
                max_batch_size=128 * 1024,
            )
            await self._producer.start()
            self._pump = ProducerPump(self._producer, self._produce_failed)
            self._pump.start()
            if ctx.process_count > 1:  # each generator process appends to partitions of its own
                for topic in EVENT_TOPICS.values():
                    self._n_parts[topic] = len(await self._producer.partitions_for(topic))
            if float(o.get("lag_interval_s", 1.0)) > 0 and ctx.process_index == 0:
                self._tasks.append(asyncio.create_task(self._lag_loop(kafka, o), name="bank-lag"))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        try:
            if self._pump is not None:
                await self._pump.stop()
                self._pump = None
            if self._producer is not None:
                await self._producer.stop()
            if self._reader is not None:
                await self._reader.stop()
        finally:
            self._producer = self._reader = None
            if self._launcher is not None:
                await self._launcher.stop()
                self._launcher = None
            if self._pool is not None:
                await self._pool.close()
                self._pool = None

    # ---- ops -------------------------------------------------------------------------------
    async def send(self, op: Op) -> None:
        self.send_nowait(op)

    def send_nowait(self, op: Op) -> None:
        """Encode and hand the record to the producer pump: no await, no Task per op."""
        p: dict[str, Any] = op.payload
        value = p.get("raw")
        if value is None:
            value = self._encoder.encode(p["event"], p["fields"])  # type: ignore[union-attr]
        self.books.in_flight[op.id] = p.get("expect")
        topic, key = EVENT_TOPICS[p["event"]], p["key"].encode()
        part = None
        if self._n_parts:
            ctx = self._ctx
            assert ctx is not None
            part = own_partition(ctx.process_index, ctx.process_count, self._n_parts[topic], key)
        self._pump.submit(  # type: ignore[union-attr]
            op.id, topic, value, key, part, [(H_OP_ID, op.id.encode()), (H_ORIGIN, self._origin)]
        )
        self.books.sent += 1
        p["sent"] = True  # tells the workload's ledger this op left (unsent ones are not reconciled)

    def _produce_failed(self, op_id: str, exc: BaseException) -> None:
        self.books.produce_failed += 1
        if self.books.in_flight.pop(op_id, "gone") != "gone" and self._ctx is not None:
            self._ctx.completions.complete(op_id, "produce_failed")

    # ---- what a workload's verify() needs --------------------------------------------------
    def tallies(self) -> dict[str, Any]:
        return self.books.snapshot()

    async def accounts(self, prefix: str) -> dict[str, tuple[Decimal, str]]:
        """Balances and statuses of the accounts whose id starts with `prefix`."""
        rows = await self._pool.fetch(  # type: ignore[union-attr]
            "SELECT id, solde, statut FROM bancaire.comptes WHERE starts_with(id, $1)", prefix
        )
        return {r["id"]: (r["solde"], r["statut"]) for r in rows}

    async def event_statuses(self, event_ids: list[str]) -> dict[str, str]:
        rows = await self._pool.fetch(  # type: ignore[union-attr]
            "SELECT event_id, status FROM bancaire.processed_events WHERE event_id = ANY($1::text[])", event_ids
        )
        return {r["event_id"]: r["status"] for r in rows}

    # ---- background ------------------------------------------------------------------------
    async def _lag_loop(self, kafka: str, o: dict[str, Any]) -> None:
        """Gauge `consumer_lag`: end offsets minus the group's committed offsets, all input partitions."""
        group = str(o.get("group", "bancaire"))
        interval = float(o.get("lag_interval_s", 1.0))
        tps = await input_partitions(kafka)
        probe = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
        await probe.start()
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    lag = await group_lag(probe, tps)
                except Exception as exc:
                    log.info("consumer lag unavailable (%s); gauge disabled", exc)
                    return
                if self._ctx is not None:
                    self._ctx.completions.gauge("consumer_lag", float(lag))
        finally:
            await probe.stop()
