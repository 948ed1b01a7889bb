"""The Stack: the services a run needs, each external (by URL), reused (from `infra up`) or embedded.

Precedence per service: explicit URL argument > environment variable > a healthy `infra up` stack >
an embedded server started now. Services start concurrently; on any failure, cancellation or exit,
every server this Stack started is stopped.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from infra import external, kafka, postgres, redis, registry, state
from infra.errors import StackError
from infra.external import SERVICES
from infra.process import ManagedProcess

__all__ = ["PROCESS_NAMES", "SERVICES", "Stack", "StackError"]

PROCESS_NAMES = {"kafka": "tansu", "postgres": "postgres", "redis": "redis"}
_STARTERS = {"kafka": kafka.start, "postgres": postgres.start, "redis": redis.start}


class Stack:
    """Async context manager providing `urls`, `pids`, `embedded` for the services in `needs`.

    urls:      service -> URL (kafka: "host:port" bootstrap; postgres: DSN; redis: URL)
    pids:      process name ("tansu", "postgres", "redis") -> pid, for embedded servers (started or reused)
    embedded:  services served by embedded servers (started now or reused from `infra up`)
    started:   services whose servers this Stack started and will stop
    reused:    services taken from a running `infra up` stack (never stopped by this Stack)
    external:  services given by URL (argument or environment)
    """

    def __init__(
        self,
        needs: Iterable[str] = SERVICES,
        run_dir: Path | str | None = None,
        kafka: str | None = None,
        postgres: str | None = None,
        redis: str | None = None,
        *,
        use_env: bool = True,
        reuse: bool = True,
        detached: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.needs = frozenset(needs)
        unknown = self.needs - set(SERVICES)
        if unknown:
            raise StackError(f"unknown service(s) {sorted(unknown)}; known: {list(SERVICES)}")
        if run_dir is None:
            run_dir = registry.state_dir() / "stacks" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.run_dir = Path(run_dir).resolve()
        self.explicit = {"kafka": kafka, "postgres": postgres, "redis": redis}
        self.use_env = use_env
        self.reuse = reuse
        self.detached = detached
        self.timeout = timeout
        self.urls: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        self.embedded: set[str] = set()
        self.started: set[str] = set()
        self.reused: set[str] = set()
        self.external: set[str] = set()
        self.processes: dict[str, ManagedProcess] = {}
        self.startup_seconds: dict[str, float] = {}

    async def __aenter__(self) -> Stack:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> Stack:
        """Provide every needed service; raise StackError (all causes listed) after stopping what started."""
        # Orphans of a crashed earlier run must go before we pick ports and spawn.
        await asyncio.to_thread(registry.clean_stale)
        try:
            results = await asyncio.gather(*(self._provide(s) for s in sorted(self.needs)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                for err in errors:
                    if not isinstance(err, Exception):
                        raise err  # cancellation / KeyboardInterrupt: not a service failure
                raise StackError("\n\n".join(str(e) for e in errors)) from errors[0]
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        """Stop the servers this Stack started (never reused or external ones); idempotent."""
        procs = list(self.processes.values())
        self.processes.clear()
        if procs:
            await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)

    async def _provide(self, service: str) -> None:
        t0 = time.monotonic()
        url = self.explicit[service] or (external.from_env(service) if self.use_env else None)
        if url:
            await external.check(service, url, timeout_s=min(self.timeout, 10.0))
            self.urls[service] = url
            self.external.add(service)
        elif self.reuse and await self._reuse(service):
            pass
        else:
            url, proc = await _STARTERS[service](self.run_dir, detached=self.detached, timeout_s=self.timeout)
            name = PROCESS_NAMES[service]
            self.processes[name] = proc
            self.urls[service] = url
            self.pids[name] = proc.pid
            self.embedded.add(service)
            self.started.add(service)
        self.startup_seconds[service] = time.monotonic() - t0

    async def _reuse(self, service: str) -> bool:
        """Take the service from a running `infra up` stack if its server is ours and answers."""
        st = await asyncio.to_thread(state.load)
        name = PROCESS_NAMES[service]
        if st is None or service not in st.urls or not await asyncio.to_thread(st.process_ours, name):
            return False
        try:
            await external.check(service, st.urls[service], timeout_s=3.0)
        except StackError:
            return False
        self.urls[service] = st.urls[service]
        self.pids[name] = st.pids[name]
        self.embedded.add(service)
        self.reused.add(service)
        return True

    def to_state(self) -> state.StackState:
        return state.StackState(urls=dict(self.urls), pids=dict(self.pids), run_dir=str(self.run_dir))
