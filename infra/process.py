"""A server run as a child process: spawned with its log in a file, awaited until ready, stopped by pid.

Popen (not asyncio's subprocess transport) is used on purpose: the handle is not bound to an event loop,
so a stack started on one loop (a test fixture's thread) can be stopped from another, and waiting is a
non-blocking poll. Spawning is a fork/exec and does not block the loop for any noticeable time.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from infra import registry
from infra.errors import StackError
from infra.ports import free_port

_PR_SET_PDEATHSIG = 1
# Loaded in the parent: the forked child must not load libraries before exec.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

_LIVE: set[ManagedProcess] = set()


def _die_with_parent(sig: int, parent_pid: int) -> Callable[[], None]:
    """preexec_fn: ask the kernel to send `sig` when our parent dies, so a crashed harness leaves no servers.

    It runs after Popen switched user (the kernel clears the setting on a credential change), and checks
    the parent is still there, closing the race where it died before prctl.
    """

    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), sig)

    return preexec


def tail(path: Path, lines: int = 25) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class ManagedProcess:
    """One server process that we own and must stop."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        *,
        stop_signal: int = signal.SIGTERM,
        detached: bool = False,
        user: str | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        cleanup_dirs: list[Path] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.detached = detached
        self.user = user
        self.cwd = cwd
        self.env = env
        self.cleanup_dirs = cleanup_dirs or []
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not spawned"
        return self.popen.pid

    def spawn(self) -> None:
        """Start the process and record it in the registry.

        Each child gets its own session, so a Ctrl-C in the terminal reaches only the harness, which then
        stops the servers in order. Detached children (a persistent stack) do not die with the parent.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- edabench: starting {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                user=self.user,
                group=pwd.getpwnam(self.user).pw_gid if self.user else None,
                extra_groups=[] if self.user else None,
                start_new_session=True,
                close_fds=True,
                preexec_fn=None if self.detached else _die_with_parent(self.stop_signal, os.getpid()),
            )
        _LIVE.add(self)
        created = registry.process_create_time(self.pid) or time.time()
        me = os.getpid()
        registry.register(
            registry.Entry(
                name=self.name,
                pid=self.pid,
                create_time=created,
                cmdline=self.argv,
                owner_pid=me,
                owner_create_time=registry.process_create_time(me) or 0.0,
                detached=self.detached,
                stop_signal=int(self.stop_signal),
                cleanup_dirs=[str(d) for d in self.cleanup_dirs],
            )
        )

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        return tail(self.log_path, lines)

    async def wait_ready(self, probe: Callable[[], Awaitable[None]], timeout_s: float, what: str) -> None:
        """Run `probe` until it succeeds; fail early if the process exits, or after `timeout_s` seconds.

        The error quotes the tail of the server's log, which is where the reason usually is.
        """
        deadline = time.monotonic() + timeout_s
        last: BaseException | None = None
        while True:
            if not self.alive:
                raise StackError(
                    f"{self.name} exited with code {self.returncode} before it was ready ({what}).\n"
                    f"Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                await asyncio.wait_for(probe(), max(0.1, min(5.0, deadline - time.monotonic())))
                return
            except Exception as exc:  # any failed probe just means "not yet"
                last = exc
            if time.monotonic() >= deadline:
                cause = f"{type(last).__name__}: {last}" if last else "no answer"
                raise StackError(
                    f"{self.name} was not ready within {timeout_s:.0f}s ({what}; last probe: {cause}).\n"
                    f"Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)

    async def stop(self, timeout_s: float = 10.0, *, keep_dirs: bool = False) -> None:
        """Stop by pid: the stop signal, wait, SIGKILL after `timeout_s`. Safe to call twice."""
        if self.popen is None:
            return
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(self.stop_signal)
                deadline = time.monotonic() + timeout_s
                while self.popen.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                if self.popen.poll() is None:
                    self.popen.kill()
                    while self.popen.poll() is None:
                        await asyncio.sleep(0.02)
        finally:
            # A data dir can be tens of MB: remove it off the event loop.
            await asyncio.to_thread(self._forget, keep_dirs)

    def stop_now(self, timeout_s: float = 5.0) -> None:
        """Blocking stop for interpreter exit, when no event loop is left to run `stop`."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._forget()

    def _forget(self, keep_dirs: bool = False) -> None:
        _LIVE.discard(self)
        if self.popen is not None:
            registry.unregister(self.popen.pid)
        if not keep_dirs:
            for d in self.cleanup_dirs:
                shutil.rmtree(d, ignore_errors=True)


async def launch(
    make: Callable[[int], tuple[ManagedProcess, str]],
    probe: Callable[[str], Awaitable[None]],
    timeout_s: float,
    attempts: int = 3,
) -> tuple[str, ManagedProcess]:
    """Spawn `make(port)` on a free port and wait until `probe(url)` passes.

    A free port can be taken between our check and the server's bind; then we retry on a new port.
    Any failure or cancellation stops the process before the error propagates.
    """
    for attempt in range(1, attempts + 1):
        proc, url = make(free_port())
        proc.spawn()
        try:
            await proc.wait_ready(lambda u=url: probe(u), timeout_s, f"probing {url}")
            return url, proc
        except StackError:
            clash = "address already in use" in proc.log_tail().lower()
            if clash and attempt < attempts:
                await proc.stop(keep_dirs=True)
                continue
            await proc.stop()
            raise
        except BaseException:
            await proc.stop()
            raise
    raise AssertionError("unreachable")


@atexit.register
def _stop_leftovers() -> None:
    """Normal interpreter exit without an orderly stop (e.g. a loop that died): stop what we own."""
    for proc in list(_LIVE):
        if not proc.detached:
            proc.stop_now()
