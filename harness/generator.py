"""One generator process: the open-loop scheduler, the in-flight table and the recorder.

The scheduler sends every op at its intended time whether or not earlier ops have
answered (wrk2's discipline); latency is measured from that intended time. Once a
second the generator folds its buffers into interval histograms and emits an
interval report; at the end it emits its books. The collector turns those reports
into the run's results, whether they come from this process or from several.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import logging
import random
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from harness.books import KindBooks
from harness.collector import interval_report
from harness.protocol import DriverContext, Op, Result
from harness.recorder import LatencyBuffer, decode, encode, merge_encoded, new_histogram
from harness.schedule import process_arrivals
from harness.spec import Spec

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
SWEEP_EVERY_S = 0.02
LONG_WAIT_NS = 50_000_000
YIELD_EVERY = 256


@dataclass
class GeneratorConfig:
    spec: Spec
    driver_cls: Any
    workload_cls: Any | None
    services: dict[str, str]
    run_dir: str
    run_id: str
    index: int = 0
    count: int = 1
    launched: dict[str, Any] = field(default_factory=dict)


def tune_gc_for_load() -> None:
    """For a process that exists to generate load: the objects made while starting never need
    scanning again, and young collections come less often on the hot path (measured: fewer
    stalls at 80,000 ops/s). Not for shared processes such as a test runner."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _merge_encoded_pair(a: str, b: str | None) -> str:
    if b is None:
        return a
    hist = decode(a)
    merge_encoded(hist, b)
    return encode(hist)


class _Completions:
    """What the driver sees of the generator: completion, extra samples and gauges."""

    def __init__(self, gen: Generator) -> None:
        self._gen = gen

    def complete(self, op_id: str, error: str | None = None, completed_ns: int | None = None) -> None:
        self._gen.finish(op_id, error, completed_ns)

    def observe(self, metric: str, value_us: int) -> None:
        buf = self._gen.extra.get(metric)
        if buf is None:
            buf = self._gen.extra[metric] = LatencyBuffer()
        buf.add(int(value_us))

    def gauge(self, name: str, value: float) -> None:
        self._gen.gauges[name] = value


