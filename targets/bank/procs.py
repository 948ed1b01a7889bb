"""Start, watch, kill and stop the service's instance processes (one OS process per instance)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import aiohttp

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceNotReady(RuntimeError):
    """The service did not join the group and answer /health in time."""


class ServiceProcs:
    """`args` go on the command line (visible in `ps`); `env` holds what must not: the DSN."""

    def __init__(self, args: list[str], ports: list[int], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.ports = ports
        self.log_dir = log_dir
        self.env = dict(env or {})
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(ports)
        self._logs: list[IO[bytes] | None] = [None] * len(ports)

    def log_path(self, i: int) -> Path:
        return self.log_dir / f"bancaire-{i}.log"

    def spawn(self, i: int) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self._logs[i] is not None:
            self._logs[i].close()  # type: ignore[union-attr]
        out = open(self.log_path(i), "ab")  # kept open for the child's lifetime
        cmd = [
            sys.executable,
            "-m",
            "targets.bank.service",
            *self.args,
            "--instance-index",
            str(i),
            "--instance-count",
            str(len(self.ports)),
            "--api-port",
            str(self.ports[i]),
        ]
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.procs[i] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        self._logs[i] = out
        log.info("started bancaire[%d] pid %d", i, self.procs[i].pid)  # type: ignore[union-attr]

    def alive(self, i: int) -> bool:
        p = self.procs[i]
        return p is not None and p.poll() is None

    def _any_alive(self) -> bool:
        return any(p is not None and p.poll() is None for p in self.procs)

    def kill(self, i: int) -> None:
        """SIGKILL: no graceful shutdown, no offset commit, no group leave (the chaos case)."""
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            log.warning("killed bancaire[%d] pid %d", i, p.pid)

    def tail(self, i: int, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path(i).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    async def health(self, session: aiohttp.ClientSession, i: int) -> dict[str, object] | None:
        try:
            async with session.get(f"http://127.0.0.1:{self.ports[i]}/api/v1/health") as r:
                body = await r.json(content_type=None)
                return body if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def wait_ready(self, partitions: int, timeout_s: float, only: list[int] | None = None) -> None:
        """Until every running instance is healthy and the group's assignment covers all partitions."""
        which = list(range(len(self.ports))) if only is None else only
        deadline = time.monotonic() + timeout_s
        stable = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                for i in which:
                    if not self.alive(i):
                        raise ServiceNotReady(f"bancaire[{i}] exited:\n{self.tail(i)}")
                bodies = [await self.health(session, i) for i in range(len(self.ports)) if self.alive(i)]
                ok = all(b is not None for b in bodies) and all(self.alive(i) for i in which)
                assigned = sum(int(b["assigned_partitions"]) for b in bodies if b)  # type: ignore[call-overload]
                stable = stable + 1 if ok and assigned == partitions else 0
                if stable >= 3:
                    return
                await asyncio.sleep(0.2)
        raise ServiceNotReady(f"not ready after {timeout_s}s:\n{self.tail(which[0])}")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM everyone, wait, SIGKILL whatever is left; always closes the log files."""
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self._any_alive() and time.monotonic() < deadline:  # polling child pids
            await asyncio.sleep(0.05)
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is None:
                log.warning("bancaire[%d] ignored SIGTERM for %.0fs: SIGKILL", i, timeout_s)
                p.kill()
                p.wait()
        for f in self._logs:
            if f is not None:
                f.close()
        self._logs = [None] * len(self.ports)
