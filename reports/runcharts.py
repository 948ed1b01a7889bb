"""Which charts a run's report gets, built from its loaded data (interval logs, timeseries, resources).

Latency lines come from the interval logs (exact per-interval percentiles); the timeseries'
per-second figures are only a fallback for runs without logs. A chart with nothing to show
(no errors, no gauges) is left out; the page says so in words instead. Every time axis is
the schedule's: seconds since the first intended send, warm-up shaded from 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reports import charts
from reports.charts import Curve, Goal, Line, Panel
from reports.hdr import Counts, HlogData
from reports.loader import RunData

OVERALL = "overall"
TOP_KINDS = 6  # kinds overlaid on the overall spectrum; the rest are added up as "other"
MAX_PANELS = 12  # small multiples of latency over time on the overall chart
GOAL_PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p95_ms": 95.0, "p99_ms": 99.0, "p999_ms": 99.9,
                    "max_ms": 100.0}
GoalSpec = tuple[str, str, object, bool]  # (op, goal name, goal value, passed), from the SLO rows
P99, MAX, P50, SERVICE = "#1f77b4", "#d62728", "#2ca02c", "#9467bd"


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
            Line("response p50", t, s.p50[has] / 1000.0, color=P50),
            Line("response p99", t, s.p99[has] / 1000.0, color=P99),
            Line("response max", t, s.max[has] / 1000.0, color=MAX, width=0.9),
        ]
        if logs.service and len(logs.service.series):
            v = logs.service.series
            keep = v.count > 0
            lines.append(Line("service p99", v.t_s[keep], v.p99[keep] / 1000.0, style="--", color=SERVICE))
    elif data.timeseries:  # no interval logs: the timeseries carries exact per-second figures too
        rows = [(r["t"], r["ops"][kind]) for r in data.timeseries if kind in (r.get("ops") or {})]
        if rows:
            t = np.asarray([r[0] for r in rows], dtype=np.float64)
            for key, label, color in (("p50_us", "p50", P50), ("p99_us", "p99", P99), ("max_us", "max", MAX)):
                y = np.asarray([r[1].get(key) or 0 for r in rows], dtype=np.float64) / 1000.0
                lines.append(Line(f"response {label}", t, y, color=color))
    return lines


def _spectrum(data: RunData, kind: str, goals: list[Goal]) -> str | None:
    logs = data.logs.get(kind)
    if not logs or not logs.response or not logs.response.merged:
        return None
    curves = [Curve("response time", logs.response.merged, color=P99)]
    if logs.service and logs.service.merged:
        curves.append(Curve("service time", logs.service.merged, style="--", color=SERVICE))
    return charts.spectrum_svg(curves, goals)


def distribution_curves(response: Counts | None, service: Counts | None) -> list[Curve]:
    """Response time as bars, service time as an outline over the same buckets."""
    curves = []
    if response is not None and response.total:
        curves.append(Curve("response time", response, color=P99))
        if service is not None and service.total:
            curves.append(Curve("service time", service, style="--", color=SERVICE))
    return curves


def kind_charts(data: RunData, kind: str, goals: Sequence[GoalSpec]) -> dict[str, str]:
    """One op kind: its spectrum (response vs service, goals marked), distribution and latency over time."""
    out: dict[str, str] = {}
    if svg := _spectrum(data, kind, _goals(goals, kind)):
        out["spectrum"] = svg
    logs = data.logs.get(kind)
    if logs and logs.response:
        service = logs.service.merged if logs.service else None
        if curves := distribution_curves(logs.response.merged, service):
            out["distribution"] = charts.distribution_svg(curves)
    lines = _latency_lines(data, kind)
    if lines:
        out["latency"] = charts.line_svg(lines, "latency", log_y=True, ms=True, shade_until=data.warmup_s)
    return out


def spectrum_curves(data: RunData, top: int = TOP_KINDS) -> list[Curve]:
    """The overall spectrum's curves: all kinds (response, service), then the `top` kinds with the
    highest p99 and the rest added up as one "other" curve, so colours never repeat."""
    merged = data.merged("response")
    if merged is None:
        return []
    curves = [Curve("response time, all kinds", merged, color=P99)]
    if (service := data.merged("service")) is not None:
        curves.append(Curve("service time, all kinds", service, style="--", color=SERVICE))
    kinds = [(k, lg.response.merged) for k, lg in data.logs.items() if lg.response and lg.response.merged]
    if len(kinds) < 2:
        return curves
    kinds.sort(key=lambda kc: -int(kc[1].values_at([99.0])[0]))
    shown, rest = (kinds, []) if len(kinds) <= top + 1 else (kinds[:top], kinds[top:])
    palette = [c for c in charts.PALETTE if c not in (P99, SERVICE)]
    curves += [Curve(f"response: {k}", c, style=":", color=palette[i % len(palette)]) for i, (k, c) in
               enumerate(shown)]
    if rest:
        other = Counts(rest[0][1].layout, rest[0][1].counts.copy())
        for _, c in rest[1:]:
            if c.layout == other.layout:
                other.add(c)
        curves.append(Curve(f"response: other ({len(rest)} kinds)", other, style=":", color=charts.OTHER_COLOR))
    return curves


def latency_panels(data: RunData, cap: int = MAX_PANELS) -> tuple[list[Panel], int]:
    """Small multiples of p99 and max over time, one per kind (the `cap` worst by p99 when there are
    more); returns the panels and how many kinds were left out."""
    kinds = [(k, lg.response) for k in data.kinds if (lg := data.logs.get(k)) and lg.response
             and len(lg.response.series)]
    left_out = max(0, len(kinds) - cap)
    if left_out:
        worst = sorted(kinds, key=lambda kr: -int(kr[1].merged.values_at([99.0])[0]) if kr[1].merged else 0)
        keep = {k for k, _ in worst[:cap]}
        kinds = [kr for kr in kinds if kr[0] in keep]
    return [Panel(k, _interval_lines("", h)) for k, h in kinds], left_out


def overall_charts(data: RunData, goals: Sequence[GoalSpec]) -> dict[str, str]:
    """All kinds: the merged spectrum (top kinds overlaid), the distribution, and latency over time
    as small multiples, one panel per kind on shared axes."""
    out: dict[str, str] = {}
    if curves := spectrum_curves(data):
        out["spectrum"] = charts.spectrum_svg(curves, _goals(goals, OVERALL))
    if curves := distribution_curves(data.merged("response"), data.merged("service")):
        out["distribution"] = charts.distribution_svg(curves)
    panels, _ = latency_panels(data)
    if panels:
        out["latency"] = charts.small_multiples_svg(panels, "response time", shade_until=data.warmup_s)
    return out


OUTCOMES = (("error", "errors", "#d62728"), ("timeout", "timeouts", "#ff7f0e"), ("not_sent", "not sent", "#7f7f7f"))


def outcome_lines(data: RunData) -> list[Line]:
    """Errors, timeouts and not-sent per second; a series that is zero throughout is left out."""
    lines = [Line(name, *_ts(data, key), color=color) for key, name, color in OUTCOMES]
    return [ln for ln in lines if charts.has_signal([ln])]


def gauge_lines(data: RunData) -> list[Line]:
    """In flight and the driver's gauges, those that ever left zero."""
    gauges = [Line("in flight", *_ts(data, "in_flight"), agg="max")]
    for name in sorted({k for r in data.timeseries for k in (r.get("extra") or {})}):
        rows = [(r["t"], r["extra"][name]) for r in data.timeseries
                if isinstance((r.get("extra") or {}).get(name), int | float)]
        if rows:
            arr = np.asarray(rows, dtype=np.float64)
            gauges.append(Line(name, arr[:, 0], arr[:, 1], agg="max"))
    return [g for g in gauges if charts.has_signal([g])]


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
        lines.append(Line("completed (ok + error)", ts_ok, done, color=P99))
    out["rate"] = charts.line_svg(lines, "ops/s", shade_until=warm)
    if outcomes := outcome_lines(data):
        out["outcomes"] = charts.line_svg(outcomes, "ops/s", shade_until=warm)
    if gauges := gauge_lines(data):
        out["gauges"] = charts.line_svg(gauges, "count", shade_until=warm)
    return out


