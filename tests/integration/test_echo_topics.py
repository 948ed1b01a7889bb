"""The echo target starts every run on empty topics of the embedded broker."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from targets.echo.driver import _fresh_topics
from targets.echo.server import REPLIES_TOPIC, REQUESTS_TOPIC


async def _end_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in (REQUESTS_TOPIC, REPLIES_TOPIC) for p in range(3)]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def test_records_of_an_earlier_run_are_gone_when_the_next_run_starts(embedded_kafka: str) -> None:
    await _fresh_topics(embedded_kafka, 3)
    producer = AIOKafkaProducer(bootstrap_servers=embedded_kafka)
    await producer.start()
    try:
        for i in range(30):
            await producer.send_and_wait(REQUESTS_TOPIC, b"x", partition=i % 3)
    finally:
        await producer.stop()
    assert sum((await _end_offsets(embedded_kafka)).values()) == 30

    await _fresh_topics(embedded_kafka, 3)

    assert set((await _end_offsets(embedded_kafka)).values()) == {0}
