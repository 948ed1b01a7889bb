"""Memory of every process over a run, from its resources.jsonl: flat after the first minute?

    python -m benchmarks.soak_memory RUN_DIR [RUN_DIR ...] [--settle-s 60] [--band 0.10] [--out FILE]

For each process: RSS at the end of the settle period, the lowest and highest after it, the last,
and whether all stayed within +-band of the settled value. The embedded broker keeps every record
in memory by design (an in-memory store), so it is reported separately and never judged: its
growth is the data the run wrote. Exits 1 when a judged process leaves the band.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

UNJUDGED = ("tansu", "kafka")  # in-memory storage grows with the data by design


def rss_series(run_dir: Path) -> dict[str, list[tuple[float, int]]]:
    series: dict[str, list[tuple[float, int]]] = {}
    for line in (run_dir / "resources.jsonl").read_bytes().splitlines():
        if not line.strip():
            continue
        row = orjson.loads(line)
        for name, proc in row.get("procs", {}).items():
            if proc.get("rss_bytes") is not None:
                series.setdefault(name, []).append((float(row["t"]), int(proc["rss_bytes"])))
    return series


def judge(run_dir: Path, settle_s: float = 60.0, band: float = 0.10) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, points in sorted(rss_series(run_dir).items()):
        after = [(t, r) for t, r in points if t >= settle_s]
        if len(after) < 2:
            continue
        base = after[0][1]
        lo, hi = min(r for _, r in after), max(r for _, r in after)
        judged = not any(name.startswith(u) for u in UNJUDGED)
        out[name] = {
            "settled_mib": round(base / 2**20, 1),
            "min_mib": round(lo / 2**20, 1),
            "max_mib": round(hi / 2**20, 1),
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
                  f"  last {r['last_mib']:8.1f}  over {r['span_s']:.0f} s  {flag}")
            ok &= r["within_band"] or not r["judged"]
    if a.out:
        a.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
