"""Load a run directory (docs/results.md) into one object the report sections read from.

Missing optional files (resources, timeseries, a kind's service log) leave their part of
the report empty instead of failing it: a report of a crashed or interrupted run is the
one a person most needs to read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.hdr import Counts, HlogData, read_hlog

RESPONSE_SUFFIX = ".response.hlog"
SERVICE_SUFFIX = ".service.hlog"


class RunDirError(ValueError):
    """The path is not a run directory this report can read."""


@dataclass(slots=True)
class KindLogs:
    """Interval logs of one op kind."""

    response: HlogData | None = None
    service: HlogData | None = None


@dataclass(slots=True)
class RunData:
    path: Path
    run: dict[str, Any]
    summary: dict[str, Any]
    timeseries: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, KindLogs] = field(default_factory=dict)
    schedule_lag: HlogData | None = None
    observed: dict[str, HlogData] = field(default_factory=dict)  # extra histograms a driver reported

    @property
    def name(self) -> str:
        return str(self.summary.get("name") or self.run.get("name") or self.path.name)

    @property
    def label(self) -> str:
        """Short name that tells runs apart in a comparison."""
        return str(self.run.get("run_id") or self.path.name)

    @property
    def kinds(self) -> list[str]:
        """Op kinds in summary order, then any that only have logs."""
        kinds = list(self.summary.get("ops", {}))
        return kinds + sorted(k for k in self.logs if k not in kinds)

    @property
    def closed_loop(self) -> bool:
        return bool(self.summary.get("closed_loop") or self.run.get("config", {}).get("closed_loop"))

    @property
    def warmup_s(self) -> float:
        return float(self.run.get("config", {}).get("warmup_s") or 0.0)

    @property
    def started_at(self) -> datetime | None:
        return parse_time(self.run.get("started_at"))

    @property
    def resources_offset_s(self) -> float:
        """Seconds from resources.jsonl's t = 0 to timeseries.jsonl's t = 0 (the schedule's start).

        The resource sampler starts with the run (run.json's `started_at`), before the services
        and the target come up; the schedule starts after them. A `schedule_started_at` in run.json
        gives the schedule's start exactly; without it the interval logs' StartTime (taken just
        before the generators start) stands in, within the driver's start-up time.
        """
        started = self.started_at
        if started is None:
            return 0.0
        schedule = parse_time(self.run.get("schedule_started_at"))
        if schedule is not None:
            return max(0.0, (schedule - started).total_seconds())
        logs = [lg for kl in self.logs.values() for lg in (kl.response, kl.service)] + [self.schedule_lag]
        starts = [lg.start_time_s for lg in logs if lg is not None and lg.start_time_s is not None]
        return max(0.0, min(starts) - started.timestamp()) if starts else 0.0

    def merged(self, metric: str = "response") -> Counts | None:
        """All kinds' response (or service) times added together: exact, HDR histograms add."""
        total: Counts | None = None
        for logs in self.logs.values():
            log = logs.response if metric == "response" else logs.service
            if log is None or log.merged is None:
                continue
            if total is None:
                total = Counts(log.merged.layout, log.merged.counts.copy())
            elif total.layout == log.merged.layout:
                total.add(log.merged)
        return total


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a JSON-lines file; a torn last line (killed run) is skipped, not fatal."""
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def load_summaries(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Just run.json and summary.json: enough for comparisons of many runs and for history."""
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory")
    run, summary = read_json(path / "run.json"), read_json(path / "summary.json")
    if not run and not summary:
        raise RunDirError(f"{path}: neither run.json nor summary.json found: not a run directory")
    return run, summary


def load_run(path: Path, max_points: int = 1000) -> RunData:
    """Read everything the report shows from one run directory."""
    path = Path(path)
    run, summary = load_summaries(path)
    timeseries, resources = read_jsonl(path / "timeseries.jsonl"), read_jsonl(path / "resources.jsonl")
    data = RunData(path, run, summary, timeseries, resources)
    warmup = data.warmup_s
    for log in sorted(path.glob("*.hlog")):
        name = log.name
        if name == "schedule-lag.hlog":
            data.schedule_lag = read_hlog(log, warmup, max_points)
        elif name.endswith(RESPONSE_SUFFIX):
            kind = name[: -len(RESPONSE_SUFFIX)]
            data.logs.setdefault(kind, KindLogs()).response = read_hlog(log, warmup, max_points)
        elif name.endswith(SERVICE_SUFFIX):
            kind = name[: -len(SERVICE_SUFFIX)]
            data.logs.setdefault(kind, KindLogs()).service = read_hlog(log, warmup, max_points)
        else:  # a driver's own histogram; summary.json's observed_us keeps warm-up samples, so do we
            data.observed[name.removesuffix(".hlog")] = read_hlog(log, 0.0, max_points)
    return data
