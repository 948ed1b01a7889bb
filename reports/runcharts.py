"""Which charts a run's report gets, built from its loaded data (interval logs, timeseries, resources).

Latency lines come from the interval logs (exact per-interval percentiles); the timeseries'
per-second figures are only a fallback for runs without logs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reports import charts
from reports.charts import Curve, Goal, Line
from reports.hdr import HlogData
from reports.loader import RunData

OVERALL = "overall"
GOAL_PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p95_ms": 95.0, "p99_ms": 99.0, "p999_ms": 99.9,
                    "max_ms": 100.0}
GoalSpec = tuple[str, str, object, bool]  # (op, goal name, goal value, passed), from the SLO rows


def _goals(goals: Sequence[GoalSpec], op: str) -> list[Goal]:
    """SLO latency goals of `op` as markers on its spectrum."""
    out = []
    for goal_op, name, value, passed in goals:
        p = GOAL_PERCENTILES.get(name)
        if goal_op == op and p is not None and isinstance(value, int | float):
            out.append(Goal(f"{name.removesuffix('_ms')} goal", p, float(value), passed))
    return out


def _ts(data: RunData, key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(r.get("t"), r.get(key)) for r in data.timeseries if isinstance(r.get(key), int | float)]
    if not rows:
        return np.zeros(0), np.zeros(0)
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def _latency_lines(data: RunData, kind: str) -> list[Line]:
    logs = data.logs.get(kind)
    lines: list[Line] = []
    if logs and logs.response and len(logs.response.series):
        s = logs.response.series
        has = s.count > 0
        t = s.t_s[has]
        lines += [
            Line("response p50", t, s.p50[has] / 1000.0, color="#2ca02c"),
            Line("response p99", t, s.p99[has] / 1000.0, color="#1f77b4"),
            Line("response max", t, s.max[has] / 1000.0, color="#d62728", width=0.9),
        ]
        if logs.service and len(logs.service.series):
            v = logs.service.series
            keep = v.count > 0
            lines.append(Line("service p99", v.t_s[keep], v.p99[keep] / 1000.0, style="--", color="#9467bd"))
    elif data.timeseries:  # no interval logs: the timeseries carries exact per-second figures too
        rows = [(r["t"], r["ops"][kind]) for r in data.timeseries if kind in (r.get("ops") or {})]
        if rows:
            t = np.asarray([r[0] for r in rows], dtype=np.float64)
            for key, label, color in (("p50_us", "p50", "#2ca02c"), ("p99_us", "p99", "#1f77b4"),
                                      ("max_us", "max", "#d62728")):
                y = np.asarray([r[1].get(key) or 0 for r in rows], dtype=np.float64) / 1000.0
                lines.append(Line(f"response {label}", t, y, color=color))
    return lines


def _spectrum(data: RunData, kind: str, goals: list[Goal]) -> str | None:
    logs = data.logs.get(kind)
    if not logs or not logs.response or not logs.response.merged:
        return None
    curves = [Curve("response time", logs.response.merged, color="#1f77b4")]
    if logs.service and logs.service.merged:
        curves.append(Curve("service time", logs.service.merged, style="--", color="#9467bd"))
    return charts.spectrum_svg(curves, goals)


def kind_charts(data: RunData, kind: str, goals: Sequence[GoalSpec]) -> dict[str, str]:
    """One op kind: its spectrum (response vs service, goals marked) and latency over time."""
    out: dict[str, str] = {}
    if svg := _spectrum(data, kind, _goals(goals, kind)):
        out["spectrum"] = svg
    lines = _latency_lines(data, kind)
    if lines:
        out["latency"] = charts.line_svg(lines, "latency", log_y=True, ms=True, shade_until=data.warmup_s)
    return out


def overall_charts(data: RunData, goals: Sequence[GoalSpec]) -> dict[str, str]:
    """All kinds: the merged spectrum with each kind overlaid, and p99/max over time per kind."""
    out: dict[str, str] = {}
    merged = data.merged("response")
    if merged is not None:
        curves = [Curve("response time, all kinds", merged, color="#1f77b4")]
        if (service := data.merged("service")) is not None:
            curves.append(Curve("service time, all kinds", service, style="--", color="#9467bd"))
        if len(data.logs) > 1:
            curves += [Curve(f"response: {k}", lg.response.merged, style=":")
                       for k, lg in data.logs.items() if lg.response and lg.response.merged]
        out["spectrum"] = charts.spectrum_svg(curves, _goals(goals, OVERALL))
    p99_lines = [ln for k in data.kinds if (lg := data.logs.get(k)) and lg.response
                 for ln in _interval_lines(k, lg.response)]
    if p99_lines:
        out["latency"] = charts.line_svg(p99_lines, "response time", log_y=True, ms=True,
                                         shade_until=data.warmup_s)
    return out


def _rate_charts(data: RunData) -> dict[str, str]:
    out: dict[str, str] = {}
    warm = data.warmup_s
    t, target = _ts(data, "target_rate")
    ts_ok, ok = _ts(data, "ok")
    _, err = _ts(data, "error")
    ts_sent, sent = _ts(data, "sent")
    lines = [Line("target", t, target, style="--", color="#555555")]
    if sent.size:
        lines.append(Line("sent", ts_sent, sent, color="#ff7f0e", width=0.9))
    if ok.size:
        done = ok + (err if err.size == ok.size else 0)
        lines.append(Line("completed (ok + error)", ts_ok, done, color="#1f77b4"))
    out["rate"] = charts.line_svg(lines, "ops/s", shade_until=warm)
    outcomes = [Line(name, *_ts(data, key), color=color) for key, name, color in
                (("error", "errors", "#d62728"), ("timeout", "timeouts", "#ff7f0e"),
                 ("not_sent", "not sent", "#7f7f7f"))]
    out["outcomes"] = charts.line_svg(outcomes, "ops/s", shade_until=warm)
    gauges = []
    if _ts(data, "in_flight")[1].size:
        gauges.append(Line("in flight", *_ts(data, "in_flight"), agg="max"))
    for name in sorted({k for r in data.timeseries for k in (r.get("extra") or {})}):
        rows = [(r["t"], r["extra"][name]) for r in data.timeseries
                if isinstance((r.get("extra") or {}).get(name), int | float)]
        if rows:
            arr = np.asarray(rows, dtype=np.float64)
            gauges.append(Line(name, arr[:, 0], arr[:, 1], agg="max"))
    if gauges:
        out["gauges"] = charts.line_svg(gauges, "count", shade_until=warm)
    return out


def _interval_lines(name: str, data: HlogData) -> list[Line]:
    s = data.series
    has = s.count > 0
    return [Line(f"{name} p99".strip(), s.t_s[has], s.p99[has] / 1000.0),
            Line(f"{name} max".strip(), s.t_s[has], s.max[has] / 1000.0, style=":", width=0.8)]


def _observed_charts(data: RunData) -> dict[str, str]:
    out: dict[str, str] = {}
    curves = [Curve(name, h.merged) for name, h in sorted(data.observed.items()) if h.merged is not None]
    if curves:
        out["observed_spectrum"] = charts.spectrum_svg(curves)
    lines = [ln for name, h in sorted(data.observed.items()) for ln in _interval_lines(name, h)]
    if lines:
        out["observed_latency"] = charts.line_svg(lines, "latency", log_y=True, ms=True,
                                                  shade_until=data.warmup_s)
    return out


def _resource_charts(data: RunData) -> dict[str, str]:
    procs = sorted({p for r in data.resources for p in (r.get("procs") or {})})
    cpu, mem = [], []
    for p in procs:
        rows = [(r.get("t", 0.0), r["procs"][p]) for r in data.resources if p in (r.get("procs") or {})]
        t = np.asarray([row[0] for row in rows], dtype=np.float64)
        cpu.append(Line(p, t, [row[1].get("cpu_percent") or 0.0 for row in rows], agg="max"))
        mem.append(Line(p, t, [(row[1].get("rss_bytes") or 0) / 1e6 for row in rows], agg="max"))
    return {"cpu": charts.line_svg(cpu, "CPU %", shade_until=data.warmup_s),
            "memory": charts.line_svg(mem, "RSS (MB)", shade_until=data.warmup_s)}


def run_charts(data: RunData) -> dict[str, str]:
    """Whole-run charts: rates, outcomes, gauges, schedule lag, observed histograms, resources."""
    out: dict[str, str] = {}
    if data.timeseries:
        out |= _rate_charts(data)
    if data.schedule_lag and len(data.schedule_lag.series):
        out["lag"] = charts.line_svg(_interval_lines("", data.schedule_lag), "schedule lag", log_y=True, ms=True,
                                     shade_until=data.warmup_s)
    if data.observed:
        out |= _observed_charts(data)
    if data.resources:
        out |= _resource_charts(data)
    return out
