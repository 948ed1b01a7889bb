"""Shared fixtures: embedded services started lazily once per session, and the machine's own services.

The embedded servers live on a private event loop in a background thread, so the fixtures are plain
sync fixtures usable from sync and async tests alike, and they do not touch the loops pytest-asyncio
gives each test. The servers are children of that thread: they are stopped at session end, also when
tests fail, and the kernel stops them if pytest itself dies.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from infra.errors import StackError
from infra.external import check
from infra.stack import Stack

T = TypeVar("T")

EXTERNAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
EXTERNAL_REDIS = "redis://127.0.0.1:6379/0"


class ServiceHost:
    """Starts each embedded service at most once, on first request, and stops them all at close()."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="infra-services", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._stacks: dict[str, Stack] = {}
        self._failures: dict[str, BaseException] = {}

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    def url(self, service: str) -> str:
        with self._lock:
            if service in self._failures:
                # Fail every later test fast with the original cause instead of retrying the start.
                raise StackError(f"embedded {service} failed to start earlier in this session") from (
                    self._failures[service]
                )
            if service not in self._stacks:
                stack = Stack(needs={service}, run_dir=self.run_dir / service, use_env=False, reuse=False, timeout=60)
                try:
                    self.run(stack.start())
                except BaseException as exc:
                    self._failures[service] = exc
                    raise
                self._stacks[service] = stack
            return self._stacks[service].urls[service]

    def close(self) -> None:
        with self._lock:
            stacks = list(self._stacks.values())
            self._stacks.clear()
        try:
            for stack in stacks:
                self.run(stack.stop(), timeout=60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


@pytest.fixture(scope="session")
def infra_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceHost]:
    """The session's service host; logs go to <basetemp>/infra/<service>/logs/."""
    host = ServiceHost(tmp_path_factory.mktemp("infra", numbered=False))
    try:
        yield host
    finally:
        host.close()


@pytest.fixture(scope="session")
def embedded_kafka(infra_services: ServiceHost) -> str:
    """Bootstrap "127.0.0.1:PORT" of an in-memory Tansu broker (idempotent producers are refused)."""
    return infra_services.url("kafka")


@pytest.fixture(scope="session")
def embedded_postgres(infra_services: ServiceHost) -> str:
    """DSN "postgresql://postgres@127.0.0.1:PORT/postgres" of a fresh embedded PostgreSQL (fsync off)."""
    return infra_services.url("postgres")


@pytest.fixture(scope="session")
def embedded_redis(infra_services: ServiceHost) -> str:
    """URL "redis://127.0.0.1:PORT/0" of an embedded memory-only redis-server."""
    return infra_services.url("redis")


def _external(host: ServiceHost, service: str, url: str) -> str:
    try:
        host.run(check(service, url, timeout_s=3.0))
    except StackError as exc:
        pytest.skip(f"the machine's {service} is not available: {exc}")
    return url


@pytest.fixture(scope="session")
def external_postgres(infra_services: ServiceHost) -> str:
    """The machine's PostgreSQL (127.0.0.1:5432, trust auth); skips the test if unreachable."""
    return _external(infra_services, "postgres", EXTERNAL_POSTGRES)


@pytest.fixture(scope="session")
def external_redis(infra_services: ServiceHost) -> str:
    """The machine's Redis (127.0.0.1:6379); skips the test if unreachable."""
    return _external(infra_services, "redis", EXTERNAL_REDIS)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh run directory for one test."""
    path = tmp_path / "run"
    path.mkdir()
    return path


@pytest.fixture
def infra_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private pid registry and stack state for one test, so it neither sees nor disturbs others'."""
    path = tmp_path / "state"
    path.mkdir()
    monkeypatch.setenv("EDABENCH_STATE_DIR", str(path))
    for var in ("EDABENCH_KAFKA_BOOTSTRAP", "EDABENCH_POSTGRES_DSN", "EDABENCH_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    return path
