"""Start, watch, kill and stop the service's instance processes (one OS process per instance).

Each instance runs in a session of its own, so a terminal's Ctrl-C (SIGINT to the foreground process
group) reaches only the harness, which then stops the instances in order. Each dies with the process
that spawned it (parent-death signal): a SIGKILLed harness orphans no instance. Stopping is by PID:
SIGTERM, wait, SIGKILL whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import aiohttp

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Loaded in the parent: a forked child must not load libraries between fork and exec.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> Callable[[], None]:
    """preexec_fn: the kernel sends `sig` when the parent dies; if it already has, take `sig` now.

    The kernel ties the signal to the *thread* that forked: spawn from the event loop's thread,
    never from a worker thread that may end before the child.
    """

    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), sig)

    return preexec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def describe_exit(code: int) -> str:
    """'exited with code 1' or 'was killed by SIGKILL' (Popen's negative return code)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ServiceNotReady(RuntimeError):
    """The service did not join the group and answer /health in time."""


class ServiceProcs:
    """`args` go on the command line (visible in `ps`); `env` holds what must not: the DSN.

    `down` holds the instances that are not meant to run (killed on purpose, or given up on):
    `exited()` does not report them.
    """

    def __init__(self, args: list[str], ports: list[int], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.ports = ports
        self.log_dir = log_dir
        self.env = dict(env or {})
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(ports)
        self._logs: list[IO[bytes] | None] = [None] * len(ports)
        self.down: set[int] = set()
        self.stopping = False
        #: what each instance runs, before its arguments
        self.command = [sys.executable, "-m", "targets.bank.service"]

    @staticmethod
    def name(i: int) -> str:
        return f"bancaire-{i}"

    def log_path(self, i: int) -> Path:
        return self.log_dir / f"{self.name(i)}.log"

    def spawn(self, i: int) -> int:
        """Start instance `i` (again), with the same arguments and environment; returns its pid."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        old = self.procs[i]
        if old is not None and old.poll() is None:
            raise RuntimeError(f"{self.name(i)} (pid {old.pid}) is still running")
        if self._logs[i] is not None:
            self._logs[i].close()  # type: ignore[union-attr]
        out = open(self.log_path(i), "ab")  # kept open for the child's lifetime
        cmd = [
            *self.command,
            *self.args,
            "--instance-index",
            str(i),
            "--instance-count",
            str(len(self.ports)),
            "--api-port",
            str(self.ports[i]),
        ]
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        p = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(os.getpid()),
        )
        self.procs[i] = p
        self._logs[i] = out
        self.down.discard(i)
        log.info("started %s pid %d", self.name(i), p.pid)
        return p.pid

    def pid(self, i: int) -> int | None:
        p = self.procs[i]
        return None if p is None else p.pid

    def alive(self, i: int) -> bool:
        p = self.procs[i]
        return p is not None and p.poll() is None

    def _any_alive(self) -> bool:
        return any(p is not None and p.poll() is None for p in self.procs)

    def exited(self) -> list[tuple[int, int, int]]:
        """(index, pid, return code) of every instance that ended unbidden: not during `stop`, not
        killed on purpose, not already given up on."""
        if self.stopping:
            return []
        out = []
        for i, p in enumerate(self.procs):
            if p is not None and i not in self.down and (code := p.poll()) is not None:
                out.append((i, p.pid, code))
        return out

    def give_up(self, i: int) -> None:
        """Instance `i` stays down: no longer reported by `exited()`."""
        self.down.add(i)

    def kill(self, i: int) -> None:
        """SIGKILL: no graceful shutdown, no offset commit, no group leave (the chaos case). The
        instance stays down, unreported, until `spawn(i)`. Waits for the kernel to reap it (at once
        after SIGKILL); async callers use `sigkill`."""
        p = self._sigkill(i)
        if p is not None:
            p.wait()

    async def sigkill(self, i: int) -> None:
        """`kill` without blocking the event loop."""
        p = self._sigkill(i)
        while p is not None and p.poll() is None:
            await asyncio.sleep(0.01)

    def _sigkill(self, i: int) -> subprocess.Popen[bytes] | None:
        self.down.add(i)
        p = self.procs[i]
        if p is None or p.poll() is not None:
            return None
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGKILL)
        log.warning("killed %s pid %d", self.name(i), p.pid)
        return p

    def tail(self, i: int, n: int = 20) -> str:
        """The last `n` lines of instance `i`'s log; reads at most its last 16 KiB, so a long run's
        log costs the caller's event loop no more than a short one's."""
        try:
            with self.log_path(i).open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
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
                        raise ServiceNotReady(f"{self.name(i)} exited:\n{self.tail(i)}")
                bodies = [await self.health(session, i) for i in range(len(self.ports)) if self.alive(i)]
                ok = all(b is not None for b in bodies) and all(self.alive(i) for i in which)
                assigned = sum(int(b["assigned_partitions"]) for b in bodies if b)  # type: ignore[call-overload]
                stable = stable + 1 if ok and assigned == partitions else 0
                if stable >= 3:
                    return
                await asyncio.sleep(0.2)
        raise ServiceNotReady(f"not ready after {timeout_s}s:\n{self.tail(which[0])}")

    async def stop(self, timeout_s: float = 10.0) -> list[str]:
        """SIGTERM every instance by PID, wait, SIGKILL whatever is left; always closes the log
        files. Returns a line for each instance that had to be killed."""
        self.stopping = True
        for p in self.procs:
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self._any_alive() and time.monotonic() < deadline:  # polling child pids
            await asyncio.sleep(0.05)
        killed = []
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is None:
                killed.append(f"{self.name(i)} (pid {p.pid}) ignored SIGTERM for {timeout_s:.0f}s: SIGKILL")
                log.warning("%s", killed[-1])
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
        reap_by = time.monotonic() + 5  # SIGKILL is not refused: reaped within moments
        while self._any_alive() and time.monotonic() < reap_by:
            await asyncio.sleep(0.01)
        for f in self._logs:
            if f is not None:
                f.close()
        self._logs = [None] * len(self.ports)
        return killed
