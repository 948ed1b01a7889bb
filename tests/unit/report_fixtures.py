"""Fabricated run directories in the documented format, for report tests and benchmarks.

The shape follows docs/results.md: run.json, summary.json, per-kind response and service
interval logs (HdrHistogram log format 1.2, µs), schedule-lag.hlog, timeseries.jsonl and
resources.jsonl. Latencies are log-normal around a base, with a periodic stall: ops
scheduled during a frozen second complete when it ends, so their response times spread
evenly from zero to the stall length (what an open-loop harness records). Stall seconds
also carry errors and timeouts. Numbers in summary.json come from the same histograms,
through hdrh's own percentile code, so a report can be checked against them exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9, "p99_99": 99.99}


def new_hist() -> HdrHistogram:
    return HdrHistogram(1, 3_600_000_000, 3)


def record_many(hist: HdrHistogram, values: np.ndarray) -> None:
    """Add µs samples in one numpy step (HdrHistogram's bucket arithmetic); equals record_value."""
    if values.size == 0:
        return
    v = np.clip(values.astype(np.int64), 0, hist.highest_trackable_value)
    _, exp = np.frexp((v | hist.sub_bucket_mask).astype(np.float64))
    bucket = exp.astype(np.int64) - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub = v >> (bucket + hist.unit_magnitude)
    index = ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + (sub - hist.sub_bucket_half_count)
    binned = np.bincount(index)
    counts = np.ctypeslib.as_array(hist.counts)
    counts[: binned.size] += binned.astype(counts.dtype)
    hist.total_count += int(v.size)
    hist.min_value = min(hist.min_value, int(v.min()))
    hist.max_value = max(hist.max_value, int(v.max()))


def stats(hist: HdrHistogram) -> dict[str, Any]:
    if hist.get_total_count() == 0:
        return {"count": 0}
    vals = hist.get_percentile_to_value_dict(list(PERCENTILES.values()))
    out: dict[str, Any] = {
        "count": hist.get_total_count(),
        "min": hist.get_min_value(),
        "mean": round(hist.get_mean_value(), 1),
    }
    out.update({k: vals[p] for k, p in PERCENTILES.items()})
    out["max"] = hist.get_max_value()
    return out


@dataclass
class RunShape:
    """What to fabricate. Rates are per kind, ops/s."""

    name: str = "echo-http"
    kinds: tuple[str, ...] = ("echo",)
    rate: float = 200.0
    duration_s: int = 30
    warmup_s: int = 5
    base_us: int = 20_000
    stall_every_s: int = 10  # 0: no stall
    stall_us: int = 1_000_000
    errors_per_stall: int = 4
    timeouts_per_stall: int = 2
    error_kind: str = "http_503"
    closed_loop: bool = False
    interrupted: bool = False
    slo: dict[str, Any] = field(default_factory=lambda: {"p99_ms": 100})
    started_at: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 18, 15, tzinfo=UTC))
    seed: int = 1
    gauges: bool = True
    resources: bool = True
    scale_us: float = 1.0  # multiply every latency (a slower build for comparisons)
    git_sha: str = "abc123"
    observed: tuple[str, ...] = ()  # extra driver histograms, e.g. ("read_your_writes_lag",)
    # The resource sampler starts with the run, the schedule (and the logs' StartTime) this much later,
    # as when the harness first brings up services and the target.
    resources_lead_s: float = 0.0


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _open_log(path: Path, start: datetime) -> tuple[Any, HistogramLogWriter]:
    fh = path.open("w", encoding="ascii")
    writer = HistogramLogWriter(fh)
    writer.output_log_format_version()
    fh.write(f"#[StartTime: {start.timestamp():.3f} (seconds since epoch), {_iso(start)}]\n")
    writer.output_legend()
    return fh, writer


