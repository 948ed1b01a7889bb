"""Real `edabench` and `locust` processes for the Locust tests: bounded in time, stopped by PID.

Each process leads a session of its own, so that stopping it on failure reaches what it started
(Locust's processes started by `edabench locust` also end with it: they die with their parent).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

BIN = Path(sys.executable).parent
EDABENCH = str(BIN / "edabench")
LOCUST = str(BIN / "locust")  # the console script a user (or a remote machine) runs
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                start_new_session=True, env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait_s: float = 40.0) -> None:
    """Ask `proc` to stop (it writes what it has), then kill its process group if it does not."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextlib.contextmanager
def running(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = start(args, log, env)
    try:
        yield proc
    finally:
        stop(proc)


@contextlib.contextmanager
def echo_server(log: Path, *model: str) -> Iterator[str]:
    """An echo server the harness did not launch (`model`: its latency flags); yields its URL once
    it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "targets.echo.server", "--http-port", str(port), *model], log):
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/echo", timeout=3).read()
                break
            except OSError:
                assert time.monotonic() < deadline, f"the echo server did not start; see {log}"
                time.sleep(0.2)
        yield url


def edabench(args: list[str], log: Path, timeout_s: float = 180.0) -> tuple[int, str]:
    """Run an edabench command to its end; (exit code, its output)."""
    with running([EDABENCH, *args], log) as proc:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"edabench {' '.join(args)} did not end in {timeout_s:.0f} s; see {log}") from None
    return int(proc.returncode), log.read_text(errors="replace")


def only_run(root: Path) -> Path:
    (run_dir,) = (p for p in root.iterdir() if p.is_dir())
    return run_dir


def read(path: Path) -> Any:
    return orjson.loads(path.read_bytes())
