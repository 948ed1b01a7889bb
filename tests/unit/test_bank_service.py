"""The service's command line: where the DSN comes from, what children see, the group session."""

from __future__ import annotations

import pytest

from targets.bank.api import Status
from targets.bank.consumer import BankConsumer, Config
from targets.bank.service import child_argv, parse_args


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
