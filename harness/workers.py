"""Generator processes: N children share the rate, each reporting over its own pipe.

Children ignore SIGINT: the parent owns Ctrl-C and tells them to stop, so that every
child drains and reports its books instead of dying mid-run. CLOCK_MONOTONIC is
system-wide on Linux, so the parent hands all children one common start instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from harness.generator import Generator, GeneratorConfig, tune_gc_for_load
from harness.loop import new_event_loop


def _child_main(conn: Connection, cfg: GeneratorConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop = new_event_loop()
    try:
        loop.run_until_complete(_child(conn, cfg))
    finally:
        loop.close()
        conn.close()


async def _child(conn: Connection, cfg: GeneratorConfig) -> None:
    gen = Generator(cfg, conn.send)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    go: asyncio.Future[int] = loop.create_future()

    def on_message() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # parent gone: stop
            msg = {"type": "stop"}
            loop.remove_reader(conn.fileno())
        if msg["type"] == "go" and not go.done():
            go.set_result(msg["start_ns"])
        elif msg["type"] == "stop":
            stop.set()
            if not go.done():
                go.set_result(0)

    loop.add_reader(conn.fileno(), on_message)
    try:
        try:
            await gen.start_driver()
        except Exception as exc:
            conn.send({"type": "failed", "process": cfg.index, "error": f"{type(exc).__name__}: {exc}"})
            return
        tune_gc_for_load()
        conn.send({"type": "ready", "process": cfg.index})
        start_ns = await go
        if start_ns:
            await gen.run(start_ns, stop)
    finally:
        with contextlib.suppress(Exception):
            await gen.stop_driver()
        with contextlib.suppress(Exception):
            loop.remove_reader(conn.fileno())
        conn.send({"type": "done", "process": cfg.index})


class WorkerPool:
    """Spawns, starts and stops the generator children; relays their reports."""

    def __init__(self, configs: list[GeneratorConfig], on_report: Any) -> None:
        self.configs = configs
        self.on_report = on_report
        self.procs: list[mp.process.BaseProcess] = []
        self.conns: list[Connection] = []
        self._ready: set[int] = set()
        self._done: set[int] = set()
        self._failed: list[str] = []
        self._changed = asyncio.Event()

    def _on_readable(self, conn: Connection) -> None:
        try:
            while conn.poll():
                msg = conn.recv()
                kind = msg["type"]
                if kind == "ready":
                    self._ready.add(msg["process"])
                elif kind == "failed":
                    self._failed.append(f"generator {msg['process']}: {msg['error']}")
                elif kind == "done":
                    self._done.add(msg["process"])
                else:
                    self.on_report(msg)
                self._changed.set()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            self._done.add(self.conns.index(conn))
            self._changed.set()

    async def start(self, timeout_s: float = 120.0) -> None:
        ctx = mp.get_context("spawn")
        loop = asyncio.get_running_loop()
        for cfg in self.configs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child_main, args=(child, cfg), name=f"edabench-gen-{cfg.index}")
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
            loop.add_reader(parent.fileno(), self._on_readable, parent)
        deadline = time.monotonic() + timeout_s
        while len(self._ready) + len(self._failed) < len(self.configs):
            if self._failed or any(not p.is_alive() for p in self.procs):
                break
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError("generator processes did not start in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
        if self._failed or len(self._ready) < len(self.configs):
            await self.stop()
            raise RuntimeError("; ".join(self._failed) or "a generator process died while starting")

    def go(self, start_ns: int) -> None:
        for conn in self.conns:
            conn.send({"type": "go", "start_ns": start_ns})

    def stop_all(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send({"type": "stop"})

    async def wait(self) -> None:
        """Until every child has sent its final report and exited."""
        while len(self._done) < len(self.procs):
            if all(not p.is_alive() for p in self.procs):
                await asyncio.sleep(0.1)  # let the last bytes in the pipes be read
                if len(self._done) < len(self.procs):
                    break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.5)
        await self.stop()

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for conn in self.conns:
            with contextlib.suppress(Exception):
                loop.remove_reader(conn.fileno())
        self.stop_all()
        for proc in self.procs:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join, 5)
        for conn in self.conns:
            conn.close()
        self.conns.clear()
        self.procs.clear()
