"""Generator processes: N children share the rate, each reporting over its own pipe.

Each child has two one-way pipes, control from the parent and reports to it. Both ends are kept
blocking (the event loop only says when a message starts arriving), so a report larger than the
pipe's buffer is written and read whole, never half. Children ignore SIGINT: the parent owns Ctrl-C
and tells them to stop, so that every child drains and reports its books instead of dying
mid-run. CLOCK_MONOTONIC is system-wide on Linux, so the parent hands all children one common
start instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from harness.engine.loadgen import GeneratorConfig, LoadGenerator, tune_gc_for_load
from harness.loop import new_event_loop
from harness.results.messages import FinalReport, IntervalReport


@dataclass(frozen=True, slots=True)
class Go:
    start_ns: int


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Ready:
    process: int


@dataclass(frozen=True, slots=True)
class Failed:
    process: int
    error: str


@dataclass(frozen=True, slots=True)
class Done:
    process: int


Report = IntervalReport | FinalReport


def _child_main(control: Connection, reports: Connection, cfg: GeneratorConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    loop = new_event_loop()
    try:
        loop.run_until_complete(_child(control, reports, cfg))
    finally:
        loop.close()
        control.close()
        reports.close()


def _die_with_parent() -> None:
    """A generator whose parent was killed must not go on loading the system."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def _child(conn: Connection, out: Connection, cfg: GeneratorConfig) -> None:
    gen = LoadGenerator(cfg, out.send)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    go: asyncio.Future[int] = loop.create_future()

    def on_message() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # parent gone: stop
            msg = Stop()
            loop.remove_reader(conn.fileno())
        if isinstance(msg, Go) and not go.done():
            go.set_result(msg.start_ns)
        elif isinstance(msg, Stop):
            stop.set()
            if not go.done():
                go.set_result(0)

    loop.add_reader(conn.fileno(), on_message)
    os.set_blocking(conn.fileno(), True)  # the event loop made it non-blocking; a message is read whole
    try:
        try:
            await gen.start_driver()
        except Exception as exc:
            out.send(Failed(cfg.index, f"{type(exc).__name__}: {exc}"))
            return
        tune_gc_for_load()
        out.send(Ready(cfg.index))
        start_ns = await go
        if start_ns:
            await gen.run(start_ns, stop)
    finally:
        with contextlib.suppress(Exception):
            await gen.stop_driver()
        with contextlib.suppress(Exception):
            loop.remove_reader(conn.fileno())
        with contextlib.suppress(Exception):
            out.send(Done(cfg.index))


class WorkerPool:
    """Spawns, starts and stops the generator children; relays their reports."""

    def __init__(self, configs: list[GeneratorConfig], on_report: Callable[[Report], None]) -> None:
        self.configs = configs
        self.on_report = on_report
        self.procs: list[mp.process.BaseProcess] = []
        self.conns: list[Connection] = []  # reports from each child
        self.controls: list[Connection] = []  # control to each child
        self._ready: set[int] = set()
        self._done: set[int] = set()
        self._failed: list[str] = []
        self._changed = asyncio.Event()

    def _on_readable(self, conn: Connection) -> None:
        try:
            while conn.poll():
                msg = conn.recv()
                if isinstance(msg, Ready):
                    self._ready.add(msg.process)
                elif isinstance(msg, Failed):
                    self._failed.append(f"generator {msg.process}: {msg.error}")
                elif isinstance(msg, Done):
                    self._done.add(msg.process)
                else:
                    self.on_report(msg)
                self._changed.set()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            if conn in self.conns:
                self._done.add(self.conns.index(conn))
            self._changed.set()

    async def start(self, timeout_s: float = 120.0) -> None:
        ctx = mp.get_context("spawn")
        loop = asyncio.get_running_loop()
        for cfg in self.configs:
            control_r, control_w = ctx.Pipe(duplex=False)
            reports_r, reports_w = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child_main, args=(control_r, reports_w, cfg), name=f"edabench-gen-{cfg.index}")
            proc.start()
            control_r.close()
            reports_w.close()
            self.procs.append(proc)
            self.conns.append(reports_r)
            self.controls.append(control_w)
            loop.add_reader(reports_r.fileno(), self._on_readable, reports_r)
            os.set_blocking(reports_r.fileno(), True)  # readable means a message is being written: read it whole
        deadline = time.monotonic() + timeout_s
        while len(self._ready) + len(self._failed) < len(self.configs):
            if self._failed or any(not p.is_alive() for p in self.procs):
                break
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await self.stop()
                raise RuntimeError("generator processes did not start in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
        if self._failed or len(self._ready) < len(self.configs):
            await self.stop()
            raise RuntimeError("; ".join(self._failed) or "a generator process died while starting")

    def go(self, start_ns: int) -> None:
        for conn in self.controls:
            conn.send(Go(start_ns))

    def stop_all(self) -> None:
        for conn in self.controls:
            with contextlib.suppress(OSError):
                conn.send(Stop())

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
        for conn in (*self.conns, *self.controls):
            conn.close()
        self.conns.clear()
        self.controls.clear()
        self.procs.clear()
