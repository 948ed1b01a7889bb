"""Matching librdkafka's delivery reports to op ids (harness/transports/kafka.py).

Reports come back per partition in produce order, so each partition's FIFO of op ids gives up as
many ids as it got reports. librdkafka is replaced by a stand-in that takes records and hands
back reports in the order a test chooses: the matching is the logic under test, the real client
is covered by the integration tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from harness.transports.kafka import KafkaProducer


class Msg:
    def __init__(self, topic: str, partition: int) -> None:
        self._t, self._p = topic, partition

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p


class Err:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


@dataclass
class StandIn:
    partitions: dict[str, int]
    queued: list[tuple[str, int]] = field(default_factory=list)
    full_after: int | None = None

    def list_topics(self, topic: Any, timeout: float) -> Any:
        return SimpleNamespace(topics={t: SimpleNamespace(error=None, partitions=dict.fromkeys(range(n)))
                                       for t, n in self.partitions.items()})

    def produce(self, topic: str, value: Any, key: Any = None, partition: int = -1, **_: Any) -> None:
        if self.full_after is not None and len(self.queued) >= self.full_after:
            raise BufferError("queue full")
        self.queued.append((topic, partition))

    def poll(self, timeout: float) -> int:
        return 0


class Seen:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.failed: list[tuple[int, str | None]] = []

    def on_acked(self, ids: list[int]) -> None:
        self.acked += ids

    def on_delivered(self, op_id: int, error: str | None) -> None:
        self.failed.append((op_id, error))


def producer(partitions: dict[str, int]) -> tuple[KafkaProducer, StandIn, Seen]:
    seen = Seen()
    kp = KafkaProducer("127.0.0.1:1", seen.on_delivered, on_acked=seen.on_acked)
    stand_in = StandIn(partitions)
    kp._producer = stand_in  # type: ignore[assignment]
    asyncio.run(kp.prepare(list(partitions)))
    return kp, stand_in, seen


def report(kp: KafkaProducer, topic: str, partition: int, error: str | None = None) -> None:
    kp._on_delivery(Err(error) if error else None, Msg(topic, partition))


def test_acks_from_two_partitions_in_any_interleaving_give_each_op_id_once() -> None:
    kp, _, seen = producer({"t": 2})
    for op_id in range(6):
        kp.produce("t", b"v", partition=op_id % 2, op_id=op_id)  # 0, 2, 4 to p0; 1, 3, 5 to p1
    for p in (1, 1, 0, 1, 0, 0):
        report(kp, "t", p)
    kp.poll()
    assert sorted(seen.acked) == [0, 1, 2, 3, 4, 5]
    assert [i for i in seen.acked if i % 2] == [1, 3, 5], "each partition's ids in produce order"
    assert (kp.delivered, kp.pending) == (6, 0)


def test_a_failed_record_between_two_acked_ones_fails_its_own_op() -> None:
    kp, _, seen = producer({"t": 1})
    for op_id in (10, 11, 12):
        kp.produce("t", b"v", op_id=op_id)
    report(kp, "t", 0)
    report(kp, "t", 0, "MSG_TIMED_OUT")
    report(kp, "t", 0)
    kp.poll()
    assert (seen.acked, seen.failed) == ([10, 12], [(11, "produce_msg_timed_out")])
    assert (kp.delivered, kp.failed) == (2, 1)


def test_records_produced_without_an_op_id_are_not_reported() -> None:
    kp, _, seen = producer({"t": 1})
    kp.produce("t", b"warm-up")
    kp.produce("t", b"v", op_id=7)
    report(kp, "t", 0)
    report(kp, "t", 0)
    kp.poll()
    assert (seen.acked, seen.failed) == ([7], [])


def test_each_topic_keeps_its_own_fifos() -> None:
    kp, _, seen = producer({"a": 1, "b": 1})
    kp.produce("a", b"v", op_id=1)
    kp.produce("b", b"v", op_id=2)
    report(kp, "b", 0)
    kp.poll()
    assert seen.acked == [2]
    report(kp, "a", 0)
    kp.poll()
    assert seen.acked == [2, 1]


def test_a_batch_goes_to_one_partition_and_the_next_batch_to_the_next() -> None:
    kp, stand_in, seen = producer({"t": 2})
    assert kp.produce_batch("t", [b"v"] * 3, [0, 1, 2]) == 3
    assert kp.produce_batch("t", [b"v"] * 2, [3, 4]) == 2
    first, second = {p for _, p in stand_in.queued[:3]}, {p for _, p in stand_in.queued[3:]}
    assert len(first) == len(second) == 1 and first != second
    for _, p in stand_in.queued:
        report(kp, "t", p)
    kp.poll()
    assert sorted(seen.acked) == [0, 1, 2, 3, 4]


def test_a_batch_cut_short_by_a_full_queue_says_how_many_were_queued() -> None:
    kp, stand_in, seen = producer({"t": 1})
    stand_in.full_after = 2
    assert kp.produce_batch("t", [b"v"] * 5, [0, 1, 2, 3, 4]) == 2
    report(kp, "t", 0)
    report(kp, "t", 0)
    kp.poll()
    assert seen.acked == [0, 1], "only the queued ops wait for a report"
    assert kp.pending == 0


def test_a_topic_not_prepared_is_refused() -> None:
    kp, _, _ = producer({"t": 1})
    with pytest.raises(KeyError):
        kp.produce("other", b"v", op_id=1)
