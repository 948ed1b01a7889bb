"""Kafka -> WebSocket: read the bank's event topics, decode each record once, hand it to the hub.

aiokafka with `assign()` and no consumer group: every gateway instance sees every event (a hub
is a fan-out, not a share of the work), nothing is committed, and the reader starts at the
topics' true end (`topics.end_offsets`: the embedded broker under-reports it), so a gateway
streams what happens from its start on. A natively async client also gives backpressure for
free: the next fetch is not asked for until the hub has queued the last one.

Records of a topic nobody is subscribed to are counted and skipped undecoded. A record that
does not decode (the pipeline sends those to its DLQ) is counted by reason and not streamed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from targets.bank.avro import DecodeError, Decoder
from targets.bank.gateway.hub import Hub, event_message
from targets.bank.topics import EVENT_TOPICS, H_OP_ID, H_ORIGIN, Names, end_offsets, input_partitions

log = logging.getLogger(__name__)

#: records queued per slice before the loop is given back to the writers: a client's queue grows
#: by at most this much between two chances to drain it, so it must stay well below the queue limit
SLICE = 64


def public_topics(names: Names) -> dict[str, str]:
    """Namespaced topic -> the seed's name, which is what clients subscribe to (a UI does not
    care which run's namespace the gateway streams)."""
    return {names.events[event]: seed for event, seed in EVENT_TOPICS.items()}


class KafkaStreamer:
    def __init__(self, bootstrap: str, names: Names, hub: Hub, decoder: Decoder, *, fetch_wait_ms: int = 5,
                 max_records: int = 2000) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.hub = hub
        self.decoder = decoder
        self.fetch_wait_ms = fetch_wait_ms
        self.max_records = max_records
        self.public = public_topics(names)
        self.state = "starting"
        self.partitions = 0
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._next: dict[TopicPartition, int] = {}

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, "partitions": self.partitions, "lag": self.lag()}

    def lag(self) -> int | None:
        """Records of the event topics not streamed yet (from the last fetch's high watermarks)."""
        c = self._consumer
        if c is None or not self._next:
            return None
        lag = 0
        for tp, nxt in self._next.items():
            hw = c.highwater(tp)
            if hw is not None:
                lag += max(0, hw - nxt)
        return lag

    async def run(self) -> None:
        """Stream until cancelled (the server supervises this task)."""
        tps = await self._wait_for_topics()
        consumer = self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.fetch_wait_ms,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            ends = await end_offsets(self.bootstrap, self.names)
            for tp in tps:
                off = ends.get((tp.topic, tp.partition))
                if off is not None:
                    consumer.seek(tp, off)
                    self._next[tp] = off
            self.partitions = len(tps)
            self.state = "streaming"
            self.ready.set()
            log.info("streaming %d partitions of %s", len(tps), sorted(self.public))
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
                if batch:
                    await self.publish(batch)
        finally:
            self.state = "stopped"
            self._consumer = None
            await consumer.stop()

    async def _wait_for_topics(self) -> list[TopicPartition]:
        """Until every event topic of the namespace exists (the pipeline may start after the gateway)."""
        delay = 0.2
        while True:
            try:
                tps = await input_partitions(self.bootstrap, self.names)
                missing = set(self.names.inputs) - {tp.topic for tp in tps}
                if not missing:
                    return tps
                self.state = f"waiting for topics {sorted(missing)}"
            except Exception as exc:  # the broker is not up yet, or away
                self.state = f"kafka unreachable: {type(exc).__name__}"
            log.info("%s", self.state)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def publish(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Decode the records of subscribed topics and queue them for their subscribers."""
        hub = self.hub
        stats = hub.stats
        todo: list[tuple[str, list[Any]]] = []
        for tp, recs in batch.items():
            if not recs:
                continue
            self._next[tp] = recs[-1].offset + 1
            public = self.public[tp.topic]
            stats.records[public] = stats.records.get(public, 0) + len(recs)
            if hub.subscribers.get(public):
                todo.append((public, recs))
        if not todo:
            return
        ids = self.decoder.unknown_ids([r.value for _, recs in todo for r in recs])
        if ids:
            await self._resolve(ids)
        decode = self.decoder.decode
        n = 0
        for public, recs in todo:
            for r in recs:
                try:
                    _, payload = decode(r.value)
                except DecodeError as exc:
                    stats.undecodable[exc.reason] = stats.undecodable.get(exc.reason, 0) + 1
                    continue
                op_id = origin = None
                for key, value in r.headers:
                    if key == H_OP_ID:
                        op_id = value.decode("utf-8", "replace")
                    elif key == H_ORIGIN:
                        origin = value.decode("utf-8", "replace")
                hub.broadcast_to_topic(public, event_message(public, payload, r.timestamp, op_id, origin))
                n += 1
                if n % SLICE == 0:
                    await asyncio.sleep(0)  # let the writers drain before queueing more

    async def _resolve(self, ids: set[int]) -> None:
        """Schema ids from the registry; an outage is waited out (the batch is kept, not skipped)."""
        delay = 0.1
        while True:
            try:
                await self.decoder.resolve(ids)
                return
            except Exception as exc:
                log.warning("schema registry unavailable (%s): retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
