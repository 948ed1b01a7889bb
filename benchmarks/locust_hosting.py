"""Why Locust workers host edabench's generator: client CPU per request, Locust's users vs the generator.

One echo server (`targets.echo.server`, base 0 ms, no stalls) serves, one tool at a time:

* Locust FastHttpUser, closed loop (`benchmarks/locustfile_echo.py`, 50 users, no wait): its own
  requests/s and the Locust process's CPU per request between its test start and stop;
* `edabench run` at the same rate: the same generator without Locust, the anchor;
* `edabench locust --host URL --rate R` (one Locust worker hosting the generator, open loop at a
  rate Locust's users reached): CPU per op of every process of the session from the schedule's
  start to its end (drain and results included), sampled with psutil every 0.2 s: the generator
  process, its host, the Locust worker, the Locust master.

    python -m benchmarks.locust_hosting [--seconds 15] [--rate 2000] [--out result.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def _role(p: psutil.Process) -> str | None:
    cmd = " ".join(p.cmdline())
    if "harness.locust.host" in cmd:
        return "host"
    if "multiprocessing" in cmd or "spawn_main" in cmd:
        return "generator"
    if "--worker" in cmd:
        return "locust worker"
    if "-m locust" in cmd:  # the master (or a stand-alone Locust): the command starts it with -m
        return "locust master"
    return None


def locust_closed_loop(url: str, seconds: int, work: Path) -> dict[str, Any]:
    marks = work / "locust-marks.json"
    cmd = [str(BIN / "locust"), "-f", str(REPO / "benchmarks/locustfile_echo.py"), "--headless", "-u", "50", "-r", "50",
           "-t", f"{seconds}s", "--host", url, "--only-summary"]
    subprocess.run(cmd, env={**os.environ, "BENCH_LOCUST_OUT": str(marks)}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=seconds + 60, check=False)
    m = json.loads(marks.read_text())
    n = m["stop"]["requests"] - m["start"]["requests"]
    wall = m["stop"]["wall"] - m["start"]["wall"]
    return {"requests": n, "rate": round(n / wall, 1),
            "cpu_us_per_request": round((m["stop"]["cpu_s"] - m["start"]["cpu_s"]) / n * 1e6, 1)}


def edabench(front: str, url: str, rate: float, seconds: int, work: Path) -> dict[str, Any]:
    """`edabench locust` (front "locust") or `edabench run` (front "run") at `rate` against `url`."""
    runs = work / front
    if front == "locust":
        cmd = [str(BIN / "edabench"), "locust", "--host", f"{url}/echo", "--run-time", f"{seconds}s", "--workers", "1"]
    else:
        spec = work / "http.toml"
        spec.write_text(f'name = "http"\ntarget = "http"\nduration_s = {seconds}\n'
                        f'[target_options]\nurl = "{url}/echo"\n')
        cmd = [str(BIN / "edabench"), "run", str(spec)]
    cmd += ["--rate", str(rate), "--warmup", "1", "--runs-dir", str(runs), "--no-report", "--no-gate"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    seen: dict[int, tuple[str, psutil.Process]] = {proc.pid: ("edabench command", psutil.Process(proc.pid))}
    cpu: dict[int, float] = {}
    at_go: dict[int, float] = {}  # CPU when the schedule started: start-up (imports, driver) left out
    try:
        while proc.poll() is None:
            if not at_go and any(runs.glob("*/timeseries.jsonl")):
                at_go = dict(cpu)
            for p in psutil.process_iter():
                with contextlib.suppress(psutil.Error):
                    if p.pid not in seen and (role := _role(p)) and _descends(p, proc.pid):
                        seen[p.pid] = (role, p)
            for pid, (_, p) in seen.items():
                with contextlib.suppress(psutil.Error):
                    cpu[pid] = _cpu(p)  # the last reading before the process ends
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_bytes())
    sent = summary["overall"]["counts"]["scheduled"] - summary["overall"]["counts"]["not_sent"]
    per_role: dict[str, float] = {}
    for pid, (role, _) in seen.items():
        per_role[role] = per_role.get(role, 0.0) + cpu.get(pid, 0.0) - at_go.get(pid, 0.0)
    return {"rate": rate, "ops": sent, "achieved_rate": summary["overall"]["achieved_rate"],
            "schedule_lag_p99_ms": summary["generator"]["schedule_lag_p99_ms"],
            "kept_up": summary["generator"]["kept_up"],
            "cpu_us_per_op": {role: round(s / sent * 1e6, 1) for role, s in sorted(per_role.items())}}


def _descends(p: psutil.Process, root: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return any(a.pid == root for a in p.parents())
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    port = _port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "targets.echo.server", "--http-port", str(port), "--base-ms", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        assert server.stdout is not None and server.stdout.readline().startswith(b"ready")
        urllib.request.urlopen(f"{url}/echo", timeout=5).read()
        with tempfile.TemporaryDirectory() as tmp:
            result = {"load_average_before": os.getloadavg(),
                      "locust_fasthttpuser": locust_closed_loop(url, args.seconds, Path(tmp)),
                      "edabench_locust": edabench("locust", url, args.rate, args.seconds, Path(tmp)),
                      "edabench_run": edabench("run", url, args.rate, args.seconds, Path(tmp)),
                      "load_average_after": os.getloadavg()}
    finally:
        server.terminate()
        server.wait(10)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
