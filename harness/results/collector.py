"""Merges the generator processes' reports into the run's results, as the run goes.

HDR histograms add exactly, so merging N processes loses nothing. An interval is written (one
hlog line per histogram, one timeseries line) once every process has reported it, or when it is
too old to wait for (a crashed process), and then forgotten: only the running totals stay in
memory, whatever the run's length. The histograms written are reused scratch objects.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from harness.results.hdr import Sparse, add, merge, new_histogram, reset, values_at
from harness.results.messages import COUNT_KEYS, FinalReport, IntervalReport

MAX_WAIT_INTERVALS = 10  # an interval a process has not reported after this many newer ones is written


class _Pending:
    __slots__ = ("counts", "extra", "gauges", "in_flight", "kind_counts", "kinds", "lag", "reported")

    def __init__(self) -> None:
        self.reported: set[int] = set()
        self.counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
        self.in_flight = 0
        self.kinds: dict[str, dict[str, list[Sparse | None]]] = {}
        self.lag: list[Sparse | None] = []
        self.extra: dict[str, list[Sparse | None]] = {}
        self.gauges: dict[str, float] = {}
        self.kind_counts: dict[str, dict[str, int]] = {}


class _Log:
    """One interval log file and its scratch histogram."""

    __slots__ = ("fh", "scratch", "total", "writer")

    def __init__(self, path: Path, name: str, start_epoch_ms: int) -> None:
        self.fh: IO[str] = path.open("w", encoding="ascii")
        self.writer = HistogramLogWriter(self.fh)
        self.writer.output_comment(f"edabench interval log: {name}, values in microseconds")
        self.writer.output_log_format_version()
        # hdrh's own output_start_time treats ms as s; the same line, written here
        start = datetime.fromtimestamp(start_epoch_ms / 1000, UTC).isoformat(" ")
        self.fh.write(f"#[StartTime: {start_epoch_ms / 1000:.3f} (seconds since epoch), {start}]\n")
        self.writer.output_legend()
        self.scratch = new_histogram()
        self.total = new_histogram()

    def write(self, part: Sparse, start_s: float, end_s: float) -> HdrHistogram:
        reset(self.scratch)
        # hdrh's writer takes a start of 0.0 s as "none given" and reads the histogram's own stamp
        # instead (after a reset, sys.maxsize): stamp it, relative to the log's start, as given
        self.scratch.set_start_time_stamp(start_s * 1000)
        self.scratch.set_end_time_stamp(end_s * 1000)
        part.add_to(self.scratch)
        self.writer.output_interval_histogram(self.scratch, start_s, end_s, 1000.0)
        self.fh.flush()
        add(self.total, self.scratch)
        return self.scratch


class Collector:
    def __init__(self, run_dir: Path, processes: int, start_epoch_ms: int, total_s: float,
                 rate_at: Callable[[float], float], warmup_s: float,
                 on_interval: Callable[[dict[str, Any]], None] | None = None,
                 on_histogram: Callable[[str, HdrHistogram], None] | None = None) -> None:
        self.run_dir = run_dir
        self.processes = processes
        self.start_epoch_ms = start_epoch_ms
        self.total_s = total_s
        self.rate_at = rate_at
        self.warmup_s = warmup_s
        self.on_interval = on_interval
        self.on_histogram = on_histogram
        self.pending: dict[int, _Pending] = {}
        self.finals: list[FinalReport] = []
        self.pids: dict[str, int] = {}
        self.last_t = -1
        self.newest_t = -1
        self.clipped = 0
        self._logs: dict[str, _Log] = {}
        self._timeseries = (run_dir / "timeseries.jsonl").open("wb")
        self.live: dict[str, int] = dict.fromkeys(("ok", "error", "timeout", "not_sent", "scheduled"), 0)
        self.lag_intervals: list[tuple[int, int]] = []  # (t, lag p99 µs) of measured intervals, for the verdict
        #: schedule lag of the measured window only: warm-up ops are not measured, so their lag judges nothing
        self.measured_lag = new_histogram()
        self.kinds_seen: set[str] = set()
        self.extra_seen: set[str] = set()

    # -- intake ---------------------------------------------------------------------------------
    def accept(self, report: IntervalReport | FinalReport) -> None:
        if isinstance(report, FinalReport):
            self.finals.append(report)
            self.pids.update(report.pids)
            return
        t = report.t
        iv = self.pending.get(t)
        if iv is None:
            iv = self.pending[t] = _Pending()
        iv.reported.add(report.process)
        for key, n in report.counts.items():
            iv.counts[key] = iv.counts.get(key, 0) + n
        iv.in_flight += report.in_flight
        for kind, parts in report.kinds.items():
            slot = iv.kinds.setdefault(kind, {"response": [], "service": []})
            slot["response"].append(parts.response)
            slot["service"].append(parts.service)
        iv.lag.append(report.lag)
        for metric, part in report.extra.items():
            iv.extra.setdefault(metric, []).append(part)
        for name, value in report.gauges.items():
            iv.gauges[name] = max(iv.gauges.get(name, value), value)
        for kind, outcomes in report.kind_counts.items():
            into = iv.kind_counts.setdefault(kind, {})
            for key, n in outcomes.items():
                into[key] = into.get(key, 0) + n
        self.newest_t = max(self.newest_t, t)
        if len(iv.reported) >= self.processes and not report.final:
            self._flush(upto=t)
        stale = self.newest_t - MAX_WAIT_INTERVALS
        if any(k <= stale for k in self.pending):
            self._flush(upto=stale)

    def _flush(self, upto: int) -> None:
        for t in sorted(k for k in self.pending if k <= upto):
            self._write_interval(t, self.pending.pop(t))

    # -- output ---------------------------------------------------------------------------------
    def _write(self, name: str, part: Sparse, start_s: float, end_s: float) -> HdrHistogram:
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = _Log(self.run_dir / f"{name}.hlog", name, self.start_epoch_ms)
        hist = log.write(part, start_s, end_s)
        if self.on_histogram is not None:
            self.on_histogram(name, hist)
        return hist

    def _write_interval(self, t: int, iv: _Pending) -> None:
        self.last_t = max(self.last_t, t)
        start_s, end_s = float(t), float(t + 1)
        ops: dict[str, Any] = {}
        for kind, parts in sorted(iv.kinds.items()):
            self.kinds_seen.add(kind)
            for metric in ("response", "service"):
                merged = merge(parts[metric])
                if merged is None:
                    continue
                self.clipped += merged.clipped
                hist = self._write(f"{kind}.{metric}", merged, start_s, end_s)
                if metric == "response":
                    p50, p99 = values_at(hist, (50.0, 99.0))
                    ops[kind] = {"count": hist.get_total_count(), "p50_us": p50, "p99_us": p99,
                                 "max_us": hist.get_max_value()}
        lag = merge(iv.lag)
        lag_p99 = None
        if lag is not None:
            hist = self._write("schedule-lag", lag, start_s, end_s)
            lag_p99 = values_at(hist, (99.0,))[0]
            if t >= self.warmup_s:
                self.lag_intervals.append((t, lag_p99))
                add(self.measured_lag, hist)
        observed = {}
        for metric, parts in iv.extra.items():
            merged = merge(parts)
            if merged is None:
                continue
            self.extra_seen.add(metric)
            hist = self._write(metric, merged, start_s, end_s)
            p50, p99 = values_at(hist, (50.0, 99.0))
            observed[metric] = {"count": hist.get_total_count(), "p50_us": p50, "p99_us": p99,
                                "max_us": hist.get_max_value()}
        line = {
            "t": t,
            "warmup": t < self.warmup_s,
            "target_rate": round(self.rate_at(t + 0.5), 3) if t < self.total_s else 0.0,
            **iv.counts,
            "in_flight": iv.in_flight,
            "ops": ops,
            "lag_p99_us": lag_p99,
            "observed": observed,
            "extra": iv.gauges,
            "kind_counts": iv.kind_counts,  # per kind: outcomes reached in this second (kinds with any)
        }
        self._timeseries.write(orjson.dumps(line) + b"\n")
        self._timeseries.flush()  # live readers (dashboards, tail -f) see every second
        for key in self.live:
            self.live[key] += iv.counts.get(key, 0)
        if self.on_interval is not None:
            self.on_interval(line)

    def close(self) -> None:
        self._flush(1 << 40)
        for log in self._logs.values():
            log.fh.close()
        self._timeseries.close()

    # -- totals, for the summary ----------------------------------------------------------------
    def total(self, name: str) -> HdrHistogram:
        """The whole run's histogram of one log ("<kind>.response", "schedule-lag", a metric)."""
        log = self._logs.get(name)
        return log.total if log is not None else new_histogram()

    def metrics(self) -> list[str]:
        """Names of the extra (observed) metrics, in order."""
        return sorted(self.extra_seen)