def _interval_lines(name: str, data: HlogData) -> list[Line]:
    s = data.series
    has = s.count > 0
    return [Line(f"{name} p99".strip(), s.t_s[has], s.p99[has] / 1000.0, color=P99),
            Line(f"{name} max".strip(), s.t_s[has], s.max[has] / 1000.0, style=":", width=0.8, color=MAX)]


def _observed_charts(data: RunData) -> dict[str, str]:
    out: dict[str, str] = {}
    curves = [Curve(name, h.merged) for name, h in sorted(data.observed.items()) if h.merged is not None]
    if curves:
        out["observed_spectrum"] = charts.spectrum_svg(curves)
    observed = sorted(data.observed.items())
    lines = [Line(f"{name} {ln.label}", ln.x, ln.y, style=ln.style, width=ln.width,
                  color=charts.PALETTE[i % len(charts.PALETTE)])
             for i, (name, h) in enumerate(observed) for ln in _interval_lines("", h)]
    if lines:
        out["observed_latency"] = charts.line_svg(lines, "latency", log_y=True, ms=True,
                                                  shade_until=data.warmup_s)
    return out


def resource_lines(data: RunData) -> tuple[list[Line], list[Line]]:
    """CPU % and RSS (MB) per process, on the schedule's time axis (resources.jsonl counts from the
    sampler's start, which comes before the services and the target start)."""
    offset = data.resources_offset_s
    procs = sorted({p for r in data.resources for p in (r.get("procs") or {})})
    cpu, mem = [], []
    for p in procs:
        rows = [(r.get("t", 0.0), r["procs"][p]) for r in data.resources if p in (r.get("procs") or {})]
        t = np.asarray([row[0] for row in rows], dtype=np.float64) - offset
        cpu.append(Line(p, t, [row[1].get("cpu_percent") or 0.0 for row in rows], agg="max"))
        mem.append(Line(p, t, [(row[1].get("rss_bytes") or 0) / 1e6 for row in rows], agg="max"))
    return cpu, mem


def _resource_charts(data: RunData) -> dict[str, str]:
    cpu, mem = resource_lines(data)
    xlabel = "seconds since the schedule's start"
    return {"cpu": charts.line_svg(cpu, "CPU %", shade_until=data.warmup_s, xlabel=xlabel),
            "memory": charts.line_svg(mem, "RSS (MB)", shade_until=data.warmup_s, xlabel=xlabel)}


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
