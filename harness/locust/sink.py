"""The master's side: merge every process's reports into one run directory.

Reports have the generator processes' shape, so the harness's Collector does the merging
(exact: HDR histograms add bucket by bucket) and writes the hlogs, timeseries and
summary.json; this module adds what only a Locust run has: Locust's own statistics next
to ours, and each process's totals so a merge can be checked.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from harness.collector import Collector, write_json
from harness.locust.runtime import ENV_MANIFEST, ENV_RUN_DIR, ENV_RUNS_ROOT
from harness.recorder import stats
from harness.rundir import environment, make_run_dir, utc_now
from harness.spec import Spec

LOCUST_PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p99_9": 0.999}


def locust_stats(env: Any) -> dict[str, Any]:
    """Locust's own numbers (ms, from the actual send, rounded as Locust keeps them)."""
    out: dict[str, Any] = {}
    entries = list(env.stats.entries.values())
    names = [e.name for e in entries]
    keyed = [(e.name if names.count(e.name) == 1 else f"{e.method} {e.name}", e) for e in entries]
    for name, entry in [*keyed, ("Aggregated", env.stats.total)]:
        row: dict[str, Any] = {"count": entry.num_requests, "failures": entry.num_failures,
                               "method": entry.method or ""}
        if entry.num_requests:
            for key, q in LOCUST_PERCENTILES.items():
                row[f"{key}_ms"] = entry.get_response_time_percentile(q)
            row["max_ms"] = entry.max_response_time
            row["avg_ms"] = round(entry.avg_response_time, 3)
        out[name] = row
    return out


class ResultSink:
    """One Locust test (start to stop) as one run directory."""

    def __init__(self, spec: Spec, run_dir: Path, processes: int, duration_s: float | None,
                 manifest: str | None) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.duration_s = duration_s
        self.manifest = manifest
        self.started_mono = time.monotonic()
        self.started_at = utc_now()
        self.collector = Collector(spec, run_dir, max(1, processes), int(time.time() * 1000))
        self.finals: dict[int, dict[str, Any]] = {}
        self.finalized = False
        self.summary: dict[str, Any] | None = None

    @classmethod
    def create(cls, spec: Spec, processes: int, duration_s: float | None, first: bool) -> ResultSink:
        """Use the directory the command prepared for the first test, a new one for later tests."""
        given = os.environ.get(ENV_RUN_DIR)
        if first and given and Path(given).is_dir() and not (Path(given) / "summary.json").exists():
            run_dir = Path(given)
        else:
            root = os.environ.get(ENV_RUNS_ROOT) or (str(Path(given).parent) if given else "runs")
            run_dir = make_run_dir(spec.name, root)
        return cls(spec, run_dir, processes, duration_s, os.environ.get(ENV_MANIFEST))

    # -- intake ---------------------------------------------------------------------------------------
    def accept(self, report: dict[str, Any]) -> None:
        if self.finalized:
            return
        if report.get("type") == "final":
            self.finals[int(report["process"])] = report
        self.collector.accept(report)

    @property
    def processes(self) -> int:
        return self.collector.processes

    def all_final(self) -> bool:
        return len(self.finals) >= self.collector.processes

    # -- live view --------------------------------------------------------------------------------------
    def live(self) -> dict[str, Any]:
        """Cumulative measured percentiles so far (intervals every process has reported)."""
        c = self.collector
        kinds = {kind: {m: stats(h) for m, h in hists.items()} for kind, hists in sorted(c.totals.items())}
        observed = {m: stats(h) for m, h in sorted(c.extra_totals.items())}
        return {"run_dir": str(self.run_dir), "seconds": c.last_t + 1, "kinds": kinds, "observed": observed,
                "counts": dict(c.live)}

    # -- the end --------------------------------------------------------------------------------------
    def finalize(self, env: Any, interrupted: bool = False) -> dict[str, Any]:
        """Write summary.json, run.json and the per-process totals; once."""
        if self.finalized and self.summary is not None:
            return self.summary
        self.finalized = True
        self.collector.close()
        elapsed = time.monotonic() - self.started_mono
        measured_s = max(0.0, elapsed - self.spec.warmup_s)
        if self.duration_s is not None:
            measured_s = min(self.duration_s, measured_s)
        summary = self.collector.summary(measured_s, interrupted=interrupted)
        closed = sum(int(f.get("closed_requests", 0)) for f in self.finals.values())
        summary["closed_loop"] = closed > 0
        summary["generator"] = "locust"
        summary["locust"] = locust_stats(env)
        write_json(self.run_dir / "summary.json", summary)
        write_json(self.run_dir / "locust-processes.json",
                   {str(p): {k: f.get(k) for k in ("books", "totals", "arrivals", "closed_requests",
                                                   "late_completions", "problems")}
                    for p, f in sorted(self.finals.items())})
        self._write_run_json(env, interrupted)
        if self.manifest:
            with open(self.manifest, "a", encoding="utf-8") as fh:
                fh.write(f"{self.run_dir}\n")
        self.summary = summary
        return summary

    def _write_run_json(self, env: Any, interrupted: bool) -> None:
        path = self.run_dir / "run.json"
        first = Path(os.environ.get(ENV_RUN_DIR) or self.run_dir) / "run.json"
        template = path if path.exists() else first  # later tests of one web session: the first's setup
        run: dict[str, Any] = orjson.loads(template.read_bytes()) if template.exists() else {}
        opts = env.parsed_options
        locust_cfg = {
            "processes": self.collector.processes,
            "users": getattr(opts, "num_users", None),
            "spawn_rate": getattr(opts, "spawn_rate", None),
            "host": env.host,
            "user_classes": sorted(u.__name__ for u in env.user_classes),
        }
        if not run:
            run = {
                "schema": "edabench.run/1",
                "name": self.spec.name,
                "spec": self.spec.model_dump(mode="json"),
                "spec_path": getattr(opts, "locustfile", None),
                "command": list(sys.argv),
                "environment": environment(),
                "config": {"rate": self.spec.rate.rate, "profile": self.spec.rate.profile,
                           "duration_s": self.duration_s, "warmup_s": self.spec.warmup_s,
                           "closed_loop": False, "services": {}, "embedded": []},
            }
        run["run_id"] = self.run_dir.name
        run["started_at"] = self.started_at
        run["ended_at"] = utc_now()
        run["interrupted"] = interrupted
        config = run.setdefault("config", {})
        config["processes"] = self.collector.processes
        config["closed_loop"] = any(int(f.get("closed_requests", 0)) for f in self.finals.values())
        config["locust"] = {**config.get("locust", {}), **locust_cfg}
        write_json(path, run)
