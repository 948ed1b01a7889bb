"""The service's command line (DSN, namespace, what children see, the group session) and where its
outcome records go."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from targets.bank.api import Status
from targets.bank.apply import APPLIED, Decision
from targets.bank.consumer import BankConsumer, Config
from targets.bank.service import child_argv, parse_args
from targets.bank.topics import Names


def test_the_dsn_comes_from_the_environment_when_not_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDABENCH_POSTGRES_DSN", "postgresql://u:secret@h/db")
    assert parse_args(["--kafka", "k:9092"]).postgres == "postgresql://u:secret@h/db"


def test_without_any_dsn_the_service_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDABENCH_POSTGRES_DSN", raising=False)
    with pytest.raises(SystemExit) as exc:
        parse_args(["--kafka", "k:9092"])
    assert exc.value.code == 2


def test_children_of_a_supervisor_get_no_dsn_and_no_per_instance_flags_in_argv() -> None:
    argv = [
        "--kafka",
        "k",
        "--postgres",
        "postgresql://u:secret@h/db",
        "--instances",
        "2",
        "--api-port=80",
        "--group",
        "g",
    ]
    assert child_argv(argv) == ["--kafka", "k", "--group", "g"]
    assert child_argv(["--postgres=postgresql://u:secret@h/db", "--kafka", "k"]) == ["--kafka", "k"]


async def test_a_dead_member_is_dropped_after_a_3_s_session_with_heartbeats_every_second() -> None:
    args = parse_args(["--kafka", "127.0.0.1:1", "--postgres", "postgresql://h/db"])
    cfg = Config(kafka=args.kafka, session_timeout_ms=args.session_timeout_ms)
    consumer = BankConsumer(cfg, None, None, Status(0))  # type: ignore[arg-type]
    kafka = consumer.consumer
    assert (kafka._session_timeout_ms, kafka._heartbeat_interval_ms) == (3000, 1000)
    await consumer.consumer.stop()  # built, never started: nothing to close but the handles
    await consumer.producer.stop()


def test_without_a_namespace_the_service_uses_the_seeds_names_and_group() -> None:
    args = parse_args(["--kafka", "k", "--postgres", "postgresql://h/db"])
    assert (args.names, args.group) == (Names(""), "bancaire")


def test_a_namespace_gives_the_service_its_topics_schema_and_group() -> None:
    args = parse_args(["--kafka", "k", "--postgres", "postgresql://h/db", "--namespace", "run-7"])
    assert (args.names, args.names.schema, args.group) == (Names("run-7"), "bancaire_run_7", "run-7.bancaire")


def test_a_malformed_namespace_is_refused_on_the_command_line() -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--kafka", "k", "--postgres", "postgresql://h/db", "--namespace", "Run_7"])
    assert exc.value.code == 2


def test_children_of_a_supervisor_keep_the_namespace_and_the_outcome_linger() -> None:
    argv = ["--kafka", "k", "--namespace", "ns", "--outcome-linger-ms", "20", "--instances", "2"]
    assert child_argv(argv) == ["--kafka", "k", "--namespace", "ns", "--outcome-linger-ms", "20"]


class _Producer:
    """Records where outcome records go; knows the partition counts of the run's topics."""

    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions
        self.sent: list[tuple[str, int]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions[topic]))

    async def send(self, topic: str, value: bytes, key: bytes, partition: int, **_: Any) -> asyncio.Future[None]:
        self.sent.append((topic, partition))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def _publish_batches(instance: int, instances: int, batches: int) -> list[tuple[str, int]]:
    names = Names("ns")
    cfg = Config(kafka="127.0.0.1:1", instance=instance, instances=instances, names=names, outcome_linger_ms=20)
    consumer = BankConsumer(cfg, None, None, Status(instance))  # type: ignore[arg-type]
    assert consumer.producer._message_accumulator._linger_time == 0.02  # the outcome producer lingers as configured
    await consumer.consumer.stop()  # built, never started: nothing to close but the handles
    await consumer.producer.stop()
    fake = _Producer({names.outcomes: 6, names.dlq: 3})
    consumer.producer = fake  # type: ignore[assignment]
    await consumer.plan_partitions()
    record = SimpleNamespace(headers=[("edabench-origin", b"run/0"), ("edabench-op-id", b"1")])
    for _ in range(batches):  # one consumed batch of one event: one outcome record
        await consumer._publish([record], [("DepotEffectue", {"event_id": "e"})], [0], [Decision(APPLIED)], 0)
    return fake.sent


async def test_an_instances_outcome_records_go_round_robin_over_its_own_outcome_partitions() -> None:
    sent = await _publish_batches(instance=1, instances=2, batches=6)
    assert sent == [("ns.bancaire.outcomes", p) for p in (1, 3, 5, 1, 3, 5)]


async def test_a_single_instance_spreads_its_outcome_records_over_every_outcome_partition() -> None:
    sent = await _publish_batches(instance=0, instances=1, batches=6)
    assert sorted(p for _, p in sent) == [0, 1, 2, 3, 4, 5]
