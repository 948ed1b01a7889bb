"""False alarms and detection of the statistical baseline comparison (harness/results/baseline.py).

Issue 11's measurement: over N back-to-back runs of an unchanged build (the echo target over HTTP, 10 s
each) the comparison may raise at most one false alarm, and it must flag a 50% slower service (echo
``base_ms`` 10 -> 15).

Every run is made by the ``edabench run`` command of the environment this script runs in
(``python -m harness.cli run``), on a workload written to a temporary directory from
workloads/echo-http.toml: ``duration_s = 10``, ``warmup_s = 2``, ``base_ms = 10`` and no stalls (the
stalls of echo-http are a designed 1 s freeze every 5 s; with 10 s runs their phase against the run
decides the p99, which measures the start-up, not the gate; ``--stall-every-s/--stall-for-s`` put them
back). Then:

* false alarms: run k (k = 2..N) compared with runs 1..k-1 pooled (the criterion: at most
  ``--max-false-alarms``), and, for information, with run k-1 alone (a single baseline, where the
  run-to-run spread cannot be estimated);
* detection: ``--slow-runs`` runs with ``base_ms`` times ``--slow-factor``, each compared with all N
  unchanged runs and with the first one alone; every comparison must flag a regression.

A comparison "alarms" when any of its rows is a regression. Exit status 0 when both criteria hold.

    python -m benchmarks.gate_noise --runs 20 [--out gate_noise.json] [--keep runs/gate-noise]
    python -m benchmarks.gate_noise --analyze runs/gate-noise     # compare again, no new runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.results.baseline import compare

ROOT = Path(__file__).resolve().parent.parent
SOURCE_WORKLOAD = ROOT / "workloads" / "echo-http.toml"
NAME = "echo-gate-noise"  # one name for the unchanged and the slow runs: the comparison refuses others


# -- the workload ------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(data: dict[str, Any]) -> str:
    """TOML for a spec's shape: scalars, tables of scalars, arrays of tables of scalars (no writer in the
    standard library)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict | list)
             or (isinstance(v, list) and not any(isinstance(x, dict) for x in v))]
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]", *(f"{k} = {_toml_value(v)}" for k, v in value.items())]
        elif isinstance(value, list) and any(isinstance(x, dict) for x in value):
            for item in value:
                lines += ["", f"[[{key}]]", *(f"{k} = {_toml_value(v)}" for k, v in item.items())]
    return "\n".join(lines) + "\n"


def workload(args: argparse.Namespace, base_ms: float) -> dict[str, Any]:
    spec = tomllib.loads(SOURCE_WORKLOAD.read_text(encoding="utf-8"))
    spec.pop("slo", None)  # the runs are compared with each other, not gated on goals
    spec.update(name=NAME, description="gate noise experiment (benchmarks/gate_noise.py)",
                duration_s=args.duration, warmup_s=args.warmup, processes=1)
    spec["rate"] = {"profile": "constant", "rate": args.rate}
    options = spec.setdefault("target_options", {})
    options.update(transport="http", base_ms=base_ms, stall_every_s=args.stall_every_s,
                   stall_for_s=args.stall_for_s)
    return spec


# -- runs ---------------------------------------------------------------------------------------------


