"""CPU and memory of the harness and target processes (with their children), sampled once a second."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import orjson
import psutil


class ResourceSampler:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.procs: dict[str, psutil.Process] = {}
        self._children: dict[tuple[str, int], psutil.Process] = {}
        self._task: asyncio.Task[None] | None = None
        self._t0 = time.monotonic()

    def watch(self, name: str, pid: int) -> None:
        if name in self.procs:
            return
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # prime: the first call always reads 0
            self.procs[name] = proc

    def start(self) -> None:
        psutil.cpu_percent(None)  # prime the machine-wide counter
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _tree(self, name: str, proc: psutil.Process) -> list[psutil.Process]:
        """The process and its descendants (PostgreSQL backends, uvicorn workers): a server's real cost.

        Descendants watched under a name of their own (a generator process, a target service
        started by the harness) are counted there, with their own subtree, not twice."""
        watched = {p.pid for n, p in self.procs.items() if n != name}
        out = [proc]
        stack = self._kids(proc)
        while stack:
            kid = stack.pop()
            if kid.pid in watched:
                continue
            known = self._children.setdefault((name, kid.pid), kid)
            if known.create_time() != kid.create_time():  # pid reused
                known = self._children[(name, kid.pid)] = kid
            out.append(known)
            stack.extend(self._kids(kid))
        return out

    @staticmethod
    def _kids(proc: psutil.Process) -> list[psutil.Process]:
        try:
            return proc.children()
        except psutil.Error:
            return []

    def _sample(self) -> bytes:
        procs = {}
        for name, proc in list(self.procs.items()):
            cpu, rss, private = 0.0, 0, 0
            try:
                for member in self._tree(name, proc):
                    try:
                        with member.oneshot():
                            cpu += member.cpu_percent(None)
                            mem = member.memory_info()
                            rss += mem.rss
                            # resident minus shared pages: what the process itself holds (PostgreSQL's
                            # shared buffers and loaded libraries are shared), where a leak would show
                            private += mem.rss - getattr(mem, "shared", 0)
                    except psutil.Error:
                        self._children.pop((name, member.pid), None)
            except psutil.Error:
                self.procs.pop(name, None)
                continue
            if not proc.is_running():
                self.procs.pop(name, None)
                continue
            procs[name] = {"cpu_percent": round(cpu, 1), "rss_bytes": rss, "private_bytes": private}
        # the whole machine too: on a shared machine, what other jobs took decides a result
        machine = {"cpu_percent": round(psutil.cpu_percent(None) * (psutil.cpu_count() or 1), 1),
                   "load_average": round(psutil.getloadavg()[0], 2)}
        return orjson.dumps({"t": round(time.monotonic() - self._t0, 3), "procs": procs, "machine": machine}) + b"\n"

    async def _loop(self) -> None:
        with self.path.open("ab") as fh:
            while True:
                await asyncio.sleep(1.0)
                line = await asyncio.to_thread(self._sample)
                fh.write(line)
                fh.flush()
