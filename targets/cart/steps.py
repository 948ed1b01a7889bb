"""Per-step view of a stepped cart run: where does p99 cross the goal, and what did each process use?

`python -m targets.cart.steps RUN_DIR [--goal-ms 50]` reads a run directory written by
`edabench run` (timeseries.jsonl, the per-op-kind response interval logs, resources.jsonl) and
prints one line per rate step: offered and answered rates, the share the service shed (503),
timeouts, p50/p99 over every op of the step (exact: the interval histograms are merged, not
averaged), and the CPU of each watched process. The first step whose p99 is over the goal is
the knee.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

_LOWEST, _HIGHEST, _DIGITS = 1, 3_600_000_000, 3  # the harness's histogram layout (us, 1 us .. 1 h)


@dataclass
class Step:
    rate: float
    first_t: int
    last_t: int
    counts: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(_LOWEST, _HIGHEST, _DIGITS))
    cpu: dict[str, list[float]] = field(default_factory=dict)

    @property
    def seconds(self) -> int:
        return self.last_t - self.first_t + 1


def read_steps(run_dir: Path) -> list[Step]:
    """Contiguous seconds of one target rate (warm-up left out) form a step."""
    steps: list[Step] = []
    previous_rejected = 0
    for raw in (run_dir / "timeseries.jsonl").read_bytes().splitlines():
        line = orjson.loads(raw)
        rejected = int((line.get("extra") or {}).get("cart_rejected", previous_rejected))
        if line.get("warmup") or not line.get("target_rate"):
            previous_rejected = rejected
            continue
        t, rate = int(line["t"]), float(line["target_rate"])
        if not steps or steps[-1].rate != rate:
            steps.append(Step(rate, t, t))
        step = steps[-1]
        step.last_t = t
        for key in ("scheduled", "ok", "error", "timeout", "not_sent"):
            step.counts[key] = step.counts.get(key, 0) + int(line.get(key, 0))
        step.rejected += max(0, rejected - previous_rejected)
        previous_rejected = rejected
    return steps


def _log_start(path: Path) -> float | None:
    for line in path.read_text(encoding="ascii", errors="replace").splitlines()[:8]:
        if line.startswith("#[StartTime: "):
            return float(line.split()[1])
    return None


def add_latencies(run_dir: Path, steps: list[Step]) -> None:
    """Merge every op kind's per-second response histograms into the step they belong to."""
    by_second = {t: s for s in steps for t in range(s.first_t, s.last_t + 1)}
    for path in sorted(run_dir.glob("*.response.hlog")):
        reader = HistogramLogReader(str(path), HdrHistogram(_LOWEST, _HIGHEST, _DIGITS))
        while (hist := reader.get_next_interval_histogram()) is not None:
            # interval start as written (seconds from the run's start), relative to the log's base time
            t = round(hist.get_start_time_stamp() / 1000 - reader.base_time_sec) if reader.base_time_sec else None
            step = by_second.get(t if t is not None else -1)
            if step is not None:
                step.latency.add(hist)


def add_cpu(run_dir: Path, steps: list[Step]) -> None:
    """CPU % per watched process in each step (resources.jsonl's clock starts with the run;
    the interval logs' StartTime says where the schedule's second 0 was on that clock)."""
    run = orjson.loads((run_dir / "run.json").read_bytes())
    logs = sorted(run_dir.glob("*.response.hlog"))
    started = run.get("started_at")
    zero = _log_start(logs[0]) if logs else None
    if not started or zero is None:
        return
    offset = zero - datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
    for raw in (run_dir / "resources.jsonl").read_bytes().splitlines():
        sample = orjson.loads(raw)
        t = math.floor(float(sample["t"]) - offset)
        for step in steps:
            if step.first_t + 1 <= t <= step.last_t:  # skip each step's first second (transition)
                for name, proc in sample.get("procs", {}).items():
                    step.cpu.setdefault(name, []).append(float(proc.get("cpu_percent", 0.0)))


def report(steps: list[Step], goal_ms: float) -> str:
    names = sorted({n for s in steps for n in s.cpu})
    head = f"{'rate/s':>7} {'ok/s':>7} {'shed':>6} {'t.out':>6} {'p50 ms':>7} {'p99 ms':>8} "
    lines = [head + " ".join(f"{n[:12] + ' %':>14}" for n in names)]
    knee = None
    for s in steps:
        ok_rate = s.counts.get("ok", 0) / s.seconds
        sent = max(1, s.counts.get("scheduled", 0))
        p50 = s.latency.get_value_at_percentile(50) / 1000 if s.latency.get_total_count() else float("nan")
        p99 = s.latency.get_value_at_percentile(99) / 1000 if s.latency.get_total_count() else float("nan")
        if knee is None and p99 > goal_ms:
            knee = s.rate
        cpu = " ".join(f"{sum(v) / len(v) if v else 0.0:>14.0f}" for v in (s.cpu.get(n, []) for n in names))
        lines.append(
            f"{s.rate:>7.0f} {ok_rate:>7.0f} {s.rejected / sent:>6.1%} {s.counts.get('timeout', 0) / sent:>6.1%} "
            f"{p50:>7.2f} {p99:>8.2f} {cpu}"
        )
    goal_us = goal_ms * 1000
    held = [s.rate for s in steps if s.latency.get_total_count() and s.latency.get_value_at_percentile(99) <= goal_us]
    if knee is None:
        lines.append(f"p99 <= {goal_ms:g} ms at every step")
    else:
        lines.append(f"knee: p99 first over {goal_ms:g} ms at {knee:.0f} req/s")
    if held:
        lines.append(f"highest step held at p99 <= {goal_ms:g} ms: {max(held):.0f} req/s")
    return "\n".join(lines)


def summarize(run_dir: Path, goal_ms: float = 50.0) -> tuple[list[Step], str]:
    steps = read_steps(run_dir)
    add_latencies(run_dir, steps)
    add_cpu(run_dir, steps)
    return steps, report(steps, goal_ms)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m targets.cart.steps", description=__doc__)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--goal-ms", type=float, default=50.0, help="the p99 goal (default 50 ms)")
    args = ap.parse_args(argv)
    print(summarize(args.run_dir, args.goal_ms)[1])


if __name__ == "__main__":
    main()
