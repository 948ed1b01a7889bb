"""A trend across many runs (a CI history folder): p99 and throughput per workload over time.

Reads only run.json and summary.json of each run, so a folder of hundreds of runs stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from reports import charts
from reports.charts import Line
from reports.gating import evaluate_slos, slo_of
from reports.loader import RunDirError, load_summaries, parse_time


@dataclass(slots=True)
class HistoryPoint:
    path: Path
    name: str
    started_at: datetime
    git_sha: str | None
    p99_us: Any
    achieved_rate: Any
    target_rate: Any
    passed: bool | None
    closed_loop: bool


@dataclass(slots=True)
class History:
    points: list[HistoryPoint]
    charts: dict[str, str]


def _run_dirs(root: Path) -> list[Path]:
    """Run directories directly in `root` or one level down (runs/<job>/<run>)."""
    found = {p.parent for pattern in ("*/summary.json", "*/*/summary.json") for p in root.glob(pattern)}
    return sorted(found)


def _point(path: Path) -> HistoryPoint | None:
    try:
        run, summary = load_summaries(path)
    except RunDirError:
        return None
    started = parse_time(run.get("started_at"))
    if started is None or not summary:
        return None
    overall = summary.get("overall") or {}
    slo = slo_of(run, summary)
    passed = all(c.passed for c in evaluate_slos(summary, slo)) if slo else None
    return HistoryPoint(
        path, str(summary.get("name") or run.get("name") or path.name), started,
        (run.get("environment") or {}).get("git_sha"),
        (overall.get("response_time_us") or {}).get("p99"), overall.get("achieved_rate"),
        overall.get("target_rate"), passed, bool(summary.get("closed_loop")),
    )


def history(root: Path, with_charts: bool = True) -> History:
    points = sorted((p for d in _run_dirs(Path(root)) if (p := _point(d))), key=lambda p: p.started_at)
    out: dict[str, str] = {}
    if with_charts and points:
        p99_lines, rate_lines = [], []
        for name in dict.fromkeys(p.name for p in points):
            mine = [p for p in points if p.name == name]
            lat = [p for p in mine if isinstance(p.p99_us, int | float)]
            if lat:
                p99_lines.append(Line(name, [p.started_at for p in lat], [p.p99_us / 1000.0 for p in lat],
                                      marker="o"))
            thr = [p for p in mine if isinstance(p.achieved_rate, int | float)]
            if thr:
                rate_lines.append(Line(name, [p.started_at for p in thr], [p.achieved_rate for p in thr],
                                       marker="o"))
        out["p99"] = charts.line_svg(p99_lines, "p99 response", ms=True, xlabel="run start (UTC)",
                                     title=f"p99 over {len(points)} runs")
        out["throughput"] = charts.line_svg(rate_lines, "achieved ops/s", xlabel="run start (UTC)",
                                            title=f"throughput over {len(points)} runs")
    return History(points, out)
