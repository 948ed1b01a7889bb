"""Broker checks before a run: reachable, topics present (or created), and where each partition ends.

librdkafka's admin client, driven from asyncio: its futures are wrapped, list_topics runs in a
thread. A closed port is found by a plain TCP connect first, so an unreachable broker is refused
at once instead of after librdkafka's metadata timeout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code


def _logger() -> logging.Logger:
    return logging.getLogger("edabench.librdkafka")


def bootstrap_hosts(bootstrap: str) -> list[tuple[str, int]]:
    """("host", port) of each `host:port` in a bootstrap list (a `SCHEME://` prefix is allowed)."""
    out = []
    for item in bootstrap.split(","):
        item = item.strip().rpartition("://")[2]
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"{item!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise ValueError("no host:port given")
    return out


async def probe(bootstrap: str, where: str, timeout_s: float = 5.0) -> None:
    """At least one bootstrap server accepts a TCP connection; raises ConnectionError naming `where`."""
    reasons = []
    for host, port in bootstrap_hosts(bootstrap):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError) as exc:
            reasons.append(f"{host}:{port}: " + ("timed out" if isinstance(exc, TimeoutError)
                                                  else exc.strerror or str(exc)))
            continue
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return
    raise ConnectionError(f"{where}: cannot connect to the Kafka broker at {bootstrap} ({'; '.join(reasons)})")


class Admin:
    """Topic metadata, creation and end offsets on one cluster."""

    def __init__(self, bootstrap: str, config: dict[str, Any] | None = None) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self._client = AdminClient({"bootstrap.servers": bootstrap, "logger": _logger(), **(config or {})})

    async def topics(self, where: str, timeout_s: float = 10.0) -> dict[str, int]:
        """Partition count of every topic; raises ConnectionError naming `where` when the broker does not answer."""
        from confluent_kafka import KafkaException

        try:
            meta = await asyncio.to_thread(self._client.list_topics, None, timeout_s)
        except KafkaException as exc:
            raise ConnectionError(f"{where}: the Kafka broker at {self.bootstrap} did not answer: "
                                  f"{exc.args[0].str() if exc.args else exc}") from None
        return {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None and t.partitions}

    async def create(self, topic: str, partitions: int, replication: int, where: str,
                     timeout_s: float = 30.0) -> bool:
        """Create `topic`; False when it already exists. Waits until the metadata lists it."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import NewTopic

        futures = self._client.create_topics([NewTopic(topic, partitions, replication)],
                                             operation_timeout=timeout_s, request_timeout=timeout_s)
        try:
            await asyncio.wrap_future(futures[topic])
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == TOPIC_ALREADY_EXISTS:
                return False
            raise RuntimeError(f"{where}: cannot create topic {topic!r} on {self.bootstrap}: {err.str()}") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while topic not in await self.topics(where):  # a real cluster propagates metadata asynchronously
            if loop.time() > deadline:
                raise RuntimeError(f"{where}: topic {topic!r} was created but the metadata does not list it")
            await asyncio.sleep(0.1)
        log.info("created topic %s with %d partition(s)", topic, partitions)
        return True

    async def end_offsets(self, topic: str, partitions: int, timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
        """The offset the next record of each partition will get, as the broker reports it."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        request = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
        futures = self._client.list_offsets(request, request_timeout=timeout_s)
        out = {}
        for tp, fut in futures.items():
            info = await asyncio.wrap_future(fut)
            out[(tp.topic, tp.partition)] = int(info.offset)
        return out
