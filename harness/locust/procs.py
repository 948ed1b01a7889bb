"""Locust's master and local worker processes, started and stopped by PID.

Locust runs in its own processes because it monkey-patches the standard library with
gevent at import; the command that starts services and the target stays on asyncio. They run
in a session of their own: a Ctrl-C at the terminal reaches the command only, which asks the
master to stop (the master then collects the books and writes the results before it quits).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STOP_TIMEOUT_S = 15.0
WORKER_GRACE_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocustPlan:
    """Command lines of one Locust run; `master_args` and `worker_args` follow `locust -f FILE`."""

    locustfile: Path
    master_args: list[str]
    workers: int
    worker_args: list[str]
    env: dict[str, str]
    log_dir: Path


@dataclass
class LocustProcesses:
    plan: LocustPlan
    master: asyncio.subprocess.Process | None = None
    workers: list[asyncio.subprocess.Process] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def _cmd(self, args: list[str]) -> list[str]:
        return [sys.executable, "-m", "locust", "-f", str(self.plan.locustfile), *args]

    async def _spawn(self, args: list[str], log_name: str) -> asyncio.subprocess.Process:
        log = await asyncio.to_thread(open, self.plan.log_dir / log_name, "ab")
        self._logs.append(log)
        return await asyncio.create_subprocess_exec(
            *self._cmd(args), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            env={**os.environ, **self.plan.env}, start_new_session=True,
        )

    async def start(self) -> None:
        self.master = await self._spawn(self.plan.master_args, "locust-master.log")
        for i in range(self.plan.workers):
            self.workers.append(await self._spawn(self.plan.worker_args, f"locust-worker-{i}.log"))

    @property
    def pids(self) -> dict[str, int]:
        out = {"locust-master": self.master.pid} if self.master is not None else {}
        out.update({f"locust-worker-{i}": p.pid for i, p in enumerate(self.workers)})
        return out

    async def wait_master(self) -> int:
        assert self.master is not None
        return await self.master.wait()

    def interrupt(self) -> None:
        """Ask the master to stop (Locust writes what it has on SIGTERM)."""
        if self.master is not None and self.master.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.master.send_signal(signal.SIGTERM)

    async def stop(self) -> None:
        """Stop every process this object started (master first, so workers get its quit), by PID."""
        if self.master is not None:
            await _stop_one(self.master)
        if self.workers:  # after the master's quit, workers leave on their own in a moment
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(w.wait() for w in self.workers)), WORKER_GRACE_S)
        for proc in self.workers:
            await _stop_one(proc)
        for log in self._logs:
            log.close()
        self._logs.clear()


async def _stop_one(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
