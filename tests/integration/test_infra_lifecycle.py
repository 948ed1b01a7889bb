"""Crash safety: servers die with a killed parent, and the registry cleans what a crash left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from infra import registry
from infra.ports import free_port
from infra.redis import redis_server_binary

pytestmark = pytest.mark.usefixtures("infra_state_dir")

CHILD = """
import asyncio, json, sys
from pathlib import Path
from infra.stack import Stack

async def main():
    stack = Stack(needs={"postgres", "redis"}, run_dir=Path(sys.argv[1]), use_env=False, reuse=False)
    await stack.start()
    print(json.dumps(stack.pids), flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
            return True
        time.sleep(0.05)
    return False


def _kill_if_ours(pids: list[int]) -> None:
    for pid in pids:
        entry = registry.load(pid)
        if entry is not None:
            registry.terminate(entry, 5.0, entry.stop_signal)
            registry.remove_dirs(entry)
            registry.unregister(pid)


def test_servers_die_with_a_killed_parent(run_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run_dir)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    pids: list[int] = []
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        pids = list(json.loads(line).values())
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        child.send_signal(signal.SIGKILL)  # no cleanup code runs: only the kernel's parent-death signal
        child.wait(10)
        assert _wait_gone(pids, 15), "servers survived their parent"
        # Their registry entries are now stale; the next run forgets them and their data dirs.
        cleaned = registry.clean_stale()
        assert {e.pid for e in cleaned} == set(pids)
        assert registry.entries() == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        _kill_if_ours(pids)


def _wait_exec(pid: int, exe: str) -> None:
    """Block until the child runs `exe`: before exec its command line is still the forking Python's."""
    deadline = time.monotonic() + 10
    while Path(psutil.Process(pid).cmdline()[0].split()[0]).name != Path(exe).name:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _dead_owner() -> tuple[int, float]:
    """Pid and start time of a process that has exited: the owner of an orphan."""
    proc = psutil.Popen([sys.executable, "-c", "pass"])
    created = proc.create_time()
    proc.wait()
    return proc.pid, created


def test_stale_orphan_is_stopped_and_live_owner_is_respected(tmp_path: Path) -> None:
    argvs = [
        [str(redis_server_binary()), "--port", str(free_port()), "--bind", "127.0.0.1", "--save", ""] for _ in range(2)
    ]
    servers = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path) for argv in argvs
    ]
    try:
        for server in servers:
            _wait_exec(server.pid, argvs[0][0])
        owner_pid, owner_created = _dead_owner()
        orphan, kept = servers
        leftover_dir = tmp_path / "leftover-data"
        leftover_dir.mkdir()
        registry.register(
            registry.Entry(
                name="redis",
                pid=orphan.pid,
                create_time=psutil.Process(orphan.pid).create_time(),
                cmdline=argvs[0],
                owner_pid=owner_pid,
                owner_create_time=owner_created,
                cleanup_dirs=[str(leftover_dir)],
            )
        )
        me = psutil.Process(os.getpid())
        registry.register(
            registry.Entry(
                name="redis",
                pid=kept.pid,
                create_time=psutil.Process(kept.pid).create_time(),
                cmdline=argvs[1],
                owner_pid=me.pid,
                owner_create_time=me.create_time(),
            )
        )
        cleaned = registry.clean_stale()
        assert [e.pid for e in cleaned] == [orphan.pid]
        assert orphan.wait(10) is not None
        assert not leftover_dir.exists()
        assert kept.poll() is None, "a server whose owner lives must not be touched"
        assert [e.pid for e in registry.entries()] == [kept.pid]
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
                server.wait(10)


def test_recycled_pid_is_never_killed() -> None:
    """An entry whose pid now belongs to another program (other start time/cmdline) is only forgotten."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner_pid, owner_created = _dead_owner()
        registry.register(
            registry.Entry(
                name="redis",
                pid=sleeper.pid,
                create_time=psutil.Process(sleeper.pid).create_time() - 100,
                cmdline=["/somewhere/redis-server", "--port", "1"],
                owner_pid=owner_pid,
                owner_create_time=owner_created,
            )
        )
        registry.clean_stale()
        assert sleeper.poll() is None
        assert registry.entries() == []
    finally:
        sleeper.kill()
        sleeper.wait()


CTRL_C_CHILD = """
import asyncio, json, sys
from pathlib import Path
from infra.stack import Stack

async def main():
    async with Stack(needs={"postgres", "redis", "kafka"}, run_dir=Path(sys.argv[1]), use_env=False,
                     reuse=False) as stack:
        print(json.dumps(stack.pids), flush=True)
        await asyncio.sleep(120)

asyncio.run(main())
"""


def test_ctrl_c_stops_servers_in_order(run_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD, str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        assert child.stdout is not None
        pids = list(json.loads(child.stdout.readline()).values())
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
        assert "KeyboardInterrupt" in err
        assert _wait_gone(pids, 5)
        assert registry.entries() == []
        # Orderly shutdowns, not kills: each server logged its own.
        assert "fast shutdown request" in (run_dir / "logs" / "postgres.log").read_text()
        assert "User requested shutdown" in (run_dir / "logs" / "redis.log").read_text()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        _kill_if_ours(pids)
