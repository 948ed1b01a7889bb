"""One generator process: the open-loop scheduler, its books and its recorders.

The scheduler sends every op at its intended time whether or not earlier ops have answered
(wrk2's discipline); latency is measured from that intended time. At each wake-up it takes every
op that is due (a slice of the precomputed arrival chunk) and hands them to the driver in one pass:
`send_batch` for transports that only enqueue, else `send` per op, stepped eagerly so that a
coroutine that finishes without waiting costs no Task. Ops that complete later wait in a ring
of slots (`InFlight`) until the driver reports them or the sweep times them out.

Once a second the generator emits an `IntervalReport` (sparse histogram counts, never `hdrh`
objects); at the end a `FinalReport` with its books. Memory does not grow with the run's length:
arrivals come in chunks, recorders keep one counts array each, finished ops are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np

from harness.books import OUTCOMES, Books
from harness.engine.eager import EagerRunner
from harness.engine.inflight import InFlight
from harness.engine.supervise import Supervisor
from harness.profiles import build
from harness.protocol import DriverContext, DriverShape, Op, Result
from harness.recorder import Recorder
from harness.results.messages import FinalReport, IntervalReport, KindInterval
from harness.spec import Spec

log = logging.getLogger(__name__)

Emit = Callable[[IntervalReport | FinalReport], None]
SWEEP_EVERY_S = 0.02
FOLD_EVERY_S = 0.05
LONG_WAIT_NS = 50_000_000
# The shortest sleep: an event loop's timers have millisecond resolution (uvloop fires a shorter one
# at once, so a scheduler sleeping until an op 10 us away would spin, 1-2 ops per pass, at twice the
# CPU per op). Ops due meanwhile go out together when it ends: at most ~1 ms of schedule lag.
MIN_SLEEP_NS = 1_000_000
MAX_BATCH = 2048  # ops per pass when behind schedule: I/O and timers get a turn in between
FAST_PASS = 32  # passes this long take the whole-pass path when they can (numpy's fixed cost pays off)
VECTOR_ACKS = 32  # batches of acknowledgements this long are booked with array operations


@dataclass
class GeneratorConfig:
    spec: Spec
    target: DriverShape
    workload_cls: Any | None
    services: dict[str, str]
    run_dir: str
    run_id: str
    index: int = 0
    count: int = 1
    launched: dict[str, Any] = field(default_factory=dict)


def tune_gc_for_load() -> None:
    """For a process that exists to generate load: what was built while starting never needs
    scanning again, and young collections come less often on the hot path. Not for shared
    processes such as a test runner."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class _Completions:
    """What the driver sees of the generator: completions, extra samples, gauges, expectations."""

    __slots__ = ("_gen",)

    def __init__(self, gen: LoadGenerator) -> None:
        self._gen = gen

    def complete(self, op_id: int, error: str | None = None, completed_ns: int | None = None) -> None:
        self._gen.complete(op_id, error, completed_ns)

    def complete_many(self, op_ids: Sequence[int], completed_ns: int | None = None,
                      errors: Sequence[str | None] | None = None) -> None:
        done = completed_ns or time.monotonic_ns()
        if errors is None:
            self._gen.complete_ok_many(op_ids, done)
            return
        complete = self._gen.complete
        for op_id, error in zip(op_ids, errors, strict=True):
            complete(op_id, error, done)

    def observe(self, metric: str, value_us: int) -> None:
        rec = self._gen.extra.get(metric)
        if rec is None:
            rec = self._gen.extra[metric] = Recorder()
        rec.add(int(value_us))

    def gauge(self, name: str, value: float) -> None:
        self._gen.gauges[name] = value

    def expect(self, metric: str, n: int = 1) -> None:
        self._gen.expected[metric] = self._gen.expected.get(metric, 0) + n


class _Mix:
    """Draws op kinds by weight, a chunk at a time (numpy), deterministic for a seed."""

    def __init__(self, weights: list[float], seed: int) -> None:
        w = np.asarray(weights, dtype=np.float64)
        self.cum = np.cumsum(w) / w.sum()
        self.single = len(weights) == 1
        self.rng = np.random.default_rng(seed)

    def pick(self, n: int) -> list[int]:
        if self.single:
            return [0] * n
        return np.searchsorted(self.cum, self.rng.random(n), side="right").tolist()


