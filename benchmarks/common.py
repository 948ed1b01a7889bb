"""Shared pieces of the generator benchmarks: CPU accounting, the max-rate search, tables, JSON."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import psutil

from harness.engine.runner import RunOutcome
from harness.results.hdr import decode, new_histogram, stats
from harness.results.rundir import environment

#: a step's schedule-lag p99 above this means the generator no longer keeps its schedule
LAG_P99_LIMIT_US = 10_000
#: the HTTP benchmark's earlier limit, kept so its numbers compare with the ones measured before
HTTP_LAG_P99_LIMIT_US = 100_000
#: a step passes when the sent and acknowledged rates are at least this share of the target
ACHIEVED_SHARE = 0.95


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU time of one process (all its threads), in seconds."""
    t = proc.cpu_times()
    return float(t.user + t.system)


def self_cpu() -> float:
    return cpu_seconds(psutil.Process())


def median(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}" if abs(value) >= 10 else f"{value:.{max(digits, 2)}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text (and Markdown-compatible) table."""
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Where the numbers come from: cores, load, versions (the machine is shared)."""
    wrk = None
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5)
        wrk = (out.stdout or out.stderr).split("[")[0].strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": environment()["cpu"],
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in ("aiokafka", "aiohttp", "confluent-kafka", "locust", "uvloop")},
        "wrk": wrk,
    }


@dataclass
class Step:
    """One open-loop run of the harness at a fixed rate, judged against the schedule."""

    rate: float
    sent_rate: float  # ops handed to the driver per second, inside the measured window
    ok_rate: float  # ops completed ok per second, inside the measured window
    lag_p50_us: int | None  # schedule lag inside the measured window (warm-up excluded)
    lag_p99_us: int | None
    lag_max_us: int | None
    cpu_s: float  # generator process CPU over the whole run
    ops_total: int  # every op the generator sent (warm-up included), for CPU per op
    failed: int  # errors + timeouts + not-sent
    balanced: bool
    extra: dict[str, Any] = field(default_factory=dict)
    lag_limit_us: int = LAG_P99_LIMIT_US

    @property
    def passed(self) -> bool:
        return (
            self.balanced
            and self.failed == 0
            and self.sent_rate >= ACHIEVED_SHARE * self.rate
            and self.ok_rate >= ACHIEVED_SHARE * self.rate
            and self.lag_p99_us is not None
            and self.lag_p99_us <= self.lag_limit_us
        )

    @property
    def cpu_us_per_op(self) -> float | None:
        return self.cpu_s / self.ops_total * 1e6 if self.ops_total else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "cpu_us_per_op": self.cpu_us_per_op}


def window_stats(hlog: Path, first_s: float, last_s: float) -> dict[str, Any]:
    """Percentiles of an interval log restricted to intervals starting in [first_s, last_s)."""
    hist = new_histogram()
    if hlog.exists():
        for line in hlog.read_text(encoding="ascii").splitlines():
            if not line or line[0] in "#\"":
                continue
            start, _length, _max, encoded = line.split(",", 3)
            if first_s <= float(start) < last_s:
                hist.add(decode(encoded))
    return stats(hist)


def step_from_outcome(rate: float, outcome: RunOutcome, cpu_s: float, warmup_s: float, duration_s: float,
                      lag_limit_us: int = LAG_P99_LIMIT_US, **extra: Any) -> Step:
    """Read a finished run: rates inside the measured window come from the per-second timeseries."""
    summary = outcome.summary
    sent = ok = 0
    first, last = int(warmup_s), int(warmup_s + duration_s)
    for line in (outcome.run_dir / "timeseries.jsonl").read_bytes().splitlines():
        row = orjson.loads(line)
        if first <= row["t"] < last:
            sent += row.get("sent", 0)
            ok += row.get("ok", 0)
    counts = summary["overall"].get("counts", {}) if summary["overall"] else {}
    lag = window_stats(outcome.run_dir / "schedule-lag.hlog", first, last)
    return Step(
        rate=rate,
        sent_rate=sent / duration_s,
        ok_rate=ok / duration_s,
        lag_p50_us=lag.get("p50"),
        lag_p99_us=lag.get("p99"),
        lag_max_us=lag.get("max"),
        cpu_s=cpu_s,
        ops_total=int(counts.get("ok", 0)) + int(counts.get("error", 0)) + int(counts.get("timeout", 0)),
        failed=int(counts.get("error", 0)) + int(counts.get("timeout", 0)) + int(counts.get("not_sent", 0)),
        balanced=bool(summary["books_balanced"]),
        extra={"summary_schedule_lag_us": summary["schedule_lag_us"], **extra},
        lag_limit_us=lag_limit_us,
    )


async def find_max_rate(run_step: Callable[[float], Awaitable[Step]], start: float, factor: float,
                        refine: int, ceiling: float) -> tuple[float | None, list[Step]]:
    """Step the rate up by `factor` until a step fails, then bisect `refine` times.

    "Max" is the highest rate whose step passed (`Step.passed`): sent and acknowledged rates
    within 5% of the target and schedule-lag p99 under the limit. Returns (max or None, steps).
    """
    steps: list[Step] = []
    best: float | None = None
    failed_at: float | None = None
    rate = start
    while rate <= ceiling:
        step = await run_step(rate)
        steps.append(step)
        if not step.passed:
            failed_at = rate
            break
        best = rate
        rate = round(rate * factor, -2)
    if best is None or failed_at is None:
        return best, steps
    lo, hi = best, failed_at
    for _ in range(refine):
        mid = round((lo + hi) / 2, -2)
        if mid <= lo or mid >= hi:
            break
        step = await run_step(mid)
        steps.append(step)
        if step.passed:
            lo = mid
        else:
            hi = mid
    return lo, steps


class Timer:
    """Wall and process CPU time around a block."""

    def __init__(self, proc: psutil.Process | None = None) -> None:
        self.proc = proc or psutil.Process()
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Timer:
        self._w0, self._c0 = time.perf_counter(), cpu_seconds(self.proc)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w0
        self.cpu = cpu_seconds(self.proc) - self._c0