def edabench_run(spec_path: Path, runs_dir: Path) -> Path:
    """One `edabench run` of this environment; returns the run directory it created."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    before = set(runs_dir.iterdir())
    cmd = [sys.executable, "-m", "harness.cli", "run", str(spec_path), "--runs-dir", str(runs_dir),
           "--no-report", "--no-gate"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    created = [p for p in set(runs_dir.iterdir()) - before if (p / "summary.json").exists()]
    if proc.returncode != 0 or len(created) != 1:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode} with {len(created)} run(s):\n{tail}")
    return created[0]


def make_runs(args: argparse.Namespace, root: Path) -> tuple[list[Path], list[Path]]:
    specs = root / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, base_ms in (("base", args.base_ms), ("slow", args.base_ms * args.slow_factor)):
        paths[label] = specs / f"{label}.toml"
        paths[label].write_text(to_toml(workload(args, base_ms)), encoding="utf-8")
    base: list[Path] = []
    slow: list[Path] = []
    total = args.runs + args.slow_runs
    for i in range(total):
        label = "base" if i < args.runs else "slow"
        started = time.monotonic()
        run = edabench_run(paths[label], root / label)
        (base if label == "base" else slow).append(run)
        print(f"[{i + 1}/{total}] {label}: {run.name} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return base, slow


def existing_runs(root: Path) -> tuple[list[Path], list[Path]]:
    def runs(sub: str) -> list[Path]:
        d = root / sub
        return sorted(p for p in d.iterdir() if (p / "summary.json").exists()) if d.is_dir() else []

    return runs("base"), runs("slow")


# -- comparisons --------------------------------------------------------------------------------------


def verdict(current: Path, baselines: list[Path]) -> dict[str, Any]:
    rows = compare(current, baselines)
    latency = [r for r in rows if r.op == "overall" and r.metric.endswith("_ms")]
    tested = [r.p_value for r in latency if r.p_value is not None]
    return {
        "current": current.name,
        "baselines": len(baselines),
        "alarm": any(r.regression for r in rows),
        "regressions": [f"{r.op} {r.metric}: {r.detail}" for r in rows if r.regression],
        "min_p": min(tested) if tested else None,
        "rows": [asdict(r) for r in rows],
    }


def _ms(rows: list[dict[str, Any]], metric: str, which: str) -> float | None:
    for r in rows:
        if r["op"] == "overall" and r["metric"] == metric:
            return r[which]
    return None


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(out)


def analyse(base: list[Path], slow: list[Path], max_false_alarms: int) -> dict[str, Any]:
    if len(base) < 2 or not slow:
        raise SystemExit(f"need >= 2 unchanged runs and >= 1 slow run; have {len(base)} and {len(slow)}")
    noise = []
    for k in range(1, len(base)):
        noise.append({"run": k + 1, "vs_previous_runs": verdict(base[k], base[:k]),
                      "vs_previous_run": verdict(base[k], base[k - 1:k])})
    detection = [{"run": s.name, "vs_all": verdict(s, base), "vs_first": verdict(s, base[:1])} for s in slow]
    false_alarms = sum(n["vs_previous_runs"]["alarm"] for n in noise)
    pairwise_alarms = sum(n["vs_previous_run"]["alarm"] for n in noise)
    detected = all(d["vs_all"]["alarm"] and d["vs_first"]["alarm"] for d in detection)
    return {
        "false_alarms": false_alarms,
        "comparisons": len(noise),
        "false_alarms_vs_previous_run_only": pairwise_alarms,
        "max_false_alarms": max_false_alarms,
        "detected": detected,
        "passed": false_alarms <= max_false_alarms and detected,
        "noise": noise,
        "detection": detection,
    }


def report(result: dict[str, Any]) -> str:
    rows = []
    for n in result["noise"]:
        pooled, single = n["vs_previous_runs"], n["vs_previous_run"]
        r = pooled["rows"]
        rows.append([str(n["run"]), _fmt(_ms(r, "p50_ms", "current")), _fmt(_ms(r, "p99_ms", "current")),
                     _fmt(_ms(r, "p99_ms", "ratio")), _fmt(pooled["min_p"], ".2g"),
                     "ALARM" if pooled["alarm"] else "ok", "ALARM" if single["alarm"] else "ok"])
    out = ["Unchanged build: run k against runs 1..k-1 (pooled) and against run k-1 alone",
           table(["run", "p50 ms", "p99 ms", "p99 ratio", "min p", "vs runs <k", "vs run k-1"], rows), ""]
    rows = []
    for d in result["detection"]:
        for label in ("vs_all", "vs_first"):
            v = d[label]
            r = v["rows"]
            rows.append([d["run"], f"{v['baselines']} baseline run(s)", _fmt(_ms(r, "p50_ms", "ratio")),
                         _fmt(_ms(r, "p99_ms", "ratio")), _fmt(v["min_p"], ".2g"),
                         "FLAGGED" if v["alarm"] else "missed"])
    out += ["Slower service", table(["run", "against", "p50 ratio", "p99 ratio", "min p", "verdict"], rows), ""]
    out.append(f"false alarms: {result['false_alarms']} of {result['comparisons']} comparisons against the "
               f"previous runs (allowed {result['max_false_alarms']}); against the previous run alone: "
               f"{result['false_alarms_vs_previous_run_only']}")
    out.append(f"slower service detected in every comparison: {'yes' if result['detected'] else 'NO'}")
    out.append("PASS" if result["passed"] else "FAIL")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="unchanged-build runs (default 20)")
    ap.add_argument("--slow-runs", type=int, default=2, help="runs of the slower service (default 2)")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run (default 2)")
    ap.add_argument("--rate", type=float, default=200.0, help="requests/s (default 200, as echo-http)")
    ap.add_argument("--base-ms", type=float, default=10.0, help="echo base latency (default 10)")
    ap.add_argument("--slow-factor", type=float, default=1.5, help="base_ms multiplier of the slow runs")
    ap.add_argument("--stall-every-s", type=float, default=0.0, help="echo stall period (default 0: none)")
    ap.add_argument("--stall-for-s", type=float, default=0.0, help="echo stall length (default 0)")
    ap.add_argument("--max-false-alarms", type=int, default=1, help="allowed false alarms (default 1)")
    ap.add_argument("--keep", type=Path, help="write the runs here and keep them (default: a temporary dir)")
    ap.add_argument("--analyze", type=Path, help="compare the runs of an earlier --keep directory, run nothing")
    ap.add_argument("--out", type=Path, help="write the result as JSON")
    args = ap.parse_args(argv)

    started = time.time()
    tmp: Path | None = None
    try:
        if args.analyze:
            base, slow = existing_runs(args.analyze)
        else:
            root = args.keep or Path(tempfile.mkdtemp(prefix="gate-noise-"))
            tmp = None if args.keep else root
            base, slow = make_runs(args, root)
        result = analyse(base, slow, args.max_false_alarms)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(result))
    if args.out:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        meta = {"settings": settings, "python": platform.python_version(), "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
                "elapsed_s": round(time.time() - started, 1), "base_runs": [p.name for p in base],
                "slow_runs": [p.name for p in slow]}
        args.out.write_text(json.dumps({**meta, **result}, indent=2, default=str), encoding="utf-8")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

