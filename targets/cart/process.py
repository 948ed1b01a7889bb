"""Start and stop the service as a child process, and wait until it is healthy.

The service runs in its own session (a terminal's Ctrl-C reaches only its launcher), dies
with its launcher (parent-death signal: a SIGKILLed harness orphans no service), and its
workers die with it (see `die_with_parent`). Stopping is by PID: the supervisor gets SIGTERM
and stops its workers; whatever of them is left after the timeout is killed one PID at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil

SUPERVISOR_ENV = "CART_SERVICE_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1
# Loaded in the parent: a forked child must not load libraries between fork and exec.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with(parent_pid: int, sig: int) -> None:
    """Ask the kernel for `sig` when our parent dies; if it already has, take `sig` now."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def _preexec(parent_pid: int) -> Callable[[], None]:
    return lambda: _die_with(parent_pid, signal.SIGTERM)


def die_with_parent() -> None:
    """In a server worker: die with the service's supervisor. A no-op in the supervisor itself
    (one worker runs in it), whose own parent-death signal was set when it was launched."""
    supervisor = int(os.environ.get(SUPERVISOR_ENV, "0"))
    if supervisor and supervisor != os.getpid():
        _die_with(supervisor, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """`python -m targets.cart.service ...` in its own session, so stop() reaches its workers."""

    def __init__(self, args: list[str], log_path: Path | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    def start(self) -> None:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")
        out = self._log if self._log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "targets.cart.service", *self.args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_preexec(os.getpid()),
        )

    def log_tail(self, n: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    async def wait_healthy(self, base_url: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"cart service exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status = await asyncio.to_thread(_get_status, base_url + "/health")
                if status == 200:
                    return
                last = f"health answered {status}"
            except OSError as exc:
                last = str(exc)
            await asyncio.sleep(0.1)
        raise TimeoutError(f"cart service not healthy after {timeout_s}s ({last}):\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """The supervisor and its workers (the server's own processes, found from its PID)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            return [self.proc.pid, *(p.pid for p in psutil.Process(self.proc.pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the supervisor (it stops its workers), SIGKILL by PID whatever is left after the timeout."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                family = []
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            _, alive = psutil.wait_procs(family, timeout=timeout_s)
            for p in alive:  # psutil checks the PID still names the process it listed
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            psutil.wait_procs(alive, timeout=5)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


def _get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
