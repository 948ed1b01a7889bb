"""Merges interval and final reports from the generator processes into the run's results.

HDR histograms add exactly, so merging N processes loses nothing. An interval is
written (hlog lines, one timeseries line) once every process has reported it, or
at the end for processes that never did (a crashed one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from harness.books import add_counts, balanced
from harness.recorder import merge_encoded, new_histogram, stats, values_at
from harness.schedule import rate_at
from harness.spec import Spec

COUNT_KEYS = ("scheduled", "sent", "ok", "error", "timeout", "not_sent")


class _Interval:
    __slots__ = ("counts", "extra", "gauges", "in_flight", "kinds", "lag", "reported")

    def __init__(self) -> None:
        self.reported: set[int] = set()
        self.counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
        self.in_flight = 0
        self.kinds: dict[str, dict[str, HdrHistogram]] = {}
        self.lag = new_histogram()
        self.extra: dict[str, HdrHistogram] = {}
        self.gauges: dict[str, float] = {}


def interval_report(process: int, t: int, final: bool, counts: dict[str, int], in_flight: int,
                    kinds: dict[str, dict[str, str | None]], lag: str | None, extra: dict[str, str],
                    gauges: dict[str, float]) -> dict[str, Any]:
    """One process's interval, as `Collector.accept` reads it (histograms HDR-encoded); built here
    so that the harness's generators and the Locust recorder send the same thing."""
    return {
        "type": "interval",
        "process": process,
        "t": t,
        "final": final,
        "counts": counts,
        "in_flight": in_flight,
        "kinds": kinds,
        "lag": lag,
        "extra": extra,
        "gauges": gauges,
    }