def make_run(root: Path, shape: RunShape | None = None, **overrides: Any) -> Path:
    """Write one run directory under `root` and return its path."""
    s = shape or RunShape()
    for key, value in overrides.items():
        setattr(s, key, value)
    rng = np.random.default_rng(s.seed)
    run_id = f"{s.started_at.strftime('%Y%m%dT%H%M%SZ')}-{s.name}"
    run_dir = root / run_id.replace("/", "_").replace("<", "_").replace(">", "_")
    run_dir.mkdir(parents=True)
    total_s = s.warmup_s + s.duration_s
    n_per_s = int(s.rate)

    logs = {}
    schedule_start = s.started_at + timedelta(seconds=s.resources_lead_s)
    for kind in s.kinds:
        safe = kind.replace("/", "_")
        for which in ("response", "service"):
            logs[(kind, which)] = _open_log(run_dir / f"{safe}.{which}.hlog", schedule_start)
    lag_fh, lag_writer = _open_log(run_dir / "schedule-lag.hlog", schedule_start)
    extra_logs = {m: _open_log(run_dir / f"{m}.hlog", schedule_start) for m in s.observed}
    extra_merged = {m: new_hist() for m in s.observed}

    merged = {(k, w): new_hist() for k in s.kinds for w in ("response", "service")}
    lag_merged = new_hist()
    zero = {"scheduled": 0, "ok": 0, "error": 0, "timeout": 0, "not_sent": 0, "warmup": 0}
    counts = {k: dict(zero) for k in s.kinds}
    ts_lines: list[dict[str, Any]] = []
    res_lines: list[dict[str, Any]] = []
    consumer_lag = 0

    for t in range(total_s):
        warm = t < s.warmup_s
        stall = bool(s.stall_every_s) and t % s.stall_every_s == s.stall_every_s - 1
        line = {"t": t, "warmup": warm, "target_rate": s.rate * len(s.kinds), "scheduled": 0, "sent": 0,
                "ok": 0, "error": 0, "timeout": 0, "not_sent": 0, "in_flight": 0, "ops": {},
                "lag_p99_us": 0, "extra": {}}
        lag_h = new_hist()
        for kind in s.kinds:
            n_err = s.errors_per_stall if stall else 0
            n_to = s.timeouts_per_stall if stall else 0
            n_ok = n_per_s - n_err - n_to
            resp = s.base_us * np.exp(0.35 * rng.standard_normal(n_ok))
            if stall:
                resp = resp + rng.uniform(0, s.stall_us, n_ok)
            resp = np.maximum(1, resp * s.scale_us).astype(np.int64)
            lag = rng.exponential(150.0, n_ok).astype(np.int64) + 1
            serv = np.maximum(1, resp - lag)
            hists = {"response": new_hist(), "service": new_hist()}
            record_many(hists["response"], resp)
            record_many(hists["service"], serv)
            record_many(lag_h, lag)
            for which, h in hists.items():
                logs[(kind, which)][1].output_interval_histogram(h, float(t) or 1e-9, float(t + 1))
                if not warm:
                    merged[(kind, which)].add(h)
            c = counts[kind]
            c["scheduled"] += n_per_s
            c["ok"] += n_ok
            c["error"] += n_err
            c["timeout"] += n_to
            c["warmup"] += n_per_s if warm else 0
            line["scheduled"] += n_per_s
            line["sent"] += n_per_s
            line["ok"] += n_ok
            line["error"] += n_err
            line["timeout"] += n_to
            line["ops"][kind] = {"count": n_ok, "p50_us": int(np.percentile(resp, 50)),
                                 "p99_us": int(np.percentile(resp, 99)), "max_us": int(resp.max())}
        lag_writer.output_interval_histogram(lag_h, float(t) or 1e-9, float(t + 1))
        for m, (_, writer) in extra_logs.items():  # observed samples include warm-up, as the harness does
            h = new_hist()
            record_many(h, (rng.exponential(3_000.0, n_per_s) + (200_000 if stall else 0)).astype(np.int64) + 1)
            writer.output_interval_histogram(h, float(t) or 1e-9, float(t + 1))
            extra_merged[m].add(h)
        if not warm:
            lag_merged.add(lag_h)
        line["in_flight"] = int(s.rate * len(s.kinds) * (s.stall_us if stall else s.base_us) / 2e6)
        line["lag_p99_us"] = int(lag_h.get_value_at_percentile(99.0))
        if s.gauges:
            drained = max(0, consumer_lag - n_per_s) + int(rng.integers(0, 5))
            consumer_lag = consumer_lag + n_per_s if stall else drained
            line["extra"] = {"consumer_lag": consumer_lag}
        ts_lines.append(line)
        if s.resources:
            harness = {"cpu_percent": float(40 + rng.normal(0, 3)), "rss_bytes": 80_000_000 + t * 50_000}
            target = {"cpu_percent": float(5 if stall else 25 + rng.normal(0, 2)), "rss_bytes": 20_500_000}
            res_lines.append({"t": t + s.resources_lead_s, "procs": {"harness": harness, "echo": target}})

    for fh, _ in [*logs.values(), *extra_logs.values()]:
        fh.close()
    lag_fh.close()

    measured = float(s.duration_s)
    ops: dict[str, Any] = {}
    overall_counts = {"scheduled": 0, "ok": 0, "error": 0, "timeout": 0, "not_sent": 0, "warmup": 0}
    overall_resp, overall_serv = new_hist(), new_hist()
    for kind in s.kinds:
        c = counts[kind]
        resp_h, serv_h = merged[(kind, "response")], merged[(kind, "service")]
        overall_resp.add(resp_h)
        overall_serv.add(serv_h)
        for key in overall_counts:
            overall_counts[key] += c[key]
        measured_ok = resp_h.get_total_count()
        errors = {s.error_kind: c["error"]} if c["error"] else {}
        ops[kind] = {
            "counts": {**c, "errors": errors, "not_sent_reasons": {}},
            "target_rate": s.rate,
            "achieved_rate": round((measured_ok + c["error"]) / measured, 2),
            "error_rate": round((c["error"] + c["timeout"]) / max(1, c["scheduled"]), 5),
            "response_time_us": stats(resp_h),
            "service_time_us": stats(serv_h),
        }
    errors_all: dict[str, int] = {}
    for kind in s.kinds:
        for k, v in ops[kind]["counts"]["errors"].items():
            errors_all[k] = errors_all.get(k, 0) + v
    overall = {
        "counts": {**overall_counts, "errors": errors_all, "not_sent_reasons": {}},
        "target_rate": s.rate * len(s.kinds),
        "achieved_rate": round(sum(o["achieved_rate"] for o in ops.values()), 2),
        "error_rate": round((overall_counts["error"] + overall_counts["timeout"])
                            / max(1, overall_counts["scheduled"]), 5),
        "response_time_us": stats(overall_resp),
        "service_time_us": stats(overall_serv),
    }
    summary = {
        "schema": "edabench.summary/1", "name": s.name, "closed_loop": s.closed_loop,
        "interrupted": s.interrupted, "books_balanced": True, "measured_s": measured,
        "ops": ops, "overall": overall, "schedule_lag_us": stats(lag_merged),
        "observed_us": {m: stats(h) for m, h in extra_merged.items()},
        "verify": {"problems": []}, "slo": s.slo,
    }
    ended = s.started_at + timedelta(seconds=total_s)
    run = {
        "schema": "edabench.run/1", "name": s.name, "run_id": run_id,
        "spec": {"name": s.name, "target": "echo", "ops": [{"name": k, "weight": 1.0} for k in s.kinds],
                 "rate": {"profile": "constant", "rate": s.rate * len(s.kinds)}, "slo": s.slo},
        "spec_path": f"workloads/{s.name}.toml",
        "config": {"rate": s.rate * len(s.kinds), "duration_s": float(s.duration_s),
                   "warmup_s": float(s.warmup_s), "processes": 1, "closed_loop": s.closed_loop,
                   "services": {"kafka": "127.0.0.1:9092"}, "embedded": True},
        "command": ["edabench", "run", f"workloads/{s.name}.toml", "--rate", str(s.rate * len(s.kinds))],
        "environment": {"python": "3.11.7", "platform": "Linux-6.1-x86_64", "cpu": "Test CPU @ 2.0GHz",
                        "cpu_count": 2, "packages": {"aiokafka": "0.14.0"}, "git_sha": s.git_sha,
                        "hostname": "bench-host"},
        "started_at": _iso(s.started_at), "ended_at": _iso(ended), "interrupted": s.interrupted,
    }
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (run_dir / "timeseries.jsonl").write_text("".join(json.dumps(x) + "\n" for x in ts_lines))
    if s.resources:
        (run_dir / "resources.jsonl").write_text("".join(json.dumps(x) + "\n" for x in res_lines))
    return run_dir


