"""The bancaire consumer: a group member that applies batches to the ledger.

Per `getmany` batch: decode and validate everything (bad records -> DLQ), apply the good ones in
one DB transaction, publish the outcomes, and only then commit the offsets. A crash anywhere before
the offset commit re-delivers the batch, and the processed_events table turns the replay into
"duplicate" outcomes with no second effect.

No record stops the consumer: one the database refuses is isolated and sent to the DLQ
(`apply.LedgerWriter`); a database outage is waited out with the batch held, offsets uncommitted.
The DLQ is at-least-once: a crash between its send and the offset commit sends the record again,
with the same `dlq-source-*` headers, by which a reader dedupes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from targets.bank import metrics as m
from targets.bank.api import Status
from targets.bank.apply import APPLIED, DLQ, DUPLICATE, REJECTED, Decision, LedgerWriter
from targets.bank.avro import DecodeError, Decoder
from targets.bank.retry import Backoff, Stopping, until_done
from targets.bank.topics import (
    EVENT_TOPICS,
    H_DLQ_DETAIL,
    H_DLQ_OFFSET,
    H_DLQ_PARTITION,
    H_DLQ_REASON,
    H_DLQ_TOPIC,
    H_OP_ID,
    H_ORIGIN,
    SEED,
    Names,
    own_partition,
    own_partitions,
)
from targets.bank.validate import check

log = logging.getLogger(__name__)
#: outcomes per outcome record: keeps records well under the default 1 MB request size
OUTCOME_CHUNK = 1000


@dataclass(slots=True)
class Config:
    kafka: str
    group: str = "bancaire"
    max_batch: int = 2000
    fetch_wait_ms: int = 5
    #: how long a SIGKILLed member holds its partitions. Measured on Tansu (1 instance, SIGKILL then
    #: restart): 6000 ms -> 11.5 s until the new process has its partitions, 3000 ms -> 7.5 s; the
    #: rest is the broker's 3 s JoinGroup window and the start of the process. A graceful stop
    #: leaves the group and costs 2.5 s. Heartbeats run on the event loop every third of it, so a
    #: loop stall under a third of this does no harm.
    session_timeout_ms: int = 3000
    instance: int = 0
    instances: int = 1
    #: the run's topics and PostgreSQL schema
    names: Names = field(default_factory=lambda: SEED)
    #: the producer's linger: outcome (and DLQ) records of the batches finished within it share a
    #: request and a stored batch; see `BankConsumer._next_outcome_partition` for why that matters
    outcome_linger_ms: float = 5


class _Listener(ConsumerRebalanceListener):
    def __init__(self, owner: BankConsumer) -> None:
        self.owner = owner
        self.status = owner.status
        self.consumer = owner.consumer
        self.starts = owner.starts

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner.flush_commits()  # commit what is done before the partitions move

    async def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:  # never committed by this group: start where the run started
            start = self.starts.get((tp.topic, tp.partition))
            if start is not None and await self.consumer.committed(tp) is None:
                self.consumer.seek(tp, start)
        self.status.assigned = len(assigned)
        self.status.ready = True
        m.ASSIGNED.set(len(assigned))
        log.info("assigned %d partitions", len(assigned))


def _ids(headers: Any) -> tuple[str | None, str]:
    """(op id, origin) from a record's headers, in one pass."""
    op_id, origin = None, ""
    for k, v in headers or ():
        if k == H_OP_ID and v is not None:
            op_id = v.decode("utf-8", "replace")
        elif k == H_ORIGIN and v is not None:
            origin = v.decode("utf-8", "replace")
    return op_id, origin


