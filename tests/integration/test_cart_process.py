"""The cart service's processes never outlive whoever launched them: a launcher killed with
SIGKILL (no chance to clean up) takes the supervisor and every worker with it, and an orderly
stop leaves no PID behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from targets.cart.driver import service_args
from targets.cart.process import ServiceProcess, free_port
from targets.cart.testing import temp_database

ROOT = Path(__file__).resolve().parents[2]

LAUNCHER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from targets.cart.driver import service_args
    from targets.cart.process import ServiceProcess, free_port

    port = free_port()
    services = {"postgres": sys.argv[1], "redis": sys.argv[2]}
    proc = ServiceProcess(service_args({"workers": 2, "cache_prefix": "orphan-test:"}, services, port))
    proc.start()
    asyncio.run(proc.wait_healthy(f"http://127.0.0.1:{port}", 60))
    print(json.dumps(proc.pids()), flush=True)
    time.sleep(600)
    """
)


@pytest.fixture(scope="module")
def database(embedded_postgres: str) -> Iterator[str]:
    with temp_database(embedded_postgres) as dsn:
        yield dsn


def wait_gone(pids: list[int], timeout_s: float = 30.0) -> list[int]:
    """The PIDs still running after `timeout_s` (a liveness wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return alive


def test_a_sigkilled_launcher_leaves_no_service_process(database: str, embedded_redis: str) -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, database, embedded_redis], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert launcher.stdout is not None
        pids = json.loads(launcher.stdout.readline())
        assert len(pids) >= 3  # supervisor and two workers
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        assert wait_gone(pids) == []
    finally:
        if launcher.poll() is None:
            os.kill(launcher.pid, signal.SIGKILL)
            launcher.wait(10)


def test_stop_leaves_no_worker_behind(database: str, embedded_redis: str) -> None:
    port = free_port()
    proc = ServiceProcess(service_args({"workers": 2}, {"postgres": database, "redis": embedded_redis}, port))
    proc.start()
    try:
        asyncio.run(proc.wait_healthy(f"http://127.0.0.1:{port}", 60))
        pids = proc.pids()
    finally:
        proc.stop()
    assert len(pids) >= 3
    assert [p for p in pids if psutil.pid_exists(p)] == []
