"""Memory of every process over a run, from its resources.jsonl: flat after the first minute?

    python -m benchmarks.soak_memory RUN_DIR [RUN_DIR ...] [--settle-s 60] [--band 0.10] [--out FILE]

For each process, over the schedule (start-up and shutdown left out): its private memory (resident
minus shared pages; PostgreSQL's shared buffers fill as its cache warms, which is not a leak) as
medians of 31 one-second samples (a backend that lives seconds is not growth): the first after the
settle period, the lowest and highest after it, the last, and whether all stayed within +-band of
the first; the raw maximum is shown beside them; RSS is read where private memory was not recorded. The
embedded broker keeps every record in memory by design (an in-memory store), so it is reported
separately and never judged: its growth is the data the run wrote. Exits 1 when a judged process leaves the band.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import orjson

UNJUDGED = ("tansu", "kafka")  # in-memory storage grows with the data by design
WINDOW = 31  # samples (one a second) per median


def rss_series(run_dir: Path) -> dict[str, list[tuple[float, int]]]:
    series: dict[str, list[tuple[float, int]]] = {}
    for line in (run_dir / "resources.jsonl").read_bytes().splitlines():
        if not line.strip():
            continue
        row = orjson.loads(line)
        for name, proc in row.get("procs", {}).items():
            value = proc.get("private_bytes", proc.get("rss_bytes"))
            if value is not None:
                series.setdefault(name, []).append((float(row["t"]), int(value)))
    return series


def schedule_window(run_dir: Path) -> tuple[float, float]:
    """(start, end) of the schedule on resources.jsonl's clock (seconds since the harness started):
    start-up and shutdown (servers starting, PostgreSQL's backends exiting) are not the run."""
    from datetime import datetime

    run = orjson.loads((run_dir / "run.json").read_bytes())

    def at(key: str) -> datetime:
        return datetime.fromisoformat(run[key].replace("Z", "+00:00"))

    offset = (at("schedule_started_at") - at("started_at")).total_seconds() if run.get("schedule_started_at") else 0.0
    spec = run.get("spec", {})
    return offset, offset + float(spec.get("warmup_s", 0)) + float(spec.get("duration_s", 0))


def rolling_median(values: list[int], window: int) -> list[int]:
    """Medians of `window` consecutive samples: a PostgreSQL backend that lives a few seconds
    (autovacuum, a checkpoint) is not growth; memory that stays is."""
    if window <= 1 or len(values) < window:
        return values
    return [int(statistics.median(values[i:i + window])) for i in range(len(values) - window + 1)]


def judge(run_dir: Path, settle_s: float = 60.0, band: float = 0.10, window: int = WINDOW) -> dict[str, Any]:
    """Memory per process from `settle_s` into the schedule to its end, as `window`-sample medians."""
    out: dict[str, Any] = {}
    start, end = schedule_window(run_dir)
    for name, points in sorted(rss_series(run_dir).items()):
        after = [(t, r) for t, r in points if start + settle_s <= t <= end]
        if len(after) < 2:
            continue
        smooth = rolling_median([r for _, r in after], window)
        base = smooth[0]
        lo, hi = min(smooth), max(smooth)
        judged = not any(name.startswith(u) for u in UNJUDGED)
        out[name] = {
            "settled_mib": round(base / 2**20, 1),
            "min_mib": round(lo / 2**20, 1),
            "max_mib": round(hi / 2**20, 1),
            "raw_max_mib": round(max(r for _, r in after) / 2**20, 1),
            "last_mib": round(after[-1][1] / 2**20, 1),
            "span_s": round(after[-1][0] - after[0][0], 1),
            "judged": judged,
            "within_band": lo >= base * (1 - band) and hi <= base * (1 + band),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--settle-s", type=float, default=60.0)
    p.add_argument("--band", type=float, default=0.10)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    report, ok = {}, True
    for run in a.runs:
        res = report[str(run)] = judge(run, a.settle_s, a.band)
        print(f"{run}:")
        for name, r in res.items():
            flag = ("ok" if r["within_band"] else "OUT OF BAND") if r["judged"] else "(storage, not judged)"
            print(f"  {name:14} settled {r['settled_mib']:8.1f} MiB  min {r['min_mib']:8.1f}  max {r['max_mib']:8.1f}"
                  f"  last {r['last_mib']:8.1f}  (raw max {r['raw_max_mib']:.1f})  over {r['span_s']:.0f} s  {flag}")
            ok &= r["within_band"] or not r["judged"]
    if a.out:
        a.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