class Collector:
    def __init__(
        self,
        spec: Spec,
        run_dir: Path,
        processes: int,
        start_epoch_ms: int,
        on_interval: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.processes = processes
        self.start_epoch_ms = start_epoch_ms
        self.on_interval = on_interval
        self.pending: dict[int, _Interval] = {}
        self.totals: dict[str, dict[str, HdrHistogram]] = {}
        self.lag_total = new_histogram()
        self.extra_totals: dict[str, HdrHistogram] = {}
        self.finals: list[dict[str, Any]] = []
        self.pids: dict[str, int] = {}
        self.last_t = -1
        self._logs: dict[str, tuple[IO[str], HistogramLogWriter]] = {}
        self._timeseries = (run_dir / "timeseries.jsonl").open("wb")
        self.live: dict[str, Any] = {"ok": 0, "error": 0, "timeout": 0, "not_sent": 0, "scheduled": 0}

    # -- intake -------------------------------------------------------------------------------
    def accept(self, report: dict[str, Any]) -> None:
        if report["type"] == "final":
            self.finals.append(report)
            self.pids.update(report.get("pids", {}))
            return
        t = report["t"]
        iv = self.pending.get(t)
        if iv is None:
            iv = self.pending[t] = _Interval()
        iv.reported.add(report["process"])
        for key, n in report["counts"].items():
            iv.counts[key] = iv.counts.get(key, 0) + n
        iv.in_flight += report["in_flight"]
        for kind, encs in report["kinds"].items():
            slot = iv.kinds.setdefault(kind, {"response": new_histogram(), "service": new_histogram()})
            for metric in ("response", "service"):
                if encs[metric]:
                    merge_encoded(slot[metric], encs[metric])
        if report["lag"]:
            merge_encoded(iv.lag, report["lag"])
        for metric, enc in report["extra"].items():
            merge_encoded(iv.extra.setdefault(metric, new_histogram()), enc)
        for name, value in report["gauges"].items():
            iv.gauges[name] = max(iv.gauges.get(name, value), value)
        if len(iv.reported) >= self.processes and not report.get("final"):
            self._flush_ready(t)

    def _flush_ready(self, upto: int) -> None:
        for t in sorted(k for k in self.pending if k <= upto):
            self._write_interval(t, self.pending.pop(t))

    # -- output -------------------------------------------------------------------------------
    def _log(self, name: str) -> HistogramLogWriter:
        entry = self._logs.get(name)
        if entry is None:
            fh = (self.run_dir / f"{name}.hlog").open("w", encoding="ascii")
            writer = HistogramLogWriter(fh)
            writer.output_comment(f"edabench interval log: {name}, values in microseconds")
            writer.output_log_format_version()
            # hdrh's own output_start_time is broken (it treats ms as s); same line, written here
            start = datetime.fromtimestamp(self.start_epoch_ms / 1000, UTC).isoformat(" ")
            fh.write(f"#[StartTime: {self.start_epoch_ms / 1000:.3f} (seconds since epoch), {start}]\n")
            writer.output_legend()
            entry = self._logs[name] = (fh, writer)
        return entry[1]

    def _write_interval(self, t: int, iv: _Interval) -> None:
        self.last_t = max(self.last_t, t)
        start_s, end_s = float(t), float(t + 1)
        ops: dict[str, Any] = {}
        for kind, hists in sorted(iv.kinds.items()):
            total = self.totals.setdefault(kind, {"response": new_histogram(), "service": new_histogram()})
            for metric, hist in hists.items():
                self._log(f"{kind}.{metric}").output_interval_histogram(hist, start_s, end_s, 1000.0)
                _add(total[metric], hist)
            resp = hists["response"]
            if resp.get_total_count():
                p50, p99 = values_at(resp, (50.0, 99.0))
                ops[kind] = {"count": resp.get_total_count(), "p50_us": p50, "p99_us": p99,
                             "max_us": resp.get_max_value()}
        self._log("schedule-lag").output_interval_histogram(iv.lag, start_s, end_s, 1000.0)
        _add(self.lag_total, iv.lag)
        observed = {}
        for metric, hist in iv.extra.items():
            self._log(metric).output_interval_histogram(hist, start_s, end_s, 1000.0)
            _add(self.extra_totals.setdefault(metric, new_histogram()), hist)
            p50, p99 = values_at(hist, (50.0, 99.0))
            observed[metric] = {"count": hist.get_total_count(), "p50_us": p50, "p99_us": p99,
                                "max_us": hist.get_max_value()}
        total_s = self.spec.warmup_s + self.spec.duration_s
        line = {
            "t": t,
            "warmup": t < self.spec.warmup_s,
            "target_rate": round(rate_at(self.spec.rate, t + 0.5, total_s), 3) if t < total_s else 0.0,
            **iv.counts,
            "in_flight": iv.in_flight,
            "ops": ops,
            "lag_p99_us": values_at(iv.lag, (99.0,))[0] if iv.lag.get_total_count() else None,
            "observed": observed,
            "extra": iv.gauges,
        }
        self._timeseries.write(orjson.dumps(line) + b"\n")
        self._timeseries.flush()  # live readers (dashboards, tail -f) see every second
        for key in ("ok", "error", "timeout", "not_sent", "scheduled"):
            self.live[key] += iv.counts.get(key, 0)
        if self.on_interval is not None:
            self.on_interval(line)

    def close(self) -> None:
        self._flush_ready(1 << 40)
        for fh, _ in self._logs.values():
            fh.close()
        self._timeseries.close()

    # -- summary ------------------------------------------------------------------------------
    def summary(self, measured_s: float, interrupted: bool | None = None) -> dict[str, Any]:
        """summary.json content; see docs/results.md.

        A run is interrupted when a generator's schedule was cut short (Ctrl-C during the drain
        does not make a finished schedule partial)."""
        if interrupted is None:
            interrupted = any(f.get("interrupted") for f in self.finals)
        counts_by_kind: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        late = 0
        for final in self.finals:
            late += final.get("late_completions", 0)
            problems.extend(final.get("problems", []))
            for kind, counts in final["books"].items():
                counts_by_kind[kind] = add_counts(counts_by_kind.get(kind, {}), counts)
        missing = self.processes - len(self.finals)
        if missing:
            problems.append(f"{missing} generator process(es) did not report their books")
        measured_s = max(measured_s, 1e-9)
        ops: dict[str, Any] = {}
        overall_counts: dict[str, Any] = {}
        overall_resp, overall_svc = new_histogram(), new_histogram()
        for kind in sorted(counts_by_kind):
            counts = counts_by_kind[kind]
            overall_counts = add_counts(overall_counts, counts)
            hists = self.totals.get(kind, {"response": new_histogram(), "service": new_histogram()})
            _add(overall_resp, hists["response"])
            _add(overall_svc, hists["service"])
            ops[kind] = self._op_block(counts, hists["response"], hists["service"], measured_s)
        overall = (
            self._op_block(overall_counts, overall_resp, overall_svc, measured_s) if overall_counts else {}
        )
        books_ok = bool(counts_by_kind) and all(balanced(c) for c in counts_by_kind.values()) and not missing
        return {
            "schema": "edabench.summary/1",
            "name": self.spec.name,
            "closed_loop": False,
            "interrupted": interrupted,
            "books_balanced": books_ok,
            "measured_s": round(measured_s, 3),
            "processes": self.processes,
            "late_completions": late,
            "ops": ops,
            "overall": overall,
            "schedule_lag_us": stats(self.lag_total),
            "observed_us": {m: stats(h) for m, h in sorted(self.extra_totals.items())},
            "verify": {"problems": problems},
            "slo": self.spec.slo.model_dump(exclude_none=True, exclude_defaults=True),
        }

    @staticmethod
    def _op_block(
        counts: dict[str, Any], resp: HdrHistogram, svc: HdrHistogram, measured_s: float
    ) -> dict[str, Any]:
        m = counts["measured"]
        target = m["scheduled"] / measured_s
        achieved = m["ok"] / measured_s
        failed = m["error"] + m["timeout"] + m.get("not_sent", 0)  # an op not sent is not a success
        return {
            "counts": counts,
            "target_rate": round(target, 3),
            "achieved_rate": round(achieved, 3),
            "error_rate": round(failed / m["scheduled"], 6) if m["scheduled"] else 0.0,
            "response_time_us": stats(resp),
            "service_time_us": stats(svc),
        }


def _add(into: HdrHistogram, other: HdrHistogram) -> None:
    """hdrh's add() of an empty histogram resets the minimum to 0: skip empty ones."""
    if other.get_total_count():
        into.add(other)


def write_json(path: Path, data: Any) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