class Generator:
    def __init__(self, cfg: GeneratorConfig, emit: Emit) -> None:
        self.cfg = cfg
        self.spec = cfg.spec
        self.emit = emit
        self.books: dict[str, KindBooks] = {}
        self.in_flight: OrderedDict[str, tuple[Op, KindBooks, asyncio.Task[None] | None]] = OrderedDict()
        self.tasks: set[asyncio.Task[None]] = set()
        self.extra: dict[str, LatencyBuffer] = {}
        self.gauges: dict[str, float] = {}
        self.lag = LatencyBuffer()
        self.late = 0  # completions for ops already timed out (or unknown ids)
        self.interval = Counter[str]()
        self.driver: Any = None
        self.workload: Any = None
        self.start_ns = 0
        self.warmup_end_ns = 0
        self.timeout_ns = int(self.spec.timeout_s * 1e9)
        self._seq = 0
        # unique per run (the run id holds the start time) and per process: shared reply topics are filtered by it
        self._prefix = f"{zlib.crc32(cfg.run_id.encode()):08x}p{cfg.index}-"
        names = [o.name for o in self.spec.ops]
        self._kinds = names
        self._cum = list(accumulate(o.weight for o in self.spec.ops))
        self._rng = random.Random(self.spec.seed * 7919 + cfg.index)
        self._tick = 0
        self._send_nowait: Callable[[Op], Result | None] | None = None
        self._folded: dict[str, dict[str, str | None]] = {}

    # -- lifecycle --------------------------------------------------------------------
    async def start_driver(self) -> None:
        options = {**self.spec.target_options, **self.cfg.launched}
        ctx = DriverContext(
            options=options,
            completions=_Completions(self),
            services=self.cfg.services,
            run_dir=self.cfg.run_dir,
            process_index=self.cfg.index,
            process_count=self.cfg.count,
            run_id=self.cfg.run_id,
            op_id_prefix=self._prefix,
        )
        self.driver = self.cfg.driver_cls()
        if self.cfg.workload_cls is not None:
            self.workload = self.cfg.workload_cls(
                dict(self.spec.workload_options), self.spec.seed, self.cfg.index
            )
        await self.driver.start(ctx)
        self._send_nowait = getattr(self.driver, "send_nowait", None)

    async def run(self, start_ns: int, stop: asyncio.Event) -> dict[str, Any]:
        """Schedule, drain, verify; returns the final report (also emitted)."""
        spec = self.spec
        self.start_ns = start_ns
        self.warmup_end_ns = start_ns + int(spec.warmup_s * 1e9)
        ticker = asyncio.create_task(self._ticker())
        sweeper = asyncio.create_task(self._sweeper())
        interrupted = False
        try:
            interrupted = await self._schedule(stop)
            await self._drain(stop)
        finally:
            sweeper.cancel()
            ticker.cancel()
            for t in (sweeper, ticker):
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            self._expire_all()
            for task in list(self.tasks):
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            self._emit_interval(final=True)
        problems = await self._verify()
        final = {
            "type": "final",
            "process": self.cfg.index,
            "books": {k: b.as_dict() for k, b in self.books.items()},
            "late_completions": self.late,
            "problems": problems,
            "interrupted": interrupted,
            "pids": dict(getattr(self.driver, "pids", {}) or {}),
        }
        self.emit(final)
        return final

    async def stop_driver(self) -> None:
        if self.driver is not None:
            await self.driver.stop()

    # -- scheduling (hot path) ---------------------------------------------------------
    async def _schedule(self, stop: asyncio.Event) -> bool:
        spec = self.spec
        total_s = spec.warmup_s + spec.duration_s
        arrivals = process_arrivals(spec.rate, total_s, self.cfg.index, self.cfg.count, spec.seed)
        mono = time.monotonic_ns
        start = self.start_ns
        sleep = asyncio.sleep
        late_in_a_row = 0
        for offset in arrivals:
            if stop.is_set():
                return True
            intended = start + int(offset * 1e9)
            wait = intended - mono()
            if wait <= 0:
                late_in_a_row += 1
                if late_in_a_row >= YIELD_EVERY:  # behind schedule: let I/O, ticker and sweeper run
                    late_in_a_row = 0
                    await sleep(0)
            elif wait > LONG_WAIT_NS:  # low rates: notice a stop during the gap, not after it
                late_in_a_row = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait / 1e9)
            else:
                late_in_a_row = 0
                await sleep(wait / 1e9)
            if stop.is_set():
                return True
            self._fire(intended)
        return stop.is_set()

    def _fire(self, intended_ns: int) -> None:
        if len(self._kinds) == 1:
            kind = self._kinds[0]
        else:
            kind = self._kinds[bisect.bisect_right(self._cum, self._rng.random() * self._cum[-1])]
        payload = None
        if self.workload is not None:
            kind, payload = self.workload.next_op(kind)
        books = self.books.get(kind)
        if books is None:
            books = self.books[kind] = KindBooks(kind)
        books.scheduled += 1
        self.interval["scheduled"] += 1
        measured = intended_ns >= self.warmup_end_ns
        if measured:
            books.m_scheduled += 1
        else:
            books.warmup += 1
        if len(self.in_flight) >= self.spec.max_in_flight:
            books.not_sent += 1
            if measured:
                books.m_not_sent += 1
            books.not_sent_reasons["in_flight_cap"] += 1
            self.interval["not_sent"] += 1
            return
        self._seq += 1
        op = Op(f"{self._prefix}{self._seq}", kind, payload, intended_ns)
        send_nowait = self._send_nowait
        if send_nowait is None:
            task = asyncio.get_running_loop().create_task(self._send(op))
            self.in_flight[op.id] = (op, books, task)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        # drivers that only enqueue (a Kafka producer pump) skip the Task per op: most of the
        # harness's own cost per op
        self.in_flight[op.id] = (op, books, None)
        now = time.monotonic_ns()
        op.sent_ns = now
        self.lag.add((now - intended_ns) // 1000)
        self.interval["sent"] += 1
        try:
            result = send_nowait(op)
        except Exception as exc:
            self.finish(op.id, type(exc).__name__, None)
            return
        if result is not None:
            self.finish(op.id, result.error, result.completed_ns)

    async def _send(self, op: Op) -> None:
        now = time.monotonic_ns()
        op.sent_ns = now
        self.lag.add((now - op.intended_ns) // 1000)
        self.interval["sent"] += 1
        try:
            result = await self.driver.send(op)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a send failure is an outcome, not a crash
            self.finish(op.id, type(exc).__name__, None)
            return
        if result is not None:
            self.finish(op.id, result.error, result.completed_ns)

    def finish(self, op_id: str, error: str | None, completed_ns: int | None) -> None:
        entry = self.in_flight.pop(op_id, None)
        if entry is None:
            self.late += 1
            return
        done = completed_ns or time.monotonic_ns()
        op, books, _ = entry
        measured = op.intended_ns >= self.warmup_end_ns
        if error is None:
            books.ok += 1
            self.interval["ok"] += 1
            if measured:
                books.m_ok += 1
                books.response.add((done - op.intended_ns) // 1000)
                books.service.add((done - op.sent_ns) // 1000)
        else:
            books.error += 1
            books.errors[error] += 1
            self.interval["error"] += 1
            if measured:
                books.m_error += 1
        if self.workload is not None:
            self.workload.on_result(op, error)

    # -- timeouts and drain ----------------------------------------------------------------
    def _expire(self, deadline_ns: int) -> None:
        in_flight = self.in_flight
        while in_flight:
            op_id = next(iter(in_flight))
            op, books, task = in_flight[op_id]
            if op.intended_ns > deadline_ns:
                return
            del in_flight[op_id]
            if task is not None and not task.done():
                task.cancel()  # written off: the driver must not keep working for it
            books.timeout += 1
            self.interval["timeout"] += 1
            if op.intended_ns >= self.warmup_end_ns:
                books.m_timeout += 1

    def _expire_all(self) -> None:
        self._expire(1 << 62)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            self._expire(time.monotonic_ns() - self.timeout_ns)

    async def _drain(self, stop: asyncio.Event) -> None:
        deadline = time.monotonic() + self.spec.drain_timeout_s
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    # -- intervals ---------------------------------------------------------------------------
    async def _ticker(self) -> None:
        while True:
            self._tick += 1
            wake = self.start_ns + self._tick * 1_000_000_000
            await asyncio.sleep(max(0.0, (wake - time.monotonic_ns()) / 1e9))
            # folded kinds live on self, so a cancel between two folds loses nothing: the final
            # report picks them up
            for kind, books in list(self.books.items()):
                self._folded[kind] = self._fold(books)
                await asyncio.sleep(0)  # a fold costs ~0.5 ms: let sends due meanwhile go out
            self._emit_interval()

    @staticmethod
    def _fold(books: KindBooks) -> dict[str, str | None]:
        out: dict[str, str | None] = {"response": None, "service": None}
        for metric, buf in (("response", books.response), ("service", books.service)):
            if len(buf):
                hist = new_histogram()
                buf.drain_into(hist)
                out[metric] = encode(hist)
        return out

    def _emit_interval(self, final: bool = False) -> None:
        """Send this second's interval report; kinds not folded yet are folded now."""
        kinds, self._folded = self._folded, {}
        for kind, books in self.books.items():
            prior = kinds.get(kind)
            if prior is not None and not len(books.response) and not len(books.service):
                continue
            folded = self._fold(books)
            if prior is not None:  # samples that arrived while other kinds were being folded
                folded = {m: _merge_encoded_pair(prior[m], folded[m]) if prior[m] else folded[m] for m in folded}
            kinds[kind] = folded
        lag = new_histogram()
        self.lag.drain_into(lag)
        extra = {}
        for metric, buf in self.extra.items():
            if len(buf):
                h = new_histogram()
                buf.drain_into(h)
                extra[metric] = encode(h)
        t = max(0, self._tick - 1)  # the interval in progress, also for the final report
        report = interval_report(self.cfg.index, int(t), final, dict(self.interval), len(self.in_flight), kinds,
                                 encode(lag) if lag.get_total_count() else None, extra, dict(self.gauges))
        self.interval.clear()
        self.emit(report)

    async def _verify(self) -> list[str]:
        try:
            if self.workload is not None and hasattr(self.workload, "verify"):
                return list(await self.workload.verify(self.driver))
            if hasattr(self.driver, "verify"):
                return list(await self.driver.verify())
        except Exception as exc:
            log.exception("verification failed")
            return [f"verification crashed: {type(exc).__name__}: {exc}"]
        return []