class BankConsumer:
    def __init__(
        self,
        cfg: Config,
        pool: asyncpg.Pool,
        decoder: Decoder,
        status: Status,
        starts: dict[tuple[str, int], int] | None = None,
    ) -> None:
        self.cfg = cfg
        self.starts = starts or {}
        self.names = cfg.names
        #: namespaced topic -> the seed's name, the metrics' label
        self._topic_label = {cfg.names.events[e]: t for e, t in EVENT_TOPICS.items()}
        self._out_parts: list[int] = [0]
        self._out_next = 0
        self._dlq_part = 0
        self.pool = pool
        self.decoder = decoder
        self.status = status
        self.stopping = asyncio.Event()
        self.writer = LedgerWriter(pool, self.stopping, schema=cfg.names.schema)
        # (outcome delivery futures, offsets) of applied batches, committed in order off the hot path
        self._pending: asyncio.Queue[tuple[list[asyncio.Future[Any]], dict[TopicPartition, int]]] = asyncio.Queue(
            maxsize=16
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.kafka,
            group_id=cfg.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=cfg.fetch_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=cfg.session_timeout_ms,
            heartbeat_interval_ms=max(300, cfg.session_timeout_ms // 3),
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=cfg.kafka,
            acks=1,
            linger_ms=cfg.outcome_linger_ms,
            enable_idempotence=False,
            max_batch_size=256 * 1024,
            max_request_size=4 * 1024 * 1024,
        )

    async def run(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        await self.plan_partitions()
        committer = asyncio.create_task(self._committer(), name="committer")
        self.consumer.subscribe(list(self.names.inputs), listener=_Listener(self))
        self.status.kafka = "connected"
        failures = 0
        backoff = Backoff(cap_s=5.0)
        try:
            while not self.stopping.is_set():
                batch = await self.consumer.getmany(timeout_ms=100, max_records=self.cfg.max_batch)
                if not batch:
                    continue
                try:
                    await self.process(batch)
                    failures = 0
                except Stopping as exc:
                    log.warning("%s: the batch in hand is left uncommitted, to be replayed", exc)
                    break
                except Exception:  # e.g. the broker away while outcomes are sent: replay the batch
                    log.exception("batch failed; it is consumed again from its first record")
                    self._rewind(batch)
                    try:
                        await asyncio.wait_for(self.stopping.wait(), backoff.delay(failures))
                    except TimeoutError:
                        pass
                    failures += 1
        finally:
            self.status.ready = False
            try:
                await self.flush_commits()
            finally:
                committer.cancel()
                await self.consumer.stop()  # leaves the group so partitions move at once
                await self.producer.stop()

    async def plan_partitions(self) -> None:
        """The output partitions this instance writes to: its share of the outcome partitions, and
        a DLQ partition of its own (see `topics.own_partitions`, `topics.own_partition`)."""
        cfg = self.cfg
        self._out_parts = own_partitions(
            cfg.instance, cfg.instances, len(await self.producer.partitions_for(self.names.outcomes))
        )
        self._out_next = 0
        n_dlq = len(await self.producer.partitions_for(self.names.dlq))
        self._dlq_part = own_partition(cfg.instance, cfg.instances, n_dlq)

    def _rewind(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Consume `batch` again: its offsets were not committed, and a replay only yields duplicates."""
        for tp, recs in batch.items():
            if recs:
                try:
                    self.consumer.seek(tp, recs[0].offset)
                except (IllegalStateError, KafkaError, AssertionError) as exc:  # no longer ours
                    log.info("not rewinding %s (%s): its new owner replays it", tp, exc)

    async def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        t0 = time.perf_counter()
        records = [r for recs in batch.values() for r in recs]
        m.BATCH_SIZE.observe(len(records))
        missing = self.decoder.unknown_ids([r.value for r in records])
        if missing:  # the registry may live in the database: wait out an outage like a write
            await until_done(
                lambda: self.decoder.resolve(missing), self.stopping, "schema lookup", record_error=lambda _e: False
            )

        good: list[tuple[str, dict[str, Any]]] = []
        good_idx: list[int] = []
        decisions: list[Decision | None] = [None] * len(records)
        dlq_futs = []
        for tp, recs in batch.items():
            m.CONSUMED.labels(self._topic_label.get(tp.topic, tp.topic)).inc(len(recs))
        for i, r in enumerate(records):
            try:
                name, rec = self.decoder.decode(r.value)
            except DecodeError as exc:
                decisions[i] = Decision(DLQ, exc.reason)
                dlq_futs.append(await self._to_dlq(r, exc.reason, exc.detail))
                continue
            if (bad := check(name, rec)) is not None:
                decisions[i] = Decision(DLQ, bad.reason)
                dlq_futs.append(await self._to_dlq(r, bad.reason, bad.detail))
                continue
            good.append((name, rec))
            good_idx.append(i)

        t1 = time.perf_counter()
        m.STAGE_SECONDS.labels("decode").observe(t1 - t0)
        if good:
            for d_i, d in zip(good_idx, await self.writer.apply(good), strict=True):
                decisions[d_i] = d
                if d.status == DLQ:  # refused by the database: isolated, the rest was applied
                    dlq_futs.append(await self._to_dlq(records[d_i], d.reason or "db", d.detail or ""))
        committed_ns = time.time_ns()
        self._count(good, good_idx, decisions, committed_ns)

        t2 = time.perf_counter()
        m.STAGE_SECONDS.labels("db").observe(t2 - t1)
        futs = await self._publish(records, good, good_idx, decisions, committed_ns)
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items() if recs}
        # the next batch starts now; the committer moves the offsets once these outcomes are delivered
        await self._pending.put(([*dlq_futs, *futs], offsets))
        t3 = time.perf_counter()
        m.STAGE_SECONDS.labels("outcomes").observe(t3 - t2)
        m.BATCH_SECONDS.observe(t3 - t0)

    @staticmethod
    def _count(
        good: list[tuple[str, dict[str, Any]]],
        good_idx: list[int],
        decisions: list[Decision | None],
        committed_ns: int,
    ) -> None:
        """Metrics per batch, one labelled increment per label value (per event is measurably slow)."""
        applied: Counter[str] = Counter()
        rejected: Counter[str] = Counter()
        duplicates = 0
        oldest_ts: Any = None
        for (name, rec), d_i in zip(good, good_idx, strict=True):
            d = decisions[d_i]
            assert d is not None
            if d.status == APPLIED:
                applied[name] += 1
                if oldest_ts is None:
                    oldest_ts = rec["timestamp"]
            elif d.status == DUPLICATE:
                duplicates += 1
            elif d.status == REJECTED:
                rejected[d.reason or "unknown"] += 1
        for name, n in applied.items():
            m.APPLIED.labels(name).inc(n)
        for reason, n in rejected.items():
            m.REJECTED.labels(reason).inc(n)
        if duplicates:
            m.DUPLICATES.inc(duplicates)
        if oldest_ts is not None:  # one sample per batch: its first applied event
            ts_ms = oldest_ts if isinstance(oldest_ts, int) else int(oldest_ts.timestamp() * 1000)
            m.EVENT_LATENCY.observe(max(0, committed_ns // 1_000_000 - ts_ms) / 1000)

    async def _to_dlq(self, r: Any, reason: str, detail: str = "") -> asyncio.Future[Any]:
        """The original record (key, value, headers) to the DLQ, with why and where it came from."""
        m.DLQ.labels(reason).inc()
        headers = [
            *(r.headers or ()),
            (H_DLQ_REASON, reason.encode()),
            (H_DLQ_DETAIL, detail.encode("utf-8", "replace")),
            (H_DLQ_TOPIC, r.topic.encode()),
            (H_DLQ_PARTITION, str(r.partition).encode()),
            (H_DLQ_OFFSET, str(r.offset).encode()),
        ]
        return await self.producer.send(self.names.dlq, r.value, key=r.key, headers=headers, partition=self._dlq_part)

    async def _publish(
        self,
        records: list[Any],
        good: list[tuple[str, dict[str, Any]]],
        good_idx: list[int],
        decisions: list[Decision | None],
        committed_ns: int,
    ) -> list[asyncio.Future[Any]]:
        """One outcome record per (origin, chunk): per-event records would cost more CPU than the apply.

        Only decoded, valid events carry their event id (an invalid one may be the 1 MB field at fault)."""
        event_ids: dict[int, str] = {i: rec["event_id"] for (_, rec), i in zip(good, good_idx, strict=True)}
        by_origin: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for i, r in enumerate(records):
            d = decisions[i]
            assert d is not None
            op_id, origin = _ids(r.headers)
            by_origin[origin].append(
                {
                    "event_id": event_ids.get(i),
                    "op_id": op_id,
                    "status": d.status,
                    "reason": d.reason,
                    "original": d.original,
                    "processed_at": committed_ns,
                }
            )
        futs = []
        topic = self.names.outcomes
        for origin, outs in by_origin.items():
            for k in range(0, len(outs), OUTCOME_CHUNK):
                value = orjson.dumps(outs[k : k + OUTCOME_CHUNK])
                part = self._next_outcome_partition()
                futs.append(await self.producer.send(topic, value, key=origin.encode(), partition=part))
        return futs

    def _next_outcome_partition(self) -> int:
        """Round robin over this instance's share of the outcome partitions (p % instances == index).

        Why: the embedded broker (Tansu, in-memory store) lists every stored batch of a partition
        on each fetch that finds new data there, so its CPU grows with batches per partition x
        fetch rate x run length. One outcome partition, one batch per consumed batch, read every
        5 ms by the driver, saturated it after 2-4 minutes. More partitions divide that cost; a
        longer linger makes fewer, larger batches. Only this instance writes to its partitions.
        """
        parts, i = self._out_parts, self._out_next
        self._out_next = (i + 1) % len(parts)
        return parts[i]

    async def flush_commits(self, timeout_s: float = 10.0) -> None:
        """Wait until every processed batch has its outcomes delivered and its offsets committed."""
        try:
            await asyncio.wait_for(self._pending.join(), timeout_s)
        except TimeoutError:
            log.warning("pending offset commits not flushed in %.0fs: those records will be replayed", timeout_s)

    async def _committer(self) -> None:
        """Commits offsets off the critical path, in batch order, after the batch's outcomes are
        delivered (an outcome is never dropped by a commit). Coalesces whatever has queued up
        into one commit. Committing late is safe: a replay only yields duplicates."""
        while True:
            items = [await self._pending.get()]
            while not self._pending.empty():
                items.append(self._pending.get_nowait())
            t0 = time.perf_counter()
            offsets: dict[TopicPartition, int] = {}
            try:
                for futs, offs in items:
                    for f in futs:
                        try:
                            await f
                        except KafkaError as exc:
                            log.error("outcome not delivered (%s): its op will time out", exc)
                    offsets.update(offs)
                await self._commit(offsets)
            finally:
                for _ in items:
                    self._pending.task_done()
            m.STAGE_SECONDS.labels("commit").observe(time.perf_counter() - t0)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # a rebalance took the partitions: the new owner replays, processed_events dedupes
            log.warning("offset commit failed (%s): batch will be replayed as duplicates", exc)