class LoadGenerator:
    def __init__(self, cfg: GeneratorConfig, emit: Emit) -> None:
        self.cfg = cfg
        self.spec = cfg.spec
        self.emit = emit
        self.books = Books([o.name for o in self.spec.ops])
        self.in_flight = InFlight(self.spec.max_in_flight, cfg.count)
        self.extra: dict[str, Recorder] = {}
        self.gauges: dict[str, float] = {}
        self.expected: dict[str, int] = {}
        self.lag = Recorder()
        self.late = 0  # completions for ops already finished, timed out or unknown
        self.driver: Any = None
        self.workload: Any = None
        self.start_ns = 0
        self.warmup_end_ns = 0
        self.timeout_ns = int(self.spec.timeout_s * 1e9)
        self.problems: list[str] = []
        self.supervisor = Supervisor(self._background_failed)
        self._stop: asyncio.Event | None = None
        self._mix = _Mix([o.weight for o in self.spec.ops], self.spec.seed * 7919 + cfg.index)
        self._tick = 0
        self._last_totals = dict.fromkeys(("scheduled", "sent", "ok", "error", "timeout", "not_sent"), 0)
        self._last_kind: list[tuple[int, int, int, int]] = []  # per kind index: (ok, error, timeout, not_sent)
        self._eager: EagerRunner | None = None
        self._sending: int = -1  # id of the op inside a synchronous send call
        self._early: dict[int, tuple[str | None, int | None]] = {}
        self._carriers: set[asyncio.Task[Any]] = set()
        self._schedule_end_ns = 0
        self._batch = False

    # -- lifecycle ------------------------------------------------------------------------------
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
            timeout_s=self.spec.timeout_s,
            supervise=self.supervisor.spawn,
        )
        self.driver = self.cfg.target.cls()
        if self.cfg.workload_cls is not None:
            self.workload = self.cfg.workload_cls(dict(self.spec.workload_options), self.spec.seed, self.cfg.index)
        await self.driver.start(ctx)
        # decided per instance, after start: a driver may set `send_batch = None` when its transport
        # for this run only has a per-op path (echo over HTTP)
        self._batch = callable(getattr(self.driver, "send_batch", None))

    async def run(self, start_ns: int, stop: asyncio.Event) -> FinalReport:
        """Schedule, drain, verify; returns the final report (also emitted)."""
        self._stop = stop
        self.start_ns = start_ns
        self.warmup_end_ns = start_ns + int(self.spec.warmup_s * 1e9)
        self._eager = EagerRunner(asyncio.get_running_loop())
        cpu0 = time.process_time()
        ticker = asyncio.create_task(self._ticker(), name="edabench-ticker")
        sweeper = asyncio.create_task(self._sweeper(), name="edabench-sweeper")
        interrupted = False
        try:
            interrupted = await self._schedule(stop)
            await self._drain()
        finally:
            for t in (sweeper, ticker):
                t.cancel()
            for t in (sweeper, ticker):
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            self._expire(1 << 62)
            for task in list(self._carriers):
                task.cancel()
            if self._carriers:
                await asyncio.gather(*self._carriers, return_exceptions=True)
            self._eager.close()
            self._emit_interval(final=True)
        problems = [*self.problems, *await self._verify()]
        await self.supervisor.stop()
        problems += [p for p in self.supervisor.failures if p not in problems]
        final = FinalReport(
            process=self.cfg.index,
            books=self.books.as_dict(),
            late=self.late,
            problems=problems,
            interrupted=interrupted,
            pids=dict(getattr(self.driver, "pids", {}) or {}),
            expected=dict(self.expected),
            schedule_end_ns=self._schedule_end_ns,
            cpu_s=round(time.process_time() - cpu0, 4),
        )
        self.emit(final)
        return final

    async def stop_driver(self) -> None:
        await self.supervisor.stop()
        if self.driver is not None:
            await self.driver.stop()

    def _background_failed(self, reason: str) -> None:
        """A supervised task died: the run cannot be trusted to hear its ops any more."""
        if reason not in self.problems:
            self.problems.append(reason)
        if self._stop is not None:
            self._stop.set()

    # -- scheduling (hot path) -----------------------------------------------------------------
    async def _schedule(self, stop: asyncio.Event) -> bool:
        spec = self.spec
        profile = build(spec.rate, spec.warmup_s + spec.duration_s, spec.seed)
        mono = time.monotonic_ns
        sleep = asyncio.sleep
        start = self.start_ns
        cap = spec.max_in_flight
        for ids, offsets in profile.arrivals(self.cfg.index, self.cfg.count):
            ids_l: list[int] = ids.tolist()
            due_a = offsets + start
            due_l: list[int] = due_a.tolist()
            kinds_l = self._mix.pick(len(ids_l))
            i, n = 0, len(ids_l)
            while i < n:
                if stop.is_set():
                    self._schedule_end_ns = mono()
                    return True
                now = mono()
                wait = due_l[i] - now
                if wait > 0:
                    if wait > LONG_WAIT_NS:  # low rates: notice a stop during the gap, not after it
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), wait / 1e9)
                    else:
                        await sleep(max(wait, MIN_SLEEP_NS) / 1e9)
                    continue
                # ops of one pass are counted in flight only once sent: a pass takes no more than the
                # cap leaves room for (so a burst cannot overshoot max_in_flight, nor the ring's size);
                # at the cap, a pass only books ops not sent
                room = cap - self.in_flight.live
                j = bisect_right(due_l, now, i, min(n, i + MAX_BATCH, i + room) if room > 0 else min(n, i + MAX_BATCH))
                if j - i >= FAST_PASS and self._plain_pass(ids_l, due_l, i, j):
                    self._dispatch_plain(ids_l, ids, due_l, due_a, i, j, now)
                else:
                    self._dispatch(ids_l, kinds_l, due_l, i, j, now)
                i = j
                await sleep(0)  # completions, timers and I/O get their turn between passes
        self._schedule_end_ns = mono()
        return stop.is_set()

    def _plain_pass(self, ids: list[int], due: list[int], i: int, j: int) -> bool:
        """Whether ops i..j-1 can take the whole-pass path: one op kind, no workload payloads,
        and every op has room in flight (slots are taken in id order: if the last fits, all do)."""
        if self.workload is not None or not self._mix.single:
            return False
        in_flight = self.in_flight
        return not in_flight.live or (in_flight.live < self.spec.max_in_flight and in_flight.room_for(ids[j - 1]))

    def _dispatch_plain(self, ids: list[int], ids_a: np.ndarray, due: list[int], due_a: np.ndarray,
                        i: int, j: int, now: int) -> None:
        """`_dispatch` for a pass of one kind where every op is sent: the books by whole-pass sums,
        the schedule lag of the pass by one numpy expression, one `Op` per op and nothing else."""
        books = self.books
        split = bisect_left(due, self.warmup_end_ns, i, j)  # the pass's ops before it are warm-up
        books.warmup[0] += split - i
        books.m_scheduled[0] += j - split
        books.scheduled[0] += j - i
        self.lag.extend((now - due_a[i:j]) // 1000)
        n = j - i
        ops = list(map(Op, ids[i:j], repeat(books.names[0], n), repeat(None, n), due[i:j], repeat(now, n)))
        if self._batch:
            self.in_flight.add_pass(ops, ids_a[i:j], due_a[i:j], now)
            self._hand_batch(ops)
        else:
            self._send_one_by_one(ops)

    def _dispatch(self, ids: list[int], kinds: list[int], due: list[int], i: int, j: int, now: int) -> None:
        """Send ops i..j-1, all due by `now`. Counters are inlined: this runs once per op."""
        books = self.books
        names = books.names
        sched, m_sched, warm = books.scheduled, books.m_scheduled, books.warmup
        warm_end = self.warmup_end_ns
        lag_add = self.lag.add
        workload = self.workload
        next_op = workload.next_op if workload is not None else None
        kind_of = books.kind
        cap = self.spec.max_in_flight
        in_flight = self.in_flight
        ops: list[Op] = []
        append = ops.append
        for k in range(i, j):
            d = due[k]
            kind = kinds[k]
            payload = None
            if next_op is not None:
                name, payload = next_op(names[kind])
                kind = kind_of(name)
            if d >= warm_end:
                m_sched[kind] += 1
            else:
                warm[kind] += 1
            sched[kind] += 1
            op_id = ids[k]
            if in_flight.live and (in_flight.live >= cap or not in_flight.room_for(op_id)):
                books.record_not_sent(kind, d >= warm_end, "in_flight_cap")
                continue
            lag_add((now - d) // 1000)
            append(Op(op_id, names[kind], payload, d, now))
        if ops:
            if self._batch:
                self._send_batch(ops)
            else:
                self._send_one_by_one(ops)

    def _send_one_by_one(self, ops: list[Op]) -> None:
        """A driver without `send_batch`: an `async def send` stepped in place, else a call per op."""
        if self.cfg.target.send_is_coroutine and self._eager is not None:
            self._send_eager(ops)
        else:
            self._send_each(ops)

    def _send_batch(self, ops: list[Op]) -> None:
        add = self.in_flight.add
        for op in ops:
            add(op)
        self._hand_batch(ops)

    def _hand_batch(self, ops: list[Op]) -> None:
        """`send_batch` for ops already in flight (so that completions during the call find them)."""
        try:
            self.driver.send_batch(ops)
        except Exception as exc:  # the whole batch failed to enqueue
            kind = type(exc).__name__
            for op in ops:
                self.complete(op.id, kind, None)

    def _send_eager(self, ops: list[Op]) -> None:
        """`async def send` drivers: each coroutine stepped in place; a Task only if it suspends.
        Synchronous answers are booked inline (the common case of a fast or enqueue-only send)."""
        send = self.driver.send
        eager = self._eager
        assert eager is not None
        step = eager.step_entered
        mono = time.monotonic_ns
        books = self.books
        index = books.index
        ok_n, m_ok = books.ok, books.m_ok
        response, service = books.response, books.service
        warm_end, timeout_ns = self.warmup_end_ns, self.timeout_ns
        plain = self.workload is None
        early = self._early  # completions the driver reported during its own send call
        answered = self._answered
        finish = self._finish
        eager.begin()
        try:
            for op in ops:
                self._sending = op.id
                try:
                    result, task = step(send(op))
                except Exception as exc:  # a send failure is an outcome, not a crash
                    self._sending = -1
                    answered(op, type(exc).__name__, mono())
                    continue
                self._sending = -1
                if task is not None:
                    self._carry(op, task)
                elif result is None:
                    self._later(op)
                elif plain and not early and result.error is None and result.completed_ns is None:
                    done = mono()
                    k = index[op.kind]
                    if done - op.intended_ns > timeout_ns:
                        finish(op, None, done)
                        continue
                    ok_n[k] += 1
                    if op.intended_ns >= warm_end:
                        m_ok[k] += 1
                        response[k].add((done - op.intended_ns) // 1000)
                        service[k].add((done - op.sent_ns) // 1000)
                else:
                    answered(op, result.error, result.completed_ns)
        finally:
            eager.end()

    def _send_each(self, ops: list[Op]) -> None:
        """Plain `def send` drivers (and any coroutine driver when eager stepping is unavailable)."""
        send = self.driver.send
        mono = time.monotonic_ns
        loop = asyncio.get_running_loop()
        for op in ops:
            self._sending = op.id
            try:
                result = send(op)
                if asyncio.iscoroutine(result):
                    self._sending = -1
                    self._carry(op, loop.create_task(result))
                    continue
            except Exception as exc:
                self._sending = -1
                self._answered(op, type(exc).__name__, mono())
                continue
            self._sending = -1
            if result is None:
                self._later(op)
            else:
                self._answered(op, result.error, result.completed_ns)

    def _carry(self, op: Op, task: asyncio.Task[Any]) -> None:
        self._carriers.add(task)
        task.add_done_callback(partial(self._carried_done, op))
        early = self._early.pop(op.id, None) if self._early else None
        if early is not None:  # answered during send, which then went on waiting: its coroutine need not go on
            task.cancel()
            self._finish(op, early[0], early[1] or time.monotonic_ns())
        else:
            self.in_flight.add(op, task)

    def _answered(self, op: Op, error: str | None, completed_ns: int | None) -> None:
        """`send` answered synchronously (a Result, or an exception's name as the error)."""
        early = self._early.pop(op.id, None) if self._early else None
        if early is not None:  # the driver completed it during send already: that came first
            self.late += 1
            error, completed_ns = early
        self._finish(op, error, completed_ns or time.monotonic_ns())

    def _later(self, op: Op) -> None:
        """The driver will complete `op` through its completions (or already did, during send)."""
        early = self._early.pop(op.id, None) if self._early else None
        if early is not None:
            self._finish(op, early[0], early[1] or time.monotonic_ns())
        else:
            self.in_flight.add(op)

    def _carried_done(self, op: Op, task: asyncio.Task[Any]) -> None:
        self._carriers.discard(task)
        if task.cancelled():
            return  # timed out (already booked), answered through completions, or the run is closing
        exc = task.exception()
        if exc is not None:
            self.complete(op.id, type(exc).__name__, None)
            return
        result: Result | None = task.result()
        if result is not None:
            self.complete(op.id, result.error, result.completed_ns)

    def complete(self, op_id: int, error: str | None, completed_ns: int | None) -> None:
        """An asynchronous completion (from the driver, or a carried coroutine's result)."""
        entry = self.in_flight.pop(op_id)
        if entry is None:
            if op_id == self._sending:
                self._early[op_id] = (error, completed_ns)
                return
            self.late += 1
            return
        op, task = entry
        if task is not None and not task.done():
            task.cancel()  # the driver answered for it: its coroutine need not go on
        self._finish(op, error, completed_ns or time.monotonic_ns())

    def complete_ok_many(self, op_ids: Sequence[int], done: int) -> None:
        """Several ops answered ok at one instant (a transport's batch of acks): the same books as
        `complete` op by op; a long batch of one kind's plain ops is booked with array operations."""
        in_flight = self.in_flight
        books = self.books
        if len(op_ids) >= VECTOR_ACKS and self.workload is None and len(books.names) == 1:
            popped = in_flight.pop_many(op_ids)
            if popped is not None:
                self._book_ok_slots(*popped, done)
                return
        pop = in_flight.pop
        index, ok_n, m_ok = books.index, books.ok, books.m_ok
        response, service = books.response, books.service
        warm_end, timeout_ns = self.warmup_end_ns, self.timeout_ns
        plain = self.workload is None
        for op_id in op_ids:
            entry = pop(op_id)
            if entry is None:
                self.late += 1
                continue
            op, task = entry
            if task is not None and not task.done():
                task.cancel()
            if not plain or done - op.intended_ns > timeout_ns:
                self._finish(op, None, done)
                continue
            k = index[op.kind]
            ok_n[k] += 1
            if op.intended_ns >= warm_end:
                m_ok[k] += 1
                response[k].add((done - op.intended_ns) // 1000)
                service[k].add((done - op.sent_ns) // 1000)

    def _book_ok_slots(self, slots: np.ndarray, late: int, done: int) -> None:
        """Book ops just removed from these ring slots as answered ok at `done` (one kind, no workload)."""
        in_flight, books = self.in_flight, self.books
        self.late += late
        intended = in_flight._intended[slots]
        age = done - intended
        over = age > self.timeout_ns
        if over.any():  # later than the timeout is a timeout, never ok
            for slot in slots[over].tolist():
                self._finish(in_flight.ops[slot], None, done)  # type: ignore[arg-type]
            in_flight.forget(slots)
            keep = ~over
            slots, intended, age = slots[keep], intended[keep], age[keep]
        else:
            in_flight.forget(slots)
        sent = in_flight._sent[slots]
        books.ok[0] += int(slots.size)
        measured = intended >= self.warmup_end_ns
        n = int(np.count_nonzero(measured))
        if n:
            if n < slots.size:
                age, sent = age[measured], sent[measured]
            books.m_ok[0] += n
            books.response[0].extend(age // 1000)
            books.service[0].extend((done - sent) // 1000)

    def _finish(self, op: Op, error: str | None, done: int) -> None:
        books = self.books
        k = books.index[op.kind]
        measured = op.intended_ns >= self.warmup_end_ns
        if done - op.intended_ns > self.timeout_ns:  # later than the timeout is a timeout, never ok
            books.record_timeout(k, measured, (done - op.intended_ns) // 1000, (done - op.sent_ns) // 1000)
            return
        if error is None:
            books.ok[k] += 1
            if measured:
                books.m_ok[k] += 1
                books.response[k].add((done - op.intended_ns) // 1000)
                books.service[k].add((done - op.sent_ns) // 1000)
        else:
            books.record_error(k, measured, error)
        if self.workload is not None:
            self.workload.on_result(op, error)

    # -- timeouts and drain --------------------------------------------------------------------
    def _expire(self, deadline_ns: int) -> None:
        now = time.monotonic_ns()
        books = self.books
        warm_end = self.warmup_end_ns
        timeout_ns = self.timeout_ns
        for op, task in self.in_flight.expire(deadline_ns):
            if task is not None and not task.done():
                task.cancel()  # written off: the driver must not keep working for it
            k = books.index[op.kind]
            # at its time of expiry, also when the end of the run writes it off sooner: a drain cut
            # short must not make the percentiles better
            expiry = max(now, op.intended_ns + timeout_ns)
            books.record_timeout(k, op.intended_ns >= warm_end, (expiry - op.intended_ns) // 1000,
                                 (expiry - op.sent_ns) // 1000)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            self._expire(time.monotonic_ns() - self.timeout_ns)

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.spec.drain_timeout_s
        while (self.in_flight.live or self._carriers) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    # -- intervals -----------------------------------------------------------------------------
    async def _ticker(self) -> None:
        """Folds the recorders every 50 ms (small, frequent folds keep the scheduler on time)
        and emits an interval report at every second of the schedule."""
        folds_per_tick = round(1 / FOLD_EVERY_S)
        while True:
            self._tick += 1
            boundary = self.start_ns + self._tick * 1_000_000_000
            for n in range(1, folds_per_tick):
                await asyncio.sleep(max(0.0, (boundary - 1_000_000_000 + n * int(FOLD_EVERY_S * 1e9)
                                              - time.monotonic_ns()) / 1e9))
                for rec in self._recorders():
                    rec.fold()
                    await asyncio.sleep(0)  # one recorder per loop turn: sends due meanwhile go out
            await asyncio.sleep(max(0.0, (boundary - time.monotonic_ns()) / 1e9))
            self._emit_interval()

    def _recorders(self) -> list[Recorder]:
        return [*self.books.response, *self.books.service, self.lag, *self.extra.values()]

    def _emit_interval(self, final: bool = False) -> None:
        books = self.books
        kinds = {}
        for k, name in enumerate(books.names):
            resp, svc = books.response[k].take(), books.service[k].take()
            if resp is not None or svc is not None:
                kinds[name] = KindInterval(resp, svc)
        extra = {m: s for m, rec in self.extra.items() if (s := rec.take()) is not None}
        totals = books.totals()
        counts = {key: totals[key] - self._last_totals[key] for key in totals}
        self._last_totals = totals
        t = max(0, self._tick - 1)  # the interval in progress, also for the final report
        self.emit(IntervalReport(self.cfg.index, int(t), final, counts, self.in_flight.live, kinds,
                                 self.lag.take(), extra, dict(self.gauges), self._kind_counts()))

    def _kind_counts(self) -> dict[str, dict[str, int]]:
        """Per kind, the outcomes reached since the last interval report (kinds without any left out)."""
        books, last, out = self.books, self._last_kind, {}
        for k, name in enumerate(books.names):
            now = (books.ok[k], books.error[k], books.timeout[k], books.not_sent[k])
            if k == len(last):
                last.append((0, 0, 0, 0))
            if now != last[k]:
                out[name] = dict(zip(OUTCOMES, (a - b for a, b in zip(now, last[k], strict=True)), strict=True))
                last[k] = now
        return out

    async def _verify(self) -> list[str]:
        try:
            if self.workload is not None and hasattr(self.workload, "verify"):
                return list(await self.workload.verify(self.driver))
            if self.cfg.target.has_verify:
                return list(await self.driver.verify())
        except Exception as exc:
            log.exception("verification failed")
            return [f"verification crashed: {type(exc).__name__}: {exc}"]
        return []

