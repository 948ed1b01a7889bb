"""The books and HDR buffers of one Locust process, in the harness's own report format.

Locust's statistics measure from the actual send and round what they keep; this
recorder sees the same request events and keeps exact µs samples in the harness's
batched buffers instead, measuring open-model ops from their intended time. Once a
second it emits an interval report, at the end a final one, both shaped exactly like
a generator process's reports, so `harness.collector.Collector` merges them unchanged.

Nothing here imports Locust: it is plain bookkeeping, testable without gevent.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from hdrh.histogram import HdrHistogram

from harness.books import KindBooks
from harness.collector import interval_report
from harness.recorder import LatencyBuffer, encode, new_histogram

Emit = Callable[[dict[str, Any]], None]


class OpenOp:
    """One scheduled arrival of an open-model user; resolved by its first request (or its end)."""

    __slots__ = ("intended_ns", "kind", "resolved", "started_ns", "task")

    def __init__(self, task: str, intended_ns: int) -> None:
        self.task = task
        self.intended_ns = intended_ns
        self.started_ns = 0
        self.kind: str | None = None
        self.resolved = False


def error_kind(exception: BaseException | None, response: Any = None) -> str | None:
    """A short error kind: an exception's own `kind` text, "http_503" for HTTP statuses, else the class name."""
    if exception is None:
        return None
    kind = getattr(exception, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and status >= 400:
        return f"http_{status}"
    return type(exception).__name__


class ProcessRecorder:
    """Per-process accounting: every scheduled op ends ok, error, timeout or not-sent."""

    def __init__(self, process: int, warmup_s: float, timeout_s: float, emit: Emit) -> None:
        self.process = process
        self.warmup_s = warmup_s
        self.timeout_ns = int(timeout_s * 1e9)
        self.emit = emit
        self.books: dict[str, KindBooks] = {}
        self.in_flight: OrderedDict[OpenOp, None] = OrderedDict()
        self.extra: dict[str, LatencyBuffer] = {}
        self.gauges: dict[str, float] = {}
        self.lag = LatencyBuffer()
        #: this process's own totals per kind, shipped with the final report so merges can be audited
        self.totals: dict[str, dict[str, HdrHistogram]] = {}
        self.interval: Counter[str] = Counter()
        self.arrivals = 0
        self.late = 0
        self.closed_requests = 0
        self.start_ns = 0
        self.warmup_end_ns = 0
        self.tick = 0
        self.started = False
        self.finished = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, start_ns: int | None = None) -> None:
        self.start_ns = start_ns or time.monotonic_ns()
        self.warmup_end_ns = self.start_ns + int(self.warmup_s * 1e9)
        self.started = True

    def _kind(self, name: str) -> KindBooks:
        books = self.books.get(name)
        if books is None:
            books = self.books[name] = KindBooks(name)
        return books

    def _count_scheduled(self, books: KindBooks, intended_ns: int) -> bool:
        books.scheduled += 1
        measured = intended_ns >= self.warmup_end_ns
        if measured:
            books.m_scheduled += 1
        else:
            books.warmup += 1
        return measured

    def _outcome(self, books: KindBooks, measured: bool, error: str | None, resp_us: int, svc_us: int) -> None:
        if error is None:
            books.ok += 1
            self.interval["ok"] += 1
            if measured:
                books.m_ok += 1
                books.response.add(resp_us)
                books.service.add(svc_us)
        else:
            books.error += 1
            books.errors[error] += 1
            self.interval["error"] += 1
            if measured:
                books.m_error += 1

    # -- open-model ops ---------------------------------------------------------------------------
    def arrive(self, task: str, intended_ns: int, max_in_flight: int) -> OpenOp | None:
        """An arrival at its intended time; None when it cannot be sent (counted as not-sent)."""
        self.arrivals += 1
        self.interval["scheduled"] += 1
        if len(self.in_flight) >= max_in_flight:
            books = self._kind(task)
            if self._count_scheduled(books, intended_ns):
                books.m_not_sent += 1
            books.not_sent += 1
            books.not_sent_reasons["in_flight_cap"] += 1
            self.interval["not_sent"] += 1
            return None
        op = OpenOp(task, intended_ns)
        self.in_flight[op] = None
        return op

    def op_started(self, op: OpenOp) -> None:
        op.started_ns = now = time.monotonic_ns()
        self.lag.add((now - op.intended_ns) // 1000)
        self.interval["sent"] += 1

    def op_ended(self, op: OpenOp, exception: BaseException | None) -> None:
        """The op's task returned or raised; resolves it if no request already did."""
        if op.resolved:
            return
        now = time.monotonic_ns()
        err = f"task_{type(exception).__name__}" if exception is not None else None
        self._resolve(op, op.task, err, (now - op.intended_ns) // 1000, (now - (op.started_ns or now)) // 1000)

    def _resolve(self, op: OpenOp, kind: str, error: str | None, resp_us: int, svc_us: int) -> None:
        op.resolved = True
        op.kind = kind
        self.in_flight.pop(op, None)
        books = self._kind(kind)
        measured = self._count_scheduled(books, op.intended_ns)
        self._outcome(books, measured, error, resp_us, svc_us)

    # -- request events (hot path) ---------------------------------------------------------------
    def on_request(self, name: str, response_time_ms: float, error: str | None, op: OpenOp | None) -> None:
        now = time.monotonic_ns()
        svc_us = int(response_time_ms * 1000)
        if op is not None and op.kind is None:
            if op.resolved:  # timed out before its first answer
                self.late += 1
                op.kind = name
                return
            self._resolve(op, name, error, (now - op.intended_ns) // 1000, svc_us)
            return
        # a request not scheduled by an arrival: closed loop, measured from its actual send
        self.closed_requests += 1
        books = self._kind(name)
        self.interval["scheduled"] += 1
        self.interval["sent"] += 1
        sent_ns = now - svc_us * 1000
        measured = self._count_scheduled(books, sent_ns)
        self._outcome(books, measured, error, svc_us, svc_us)

    def observe(self, metric: str, value_us: int) -> None:
        """A sample of an extra latency (e.g. produce-to-persisted), kept as its own histogram."""
        buf = self.extra.get(metric)
        if buf is None:
            buf = self.extra[metric] = LatencyBuffer()
        buf.add(int(value_us))

    def gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value

    # -- timeouts ----------------------------------------------------------------------------------
    def expire(self, deadline_ns: int) -> None:
        """Ops intended at or before `deadline_ns` and still unanswered count as timeouts."""
        in_flight = self.in_flight
        while in_flight:
            op = next(iter(in_flight))
            if op.intended_ns > deadline_ns:
                return
            del in_flight[op]
            op.resolved = True
            books = self._kind(op.kind or op.task)
            measured = self._count_scheduled(books, op.intended_ns)
            books.timeout += 1
            self.interval["timeout"] += 1
            if measured:
                books.m_timeout += 1

    def sweep(self) -> None:
        self.expire(time.monotonic_ns() - self.timeout_ns)

    # -- reports -------------------------------------------------------------------------------------
    def emit_interval(self, final: bool = False) -> dict[str, Any]:
        """Fold this second's samples into histograms and emit them (the Collector's interval shape)."""
        kinds: dict[str, Any] = {}
        for kind, books in self.books.items():
            resp, svc = new_histogram(), new_histogram()
            books.response.drain_into(resp)
            books.service.drain_into(svc)
            if not resp.get_total_count() and not svc.get_total_count():
                continue  # an empty histogram added to a total would reset its min to 0
            total = self.totals.setdefault(kind, {"response": new_histogram(), "service": new_histogram()})
            total["response"].add(resp)
            total["service"].add(svc)
            kinds[kind] = {
                "response": encode(resp) if resp.get_total_count() else None,
                "service": encode(svc) if svc.get_total_count() else None,
            }
        lag = new_histogram()
        self.lag.drain_into(lag)
        extra = {}
        for metric, buf in self.extra.items():
            h = new_histogram()
            buf.drain_into(h)
            if h.get_total_count():
                extra[metric] = encode(h)
        if final:
            t = max(0, (time.monotonic_ns() - self.start_ns) // 1_000_000_000)
        else:
            t = self.tick
            self.tick += 1
        report = interval_report(self.process, int(t), final, dict(self.interval), len(self.in_flight), kinds,
                                 encode(lag) if lag.get_total_count() else None, extra, dict(self.gauges))
        self.interval.clear()
        self.emit(report)
        return report

    def finish(self, problems: list[str] | None = None, interrupted: bool = False) -> dict[str, Any]:
        """Expire what is still in flight, emit the last interval and the books (once)."""
        self.finished = True
        self.expire(1 << 62)
        self.emit_interval(final=True)
        resolved = sum(b.scheduled for b in self.books.values()) - self.closed_requests
        problems = list(problems or [])
        if resolved != self.arrivals:
            problems.append(f"process {self.process}: {self.arrivals} arrivals but {resolved} outcomes")
        final = {
            "type": "final",
            "process": self.process,
            "books": {k: b.as_dict() for k, b in self.books.items()},
            "late_completions": self.late,
            "problems": problems,
            "interrupted": interrupted,
            "closed_requests": self.closed_requests,
            "arrivals": self.arrivals,
            "totals": {k: {m: encode(h) for m, h in t.items()} for k, t in self.totals.items()},
            "pids": {},
        }
        self.emit(final)
        return final
