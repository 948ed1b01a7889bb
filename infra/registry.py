"""A small on-disk registry of the servers we spawned, so a later run can clean up after a crashed one.

Children normally die with their parent (PDEATHSIG), but a parent killed before it set that up, a
non-Linux host or a detached stack can leave servers behind. Each spawned server gets one JSON file
naming its pid, start time and command line and the process that owns it. A later run removes entries
whose server is gone and stops servers whose owner is dead, after checking that the pid still belongs to
the very process we started (same start time and command line), so a recycled pid is never killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil


def state_dir() -> Path:
    """Where the registry and the persistent-stack state live: $EDABENCH_STATE_DIR or ~/.cache/edabench."""
    env = os.environ.get("EDABENCH_STATE_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "edabench"
    base.mkdir(parents=True, exist_ok=True)
    return base


def _pids_dir() -> Path:
    path = state_dir() / "pids"
    path.mkdir(parents=True, exist_ok=True)
    return path


def process_create_time(pid: int) -> float | None:
    """Start time of a live process, or None if there is no such process (or it is a zombie)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


@dataclass
class Entry:
    """One spawned server. `owner_*` identify the process responsible for stopping it."""

    name: str
    pid: int
    create_time: float
    cmdline: list[str]
    owner_pid: int
    owner_create_time: float
    detached: bool = False
    stop_signal: int = int(signal.SIGTERM)
    cleanup_dirs: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return _pids_dir() / f"{self.pid}.json"

    def matches_live_process(self) -> bool:
        """True only if `pid` is still the process we started: same start time and command line."""
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            if abs(proc.create_time() - self.create_time) >= 0.5:
                return False
            cmd = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        if cmd == self.cmdline:
            return True
        # Servers that rewrite their process title (redis-server shows "redis-server 127.0.0.1:PORT")
        # still name their executable first; with the same start time that identifies them.
        return bool(cmd) and bool(cmd[0]) and Path(cmd[0].split()[0]).name == Path(self.cmdline[0]).name

    def owner_alive(self) -> bool:
        created = process_create_time(self.owner_pid)
        return created is not None and abs(created - self.owner_create_time) < 1.0


def register(entry: Entry) -> None:
    tmp = entry.path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(entry)))
    tmp.replace(entry.path)


def unregister(pid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (_pids_dir() / f"{pid}.json").unlink()


def load(pid: int) -> Entry | None:
    try:
        return Entry(**json.loads((_pids_dir() / f"{pid}.json").read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def entries() -> list[Entry]:
    found = []
    for path in sorted(_pids_dir().glob("*.json")):
        try:
            found.append(Entry(**json.loads(path.read_text())))
        except (FileNotFoundError, ValueError, TypeError):
            # A torn or foreign file is not ours to interpret; drop it so it never blocks a run.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return found


def terminate(entry: Entry, timeout: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Stop the entry's process by pid (signal, wait, SIGKILL) if it is still ours; True if signalled."""
    if not entry.matches_live_process():
        return False
    try:
        proc = psutil.Process(entry.pid)
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    except psutil.NoSuchProcess:
        pass
    return True


def remove_dirs(entry: Entry) -> None:
    for d in entry.cleanup_dirs:
        shutil.rmtree(d, ignore_errors=True)


def clean_stale(timeout: float = 10.0) -> list[Entry]:
    """Forget dead servers and stop orphans whose owner is gone; returns what was stopped or forgotten.

    Entries of a live owner are left alone (its server may not have exec'd yet), and so are live
    detached servers (`infra up`): they are meant to outlive their owner.
    """
    cleaned = []
    for entry in entries():
        if entry.owner_alive():
            continue
        ours = entry.matches_live_process()
        if ours and entry.detached:
            continue
        if ours:
            terminate(entry, timeout, entry.stop_signal)
        # If it was not ours any more (gone, or the pid was reused) there was nothing to signal;
        # either way its throw-away data directory has no server left and goes too.
        remove_dirs(entry)
        unregister(entry.pid)
        cleaned.append(entry)
    return cleaned


def wait_gone(pid: int, create_time: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        created = process_create_time(pid)
        if created is None or abs(created - create_time) >= 1.0:
            return True
        time.sleep(0.05)
    return False
