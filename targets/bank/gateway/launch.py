"""Start the gateway in front of a pipeline for one run, and take its final counts at the end.

Used by the bank driver's `launch` when a spec asks for `gateway = true`: after the service's
instances are ready, `python -m targets.bank.gateway` is started in a session of its own (a
terminal's Ctrl-C reaches the harness alone) with a parent-death signal, waited for until its
health answers 200, and stopped by PID at the end. What it never delivered (a dropped slow client,
a full queue) is read from its /metrics before it stops and reported as a problem of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from targets.bank.db import ENV_DSN
from targets.bank.procs import die_with_parent, free_port

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    url: str  # ws://.../ws
    http: str  # http://... (health, metrics, proxy)
    pid: int
    problems: list[str] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=dict)


def parse_counts(text: str) -> dict[str, float]:
    """gateway_ws_* counters from a Prometheus exposition, summed over their labels."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("gateway_ws_") and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0].removesuffix("_total")
            label = name[len(name.split("{", 1)[0]):]
            key = base + label if "reason" in label else base
            out[key] = out.get(key, 0.0) + float(value)
    return out


async def _healthy(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{url}/api/v1/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway at {url} was not healthy after {timeout_s:.0f} s")
            await asyncio.sleep(0.2)


def _spawn(cmd: list[str], log_dir: Path, dsn: str) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """Popen in the event loop's thread: the parent-death signal is tied to the forking thread."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_dir / "gateway.log", "ab")  # kept open for the child's lifetime
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, ENV_DSN: dsn, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
                            preexec_fn=die_with_parent(os.getpid()))
    return proc, out


@contextlib.asynccontextmanager
async def gateway_up(kafka: str, dsn: str, namespace: str, api_ports: list[int], group: str, ws_queue: int,
                     log_dir: Path, ready_timeout_s: float = 60.0) -> AsyncIterator[Gateway]:
    port = free_port()
    cmd = [sys.executable, "-m", "targets.bank.gateway", "--port", str(port), "--kafka", kafka,
           "--namespace", namespace, "--bank-group", group, "--ws-queue", str(ws_queue), "--no-simulation",
           "--no-access-log", "--bank-api", ",".join(f"http://127.0.0.1:{p}" for p in api_ports)]
    proc, out = _spawn(cmd, log_dir, dsn)
    gw = Gateway(f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}", proc.pid)
    try:
        await _healthy(gw.http, ready_timeout_s)
        yield gw
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with aiohttp.ClientSession() as http, http.get(f"{gw.http}/metrics") as r:
                gw.counts = parse_counts(await r.text())
        undelivered = sum(v for k, v in gw.counts.items() if k.startswith("gateway_ws_messages_undelivered"))
        if undelivered:
            detail = {k: v for k, v in gw.counts.items() if "undelivered" in k or "dropped" in k}
            gw.problems.append(f"the gateway did not deliver {undelivered:.0f} WebSocket messages ({detail})")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 5)
        out.close()
