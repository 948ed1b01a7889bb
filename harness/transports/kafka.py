"""Kafka on librdkafka (confluent-kafka), driven from asyncio without a thread per client.

Why librdkafka: on the embedded broker it produces 5-9x faster than aiokafka (measured in
docs/benchmarks.md), and a load generator must outrun the system it tests. aiokafka stays where
it serves: consumer groups (the bank service), since confluent-kafka's `subscribe()` was seen
to hang against the embedded broker while its `assign()` and its producer work.

`produce` never blocks: it hands the record to librdkafka's queue. Delivery reports and fetched
records are drained in batches by a poller the caller supervises (`run`), a few hundred
microseconds of work per millisecond at most. An op produced with an `op_id` is completed from
its delivery report: reports come back per partition in produce order, so each partition keeps a
FIFO of op ids and no per-record callback object is allocated.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

Delivered = Callable[[int, str | None], None]  # (op id, error kind or None)
POLL_IDLE_S = 0.001


def _quiet_logger() -> logging.Logger:
    """librdkafka's own log lines go to Python logging (served on poll), not to stderr."""
    return logging.getLogger("edabench.librdkafka")


class KafkaProducer:
    """A librdkafka producer; `on_delivered(op_id, error)` is called for every op produced with an id."""

    def __init__(self, bootstrap: str, on_delivered: Delivered | None = None, *,
                 on_acked: Callable[[list[int]], None] | None = None, acks: int | str = 1,
                 linger_ms: float = 5, compression: str | None = None, batch_bytes: int = 1_000_000,
                 queue_messages: int = 2_000_000, config: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Producer

        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": False,  # the embedded broker refuses InitProducerId
            "acks": acks,
            "linger.ms": linger_ms,
            "batch.size": batch_bytes,
            "queue.buffering.max.messages": queue_messages,
            "queue.buffering.max.kbytes": 1_048_576,
            "on_delivery": self._on_delivery,
            "logger": _quiet_logger(),
        }
        if compression:
            conf["compression.type"] = compression
        conf.update(config or {})
        self._producer = Producer(conf)
        self._on_delivered = on_delivered
        # acknowledged op ids, handed over in one call per poll (one call per op costs more than the ack)
        self._on_acked = on_acked
        self._topics: dict[str, tuple[int, int]] = {}  # topic -> (index of its first FIFO, partitions)
        self._fifos: list[list[int]] = []  # per (topic, partition): op ids in produce order (-1: no op)
        self._heads: list[int] = []  # per FIFO: where its oldest unreported op id is
        self._reports: list[int] = []  # the FIFO of each delivery report since the last hand-over
        self._report = self._reports.append
        self._errors: dict[int, str] = {}  # position in _reports -> error kind
        self._one_topic = True
        self._unowned = 0  # records produced without an op id, not yet reported
        self._rr = 0
        self.produced = 0
        self.failed = 0
        self.delivered = 0

    async def prepare(self, topics: Sequence[str], timeout_s: float = 30.0) -> dict[str, int]:
        """Learn the partition count of each topic (an op's partition is chosen here, so that its
        delivery report can be matched in order). Raises LookupError naming a missing topic."""
        meta = await asyncio.to_thread(self._producer.list_topics, None, timeout_s)
        for topic in topics:
            info = meta.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                raise LookupError(f"topic {topic!r} does not exist on the broker")
            if topic in self._topics:
                continue
            self._topics[topic] = (len(self._fifos), len(info.partitions))
            self._fifos += [[] for _ in info.partitions]
            self._heads += [0] * len(info.partitions)
        self._one_topic = len(self._topics) == 1
        return {t: n for t, (_, n) in self._topics.items()}

    def partitions(self, topic: str) -> int:
        return self._topics[topic][1]

    @property
    def pending(self) -> int:
        """Records produced and not yet reported delivered or failed."""
        return self.produced - self.delivered - self.failed - len(self._reports)

    def produce(self, topic: str, value: bytes | None, key: bytes | None = None, partition: int | None = None,
                headers: list[tuple[str, bytes]] | None = None, op_id: int = -1) -> None:
        """Enqueue one record to a topic `prepare` has seen. Raises BufferError when librdkafka's
        queue is full. Called once per op: kept to a few dict and list operations."""
        first, n = self._topics[topic]
        if partition is None:
            if key is not None:
                partition = zlib.crc32(key) % n
            else:
                self._rr += 1
                partition = self._rr % n
        if headers:
            self._producer.produce(topic, value, key, partition, headers=headers)
        else:
            self._producer.produce(topic, value, key, partition)
        self._fifos[first + partition].append(op_id)
        self.produced += 1
        if op_id < 0:
            self._unowned += 1

    def produce_batch(self, topic: str, values: Sequence[bytes], op_ids: Sequence[int],
                      partition: int | None = None) -> int:
        """Enqueue unkeyed records without headers, one per op, all to one partition (the next in
        turn unless given): the per-record work is librdkafka's call alone. Returns how many were
        queued; when librdkafka's queue fills up, the rest are not."""
        first, n = self._topics[topic]
        if partition is None:
            self._rr += 1
            partition = self._rr % n
        produce = self._producer.produce
        queued = len(values)
        try:
            for i, value in enumerate(values):  # noqa: B007 (read when a record is refused)
                produce(topic, value, None, partition)
        except BufferError:
            queued = i
        self._fifos[first + partition].extend(op_ids[:queued] if queued < len(op_ids) else op_ids)
        self.produced += queued
        return queued

    def _on_delivery(self, err: Any, msg: Any) -> None:
        # called by librdkafka for every record: only note which FIFO it belongs to
        if err is not None:
            self._errors[len(self._reports)] = f"produce_{err.name().lower()}"
        if self._one_topic:
            self._report(msg.partition())
        else:
            self._report(self._topics[msg.topic()][0] + msg.partition())

    def _hand_over(self) -> None:
        """Match the delivery reports served by the last poll to op ids: reports come back per
        partition in produce order, so each FIFO gives up as many op ids as it has reports."""
        reports = self._reports
        if not reports:
            return
        fifos, heads = self._fifos, self._heads
        acked: list[int] = []
        errors = self._errors
        if errors:
            failed = []
            for position, fifo_index in enumerate(reports):
                head = heads[fifo_index]
                op_id = fifos[fifo_index][head]
                heads[fifo_index] = head + 1
                error = errors.get(position)
                if error is None:
                    acked.append(op_id)
                elif op_id >= 0:
                    failed.append((op_id, error))
                else:
                    self._unowned -= 1
            self.failed += len(errors)
            self.delivered += len(reports) - len(errors)
            errors.clear()
        else:
            failed = None
            for fifo_index, count in Counter(reports).items():
                head = heads[fifo_index]
                fifo = fifos[fifo_index]
                acked += fifo[head:head + count]
                heads[fifo_index] = head + count
            self.delivered += len(reports)
        for fifo_index, head in enumerate(heads):  # keep each FIFO to what is still unreported
            if head > 4096 and head * 2 > len(fifos[fifo_index]):
                del fifos[fifo_index][:head]
                heads[fifo_index] = 0
        reports.clear()
        if self._unowned:
            owned = [op_id for op_id in acked if op_id >= 0]
            self._unowned -= len(acked) - len(owned)
            acked = owned
        if failed and self._on_delivered is not None:
            for op_id, error in failed:
                self._on_delivered(op_id, error)
        if not acked:
            return
        if self._on_acked is not None:
            self._on_acked(acked)
        elif self._on_delivered is not None:
            for op_id in acked:
                self._on_delivered(op_id, None)

    def poll(self) -> int:
        """Serve the delivery reports that are ready; returns how many."""
        served = int(self._producer.poll(0))
        self._hand_over()
        return served

    async def run(self, idle_s: float = POLL_IDLE_S) -> None:
        """Drain delivery reports for as long as the producer lives (supervise this task).

        An ack is booked when it is served here, so polls come every millisecond by default; a caller
        whose ops do not complete on the ack can poll less often (`idle_s`): at 500 events/s two 1 ms
        poll loops took half of a bank generator's CPU (py-spy)."""
        poll, hand_over = self._producer.poll, self._hand_over
        while True:
            served = poll(0)
            hand_over()
            await asyncio.sleep(0 if served >= 1000 else idle_s)

    async def flush(self, timeout_s: float = 10.0) -> int:
        """Wait until every record is delivered or failed; returns how many are still queued."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self._producer) and asyncio.get_running_loop().time() < deadline:
            self.poll()
            await asyncio.sleep(0.005)
        self.poll()
        return len(self._producer)

    async def close(self, timeout_s: float = 5.0) -> None:
        left = await self.flush(timeout_s)
        if left:
            log.warning("%d records not delivered when the producer closed", left)
            self._producer.purge()
            self._producer.poll(0)


class KafkaReader:
    """Reads the partitions of topics without a consumer group (assign), from the end or given offsets.

    `on_records(records)` gets each batch of librdkafka messages; an exception from it ends `run`,
    so a supervised reader never fails silently.
    """

    def __init__(self, bootstrap: str, topics: Sequence[str], on_records: Callable[[list[Any]], None], *,
                 fetch_wait_ms: int = 5, batch: int = 10_000, config: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Consumer

        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": "edabench-reader",  # required by the client; never joined (assign only)
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": fetch_wait_ms,
            "fetch.min.bytes": 1,
            "enable.partition.eof": False,
            "logger": _quiet_logger(),
        }
        conf.update(config or {})
        self._consumer = Consumer(conf)
        self.topics = list(topics)
        self.on_records = on_records
        self.batch = batch
        self.records = 0
        self.errors = 0
        self._closed = False

    async def assign(self, offsets: dict[tuple[str, int], int] | None = None, timeout_s: float = 30.0) -> None:
        """Assign every partition of the topics, at `offsets` where given, else at the current end."""
        from confluent_kafka import OFFSET_END, TopicPartition

        meta = await asyncio.to_thread(self._consumer.list_topics, None, timeout_s)
        tps = []
        for topic in self.topics:
            info = meta.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                raise LookupError(f"topic {topic!r} does not exist on the broker")
            for p in sorted(info.partitions):
                start = (offsets or {}).get((topic, p), OFFSET_END)
                tps.append(TopicPartition(topic, p, start))
        self._consumer.assign(tps)
        # resolve OFFSET_END now, so records produced from here on are read
        for tp in tps:
            await asyncio.to_thread(self._consumer.get_watermark_offsets, tp, timeout_s)

    async def run(self, idle_s: float = POLL_IDLE_S) -> None:
        """Read until cancelled or closed (supervise this task), polling every `idle_s` while fewer
        than a full batch wait: longer for a caller whose completion instants come in the records."""
        consume = self._consumer.consume
        while not self._closed:
            msgs = consume(self.batch, 0)
            if msgs:
                good = []
                for m in msgs:
                    if m.error() is None:
                        good.append(m)
                    else:
                        self.errors += 1
                        log.warning("reader: %s", m.error())
                if good:
                    self.records += len(good)
                    self.on_records(good)
                if len(msgs) >= self.batch:
                    await asyncio.sleep(0)
                    continue
            await asyncio.sleep(idle_s)

    async def end_offsets(self, timeout_s: float = 5.0) -> dict[tuple[str, int], int]:
        """The high watermark of every assigned partition, asked of the broker (off the event loop)."""
        def ask() -> dict[tuple[str, int], int]:
            out = {}
            for tp in self._consumer.assignment():
                _, high = self._consumer.get_watermark_offsets(tp, timeout_s, False)
                out[(tp.topic, tp.partition)] = high
            return out
        return await asyncio.to_thread(ask)

    def positions(self) -> dict[tuple[str, int], int]:
        return {(tp.topic, tp.partition): tp.offset for tp in self._consumer.position(self._consumer.assignment())}

    async def close(self) -> None:
        self._closed = True
        await asyncio.sleep(0)  # a run() between two polls sees it before the consumer goes
        await asyncio.to_thread(self._consumer.close)
