"""Produce bank events from gevent and wait for their outcome records (confluent-kafka).

Locust runs on gevent, so the producer is librdkafka's (its I/O runs in its own threads) and
one greenlet polls it and the outcomes consumer without blocking: delivery reports and
outcome records wake the waiting arrival's greenlet. The consumer is assigned every partition
of the outcomes topic at its current end (no consumer group: the embedded broker's group
support is not needed, and records of other processes are filtered by their origin key).
"""

from __future__ import annotations

import io
import itertools
import time
import uuid
from typing import Any

import fastavro
import gevent
import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from gevent.event import AsyncResult

from targets.bank.avro import frame, load_schema_text, parse
from targets.bank.topics import EVENT_TOPICS, H_OP_ID, H_ORIGIN, OUTCOMES

POLL_IDLE_S = 0.002


class Outcome:
    """What came back for one event: its status, reason, and when the service committed it."""

    __slots__ = ("processed_at_ns", "reason", "status")

    def __init__(self, status: str, reason: str | None, processed_at_ns: int | None) -> None:
        self.status = status
        self.reason = reason
        self.processed_at_ns = processed_at_ns


class BankPipeline:
    """One per Locust process: a producer, an outcomes reader, and the ops waiting for either."""

    def __init__(self, bootstrap: str, schema_ids: dict[str, int], tag: str) -> None:
        self.origin = f"locust-{uuid.uuid4().hex[:8]}-{tag}".encode()
        self._ids = schema_ids
        self._schemas = {event: parse(load_schema_text(event)) for event in schema_ids}
        self._seq = itertools.count(1)
        self.waiting: dict[str, AsyncResult] = {}
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "acks": 1,
                                  "linger.ms": 1})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": self.origin.decode(),
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 5})
        meta = self.consumer.list_topics(OUTCOMES, timeout=10)
        parts = sorted(meta.topics[OUTCOMES].partitions)
        # explicit end offsets, resolved now: an outcome written before a lazy "end" lookup would be lost
        tps = [TopicPartition(OUTCOMES, p, self.consumer.get_watermark_offsets(TopicPartition(OUTCOMES, p),
                                                                               timeout=10)[1]) for p in parts]
        self.consumer.assign(tps)
        self._poller = gevent.spawn(self._poll)

    def encode(self, payload: dict[str, Any]) -> bytes:
        raw = payload.get("raw")
        if raw is not None:
            return bytes(raw)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self._schemas[payload["event"]], payload["fields"])
        return frame(self._ids[payload["event"]], buf.getvalue())

    def send(self, payload: dict[str, Any]) -> tuple[str, AsyncResult, int]:
        """Produce one event; returns (op id, result to wait on, wall-clock ns of the produce)."""
        op_id = f"{self.origin.decode()}-{next(self._seq)}"
        result: AsyncResult = AsyncResult()
        self.waiting[op_id] = result

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None and op_id in self.waiting:
                self.waiting.pop(op_id).set_exception(KafkaException(err))

        sent_wall = time.time_ns()
        try:
            self.producer.produce(EVENT_TOPICS[payload["event"]], self.encode(payload), key=payload["key"].encode(),
                                  headers=[(H_OP_ID, op_id.encode()), (H_ORIGIN, self.origin)], on_delivery=delivered)
        except BaseException:
            self.waiting.pop(op_id, None)
            raise
        return op_id, result, sent_wall

    def forget(self, op_id: str) -> None:
        self.waiting.pop(op_id, None)

    def _poll(self) -> None:
        while True:
            self.producer.poll(0)
            msgs = self.consumer.consume(num_messages=1000, timeout=0)
            for msg in msgs:
                if msg.error() is None and msg.key() == self.origin:
                    self._handle(msg.value())
            if not msgs:
                gevent.sleep(POLL_IDLE_S)
            else:
                gevent.sleep(0)

    def _handle(self, value: bytes) -> None:
        outs = orjson.loads(value)
        for o in outs if isinstance(outs, list) else [outs]:
            result = self.waiting.pop(o.get("op_id") or "", None)
            if result is not None:
                processed = o.get("processed_at")
                result.set(Outcome(o["status"], o.get("reason"), int(processed) if processed else None))

    def close(self) -> None:
        self._poller.kill(block=False)
        self.producer.flush(5)
        self.consumer.close()