Cell = tuple[dict[str, str], str]


class _Tables(HTMLParser):
    """Collects rows of `<table class=...>` as (row attributes, [(cell attributes, cell text)])."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[dict[str, str], list[Cell]]]] = {}
        self._table: str | None = None
        self._row: tuple[dict[str, str], list[Cell]] | None = None
        self._cell: list[str] | None = None
        self._cell_attrs: dict[str, str] = {}
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = a.get("class", "")
            self.tables.setdefault(self._table, [])
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and self._table is not None and not self._in_head:
            self._row = (a, [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._cell_attrs = a

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row[1].append((self._cell_attrs, " ".join("".join(self._cell).split())))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_cells(html: str, table_class: str) -> list[tuple[dict[str, str], list[Cell]]]:
    """Body rows (outside <thead>) of every table of that class, in document order, with each
    cell's attributes and its text (whitespace collapsed)."""
    parser = _Tables()
    parser.feed(html)
    return [r for r in parser.tables.get(table_class, []) if r[1]]


def table_rows(html: str, table_class: str) -> list[tuple[dict[str, str], list[str]]]:
    """Body rows of every table of that class: row attributes and cell texts."""
    return [(attrs, [text for _, text in cells]) for attrs, cells in table_cells(html, table_class)]


def regressions_on_page(html: str) -> set[tuple[str, str]]:
    """(op, metric) of every delta cell a comparison page marks as a regression, over all compared runs."""
    return {(row["data-op"], cell["data-metric"]) for row, cells in table_cells(html, "deltas")
            for cell, _ in cells[1:] if "regression" in cell.get("class", "").split()}
