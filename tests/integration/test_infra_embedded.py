"""Each embedded server starts, answers a real round trip, logs to the run dir and leaves nothing behind."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psutil
import pytest

from infra import process, registry
from infra.errors import StackError
from infra.stack import Stack

pytestmark = pytest.mark.usefixtures("infra_state_dir")


def _gone(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE or proc.create_time() != create_time
    except psutil.NoSuchProcess:
        return True


async def _kafka_round_trip(bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait("infra-test", b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer("infra-test", bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 15)
        assert msg.value == b"hello"
    finally:
        await consumer.stop()


async def _postgres_round_trip(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        await conn.execute("INSERT INTO t VALUES (1, 'x')")
        assert await conn.fetchval("SELECT v FROM t WHERE id = 1") == "x"
    finally:
        await conn.close()


async def _redis_round_trip(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


ROUND_TRIPS = {"kafka": _kafka_round_trip, "postgres": _postgres_round_trip, "redis": _redis_round_trip}
LOGS = {"kafka": "kafka.log", "postgres": "postgres.log", "redis": "redis.log"}
PROCS = {"kafka": "tansu", "postgres": "postgres", "redis": "redis"}


@pytest.mark.parametrize("service", ["kafka", "postgres", "redis"])
async def test_embedded_service_round_trip_log_and_clean_stop(service: str, run_dir: Path) -> None:
    stack = Stack(needs={service}, run_dir=run_dir, use_env=False, reuse=False)
    async with stack:
        assert set(stack.urls) == {service}
        assert stack.embedded == stack.started == {service}
        pid = stack.pids[PROCS[service]]
        proc = psutil.Process(pid)
        created = proc.create_time()
        workers = [(c.pid, c.create_time()) for c in proc.children(recursive=True)]
        dirs = [Path(d) for d in stack.processes[PROCS[service]].cleanup_dirs]
        assert registry.load(pid) is not None
        await ROUND_TRIPS[service](stack.urls[service])
    assert _gone(pid, created)
    assert all(_gone(p, c) for p, c in workers)
    assert registry.load(pid) is None
    assert not [d for d in dirs if d.exists()], "data directory left behind"
    log = run_dir / "logs" / LOGS[service]
    assert log.stat().st_size > 0


async def test_all_three_start_concurrently(run_dir: Path) -> None:
    async with Stack(run_dir=run_dir, use_env=False, reuse=False) as stack:
        assert set(stack.urls) == {"kafka", "postgres", "redis"}
        assert set(stack.pids) == {"tansu", "postgres", "redis"}
        pids = dict(stack.pids)
    assert not any(psutil.pid_exists(p) for p in pids.values())


async def test_postgres_runs_unprivileged_on_loopback(run_dir: Path) -> None:
    async with Stack(needs={"postgres"}, run_dir=run_dir, use_env=False, reuse=False) as stack:
        proc = psutil.Process(stack.pids["postgres"])
        assert proc.uids().real != 0
        ports = {c.laddr for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        assert {addr.ip for addr in ports} == {"127.0.0.1"}
        assert not any(c.laddr for c in proc.net_connections(kind="unix"))


async def test_exit_before_ready_quotes_log_tail(run_dir: Path) -> None:
    from infra.redis import redis_server_binary

    def make(port: int) -> tuple[process.ManagedProcess, str]:
        argv = [str(redis_server_binary()), "--port", str(port), "--no-such-directive", "yes"]
        return process.ManagedProcess("redis", argv, run_dir / "logs" / "redis.log"), f"redis://x:{port}"

    from infra.redis import probe

    with pytest.raises(StackError) as err:
        await process.launch(make, probe, timeout_s=10)
    text = str(err.value)
    assert "exited with code" in text
    assert "no-such-directive" in text  # quoted from redis-server's own complaint in the log


async def test_readiness_timeout_quotes_log_tail_and_stops_process(run_dir: Path) -> None:
    code = "import sys, time; print('silent-server-marker', flush=True); time.sleep(120)"
    spawned: list[process.ManagedProcess] = []

    def make(port: int) -> tuple[process.ManagedProcess, str]:
        proc = process.ManagedProcess("silent", [sys.executable, "-c", code], run_dir / "logs" / "silent.log")
        spawned.append(proc)
        return proc, f"redis://127.0.0.1:{port}/0"

    from infra.redis import probe

    with pytest.raises(StackError) as err:
        await process.launch(make, probe, timeout_s=1.0)
    text = str(err.value)
    assert "not ready within 1s" in text
    assert "silent-server-marker" in text
    assert str(run_dir / "logs" / "silent.log") in text
    assert len(spawned) == 1 and not spawned[0].alive


@pytest.mark.parametrize("delay", [0.01, 0.1, 0.3])
async def test_cancelled_start_leaves_no_process(run_dir: Path, delay: float) -> None:
    stack = Stack(needs={"kafka", "postgres", "redis"}, run_dir=run_dir, use_env=False, reuse=False)
    task = asyncio.create_task(stack.start())
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stack.processes == {}
    assert registry.entries() == []
    # An initdb already running in its thread finishes, then its directory is removed.
    for _ in range(100):
        if not _postgres_data_dirs(run_dir):
            break
        await asyncio.sleep(0.05)
    assert _postgres_data_dirs(run_dir) == []


def _postgres_data_dirs(run_dir: Path) -> list[Path]:
    from infra.postgres import _system_user, data_parent, data_prefix

    user = _system_user()
    return list(data_parent(run_dir.resolve(), user).glob(data_prefix(run_dir.resolve(), user) + "*"))
