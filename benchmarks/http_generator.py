"""HTTP generator: requests/s and client CPU per request, as ratios to Locust FastHttpUser and to wrk.

One echo HTTP server (``targets.echo.server``, base_ms 0, no stalls) is started for the whole
benchmark and shared by every tool, one tool at a time. Per round:

* wrk (closed loop, ``-t1 -c50``) for ``--seconds``: its own requests/s; CPU = the wrk process's
  user+system time (rusage of the exited child: the same counters psutil reads);
* Locust (``locust -f benchmarks/locustfile_echo.py --headless -u 50 -r 50 -t 20s --csv``, closed loop,
  FastHttpUser, no wait): requests/s and CPU from psutil ``cpu_times`` of the Locust process between
  its test start and test stop events (start-up excluded);
* edabench, one generator process (``harness.runner.execute``, echo target, ``url`` = the shared server),
  open loop: the rate is stepped up until a step fails (sent and answered >= 95% of target, no
  failures, schedule-lag p99 <= 100 ms), then a ``--seconds`` run at that max rate (retried once at
  80% of it if it fails: the rate must hold as long as the closed-loop tools ran) gives requests/s and
  CPU per request (psutil ``cpu_times`` of the generator process over the whole run). This is done
  for each connection pool of ``--pools``: the echo driver's default (64) and a bounded one (32).

The server shares the machine's cores with the client: its CPU per request is reported for every tool.
wrk and Locust are closed-loop maxima; edabench's number is the highest rate it keeps on schedule.

    python -m benchmarks.http_generator --out http.json [--rounds 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import (
    ACHIEVED_SHARE,
    HTTP_LAG_P99_LIMIT_US,
    Step,
    cpu_seconds,
    find_max_rate,
    fmt,
    machine,
    median,
    ratio,
    step_from_outcome,
    table,
    write_json,
)
from harness.engine.runner import RunOptions, execute
from harness.loop import run
from harness.plan import make_plan
from harness.spec import parse_spec

CONFIRM_BACKOFF = 0.8
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile_echo.py")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Config:
    rounds: int = 3
    seconds: int = 20  # wrk, Locust and the edabench run at max rate
    connections: int = 50  # wrk connections and Locust users
    start_rate: float = 2000.0
    factor: float = 1.5
    refine: int = 2
    ceiling: float = 100_000.0
    step_warmup_s: int = 1
    step_duration_s: int = 4
    warmup_s: int = 2  # of the edabench run at max rate
    confirm_tries: int = 2  # a failed run at the max is retried at 80% of it
    #: the echo driver's connection pool: None = its default (1000), then a bounded one
    eda_pools: tuple[int | None, ...] = (None, 32)

    @classmethod
    def tiny(cls) -> Config:
        """A few seconds in all: for the smoke test, not for numbers."""
        return cls(rounds=1, seconds=2, connections=8, start_rate=200.0, factor=2.0, refine=0, ceiling=400.0,
                   step_warmup_s=0, step_duration_s=1, warmup_s=0, confirm_tries=1, eda_pools=(None,))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def echo_server(log_path: Path) -> Iterator[tuple[str, psutil.Process]]:
    """The echo HTTP server, base_ms 0, no stalls; stopped (by its pid) on exit."""
    port = _free_port()
    argv = [sys.executable, "-m", "targets.echo.server", "--http-port", str(port), "--base-ms", "0"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(b"ready"):
            raise RuntimeError(f"echo server did not start; see {log_path}")
        yield f"http://127.0.0.1:{port}", psutil.Process(proc.pid)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _wait_rusage(proc: subprocess.Popen[Any], timeout_s: float) -> float:
    """Wait for a child and return its user+system CPU seconds (what psutil's cpu_times gives while alive)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_utime + usage.ru_stime)
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
        time.sleep(0.05)


def run_wrk(url: str, seconds: int, connections: int, server: psutil.Process) -> dict[str, Any]:
    binary = shutil.which("wrk")
    if binary is None:
        return {"skipped": "wrk is not installed (Debian: apt-get install -y wrk)"}
    s0 = cpu_seconds(server)
    proc = subprocess.Popen([binary, "-t1", f"-c{connections}", f"-d{seconds}s", f"{url}/echo"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    cpu = _wait_rusage(proc, seconds + 30)
    proc.stdout.close()
    server_cpu = cpu_seconds(server) - s0
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m is None or rps is None:
        return {"skipped": f"could not parse wrk output: {out[-300:]!r}"}
    requests = int(m.group(1))
    return {
        "requests": requests,
        "rate": float(rps.group(1)),
        "cpu_s": round(cpu, 3),
        "cpu_us_per_request": cpu / requests * 1e6,
        "server_cpu_us_per_request": server_cpu / requests * 1e6,
        "errors": int(errors.group(1)) if errors else 0,
        "command": f"wrk -t1 -c{connections} -d{seconds}s URL/echo",
    }


def run_locust(url: str, seconds: int, users: int, server: psutil.Process, work: Path) -> dict[str, Any]:
    marks_path = work / f"locust-marks-{time.monotonic_ns()}.json"
    prefix = work / f"locust-{time.monotonic_ns()}"
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
            "-t", f"{seconds}s", "--csv", str(prefix), "--host", url, "--only-summary", "--loglevel", "WARNING"]
    env = {**os.environ, "BENCH_LOCUST_OUT": str(marks_path)}
    s0 = cpu_seconds(server)
    with (work / "locust.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=REPO)
        total_cpu = _wait_rusage(proc, seconds + 60)
    server_cpu = cpu_seconds(server) - s0
    if not marks_path.exists():
        return {"skipped": f"Locust did not report (exit {proc.returncode}); see {work / 'locust.log'}"}
    marks = json.loads(marks_path.read_text())
    start, stop = marks["start"], marks["stop"]
    requests = int(stop["requests"] - start["requests"])
    wall = stop["wall"] - start["wall"]
    cpu = stop["cpu_s"] - start["cpu_s"]
    csv_rate = csv_requests = None
    stats_csv = Path(f"{prefix}_stats.csv")
    if stats_csv.exists():
        with stats_csv.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("Name") == "Aggregated":
                    csv_rate, csv_requests = float(row["Requests/s"]), int(row["Request Count"])
    return {
        "requests": requests,
        "rate": requests / wall if wall > 0 else None,
        "csv_requests_per_s": csv_rate,
        "csv_request_count": csv_requests,
        "cpu_s": round(cpu, 3),
        "cpu_s_whole_process": round(total_cpu, 3),
        "cpu_us_per_request": cpu / requests * 1e6 if requests else None,
        "server_cpu_us_per_request": server_cpu / requests * 1e6 if requests else None,
        "failures": int(stop["failures"] - start["failures"]),
        "command": f"locust -f benchmarks/locustfile_echo.py --headless -u {users} -r {users} -t {seconds}s "
                   f"--csv PREFIX --host URL",
    }


async def edabench_step(url: str, rate: float, warmup_s: int, duration_s: int, runs_root: Path,
                        server: psutil.Process, pool: int | None = None) -> Step:
    spec = parse_spec({
        "name": f"bench-http-{int(rate)}",
        "target": "echo",
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "timeout_s": 2,
        "drain_timeout_s": 2,
        "processes": 1,
        "rate": {"rate": rate},
        "ops": [{"name": "echo"}],
        "target_options": {"transport": "http", "url": url, **({"connections": pool} if pool else {})},
    })
    s0 = cpu_seconds(server)
    outcome = await execute(make_plan(spec), RunOptions(runs_root=runs_root, isolate=True,
                                                        command=["benchmarks.http_generator"]))
    step = step_from_outcome(rate, outcome, outcome.summary["generator"]["cpu_s"], warmup_s, duration_s,
                             HTTP_LAG_P99_LIMIT_US, run_dir=str(outcome.run_dir))
    if step.ops_total:
        step.extra["server_cpu_us_per_request"] = (cpu_seconds(server) - s0) / step.ops_total * 1e6
    return step


async def edabench_search(cfg: Config, url: str, server: psutil.Process, runs: Path, index: int,
                          pool: int | None, log: Any) -> dict[str, Any]:
    """Max open-loop rate with this connection pool (None: the echo driver's default), then a long run."""
    label = f"pool {pool}" if pool else "pool default"

    async def step(rate: float) -> Step:
        s = await edabench_step(url, rate, cfg.step_warmup_s, cfg.step_duration_s, runs, server, pool)
        log(f"round {index} edabench {label}: step {rate:,.0f}/s: sent {s.sent_rate:,.0f}/s, ok {s.ok_rate:,.0f}/s, "
            f"lag p99 {s.lag_p99_us} us, {'pass' if s.passed else 'FAIL'}")
        return s

    best, steps = await find_max_rate(step, cfg.start_rate, cfg.factor, cfg.refine, cfg.ceiling)
    at_max = None
    confirms: list[Step] = []
    rate = best
    for _ in range(cfg.confirm_tries):  # the max must also hold for as long as the closed-loop tools ran
        if not rate:
            break
        at_max = await edabench_step(url, rate, cfg.warmup_s, cfg.seconds, runs, server, pool)
        confirms.append(at_max)
        log(f"round {index} edabench {label}: {rate:,.0f}/s for {cfg.seconds}s: ok {at_max.ok_rate:,.0f}/s, "
            f"CPU {at_max.cpu_us_per_op:.0f} us/request, {'pass' if at_max.passed else 'FAIL'}")
        if at_max.passed:
            break
        rate = round(rate * CONFIRM_BACKOFF, -2)
    return {
        "connections": pool,
        "max_rate": best,
        "sustained_rate": at_max.rate if at_max and at_max.passed else None,
        "run": at_max.as_dict() if at_max else None,
        "steps": [s.as_dict() for s in steps],
        "confirm_runs": [s.as_dict() for s in confirms],
    }


def _variant_name(pool: int | None) -> str:
    return f"pool_{pool}" if pool else "pool_default"


async def one_round(cfg: Config, url: str, server: psutil.Process, work: Path, index: int,
                    log: Any = print) -> dict[str, Any]:
    wrk = await asyncio.to_thread(run_wrk, url, cfg.seconds, cfg.connections, server)
    log(f"round {index}: wrk {wrk.get('rate', wrk.get('skipped'))}")
    locust = await asyncio.to_thread(run_locust, url, cfg.seconds, cfg.connections, server, work)
    log(f"round {index}: locust {locust.get('rate', locust.get('skipped'))}")
    runs = work / f"runs-{index}"
    edabench: dict[str, Any] = {}
    for pool in cfg.eda_pools:
        v = await edabench_search(cfg, url, server, runs, index, pool, log)
        run_ = v["run"]
        eda_rate = run_["ok_rate"] if run_ else None
        eda_cpu = run_["cpu_us_per_op"] if run_ else None
        v["ratios"] = {
            "rate_vs_locust": ratio(eda_rate, locust.get("rate")),
            "rate_vs_wrk": ratio(eda_rate, wrk.get("rate")),
            "cpu_per_request_vs_locust": ratio(eda_cpu, locust.get("cpu_us_per_request")),
            "cpu_per_request_vs_wrk": ratio(eda_cpu, wrk.get("cpu_us_per_request")),
        }
        edabench[_variant_name(pool)] = v
    return {"round": index, "wrk": wrk, "locust": locust, "edabench": edabench}


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def pick(tool: str, key: str) -> float | None:
        return median([r[tool].get(key) for r in rounds])

    out: dict[str, Any] = {
        "wrk_rate": pick("wrk", "rate"),
        "wrk_cpu_us_per_request": pick("wrk", "cpu_us_per_request"),
        "wrk_server_cpu_us_per_request": pick("wrk", "server_cpu_us_per_request"),
        "locust_rate": pick("locust", "rate"),
        "locust_cpu_us_per_request": pick("locust", "cpu_us_per_request"),
        "locust_server_cpu_us_per_request": pick("locust", "server_cpu_us_per_request"),
        "edabench": {},
    }
    for name in rounds[0]["edabench"]:
        vs = [r["edabench"][name] for r in rounds]
        runs = [v["run"] for v in vs if v["run"]]
        out["edabench"][name] = {
            "max_rate": median([v["max_rate"] for v in vs]),
            "sustained_rate": median([v["sustained_rate"] for v in vs]),
            "held_in_rounds": sum(1 for v in vs if v["sustained_rate"]),
            "rate": median([x["ok_rate"] for x in runs]),
            "cpu_us_per_request": median([x["cpu_us_per_op"] for x in runs]),
            "server_cpu_us_per_request": median([x["extra"].get("server_cpu_us_per_request") for x in runs]),
            "lag_p99_us": median([x["lag_p99_us"] for x in runs]),
            **{k: median([v["ratios"][k] for v in vs]) for k in vs[0]["ratios"]},
        }
    return out


async def bench(cfg: Config, work: Path | None = None, log: Any = print) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-http-")))
        before = machine()
        url, server = stack.enter_context(echo_server(work / "echo.log"))
        rounds = [await one_round(cfg, url, server, work, i, log) for i in range(cfg.rounds)]
    return {
        "benchmark": "http_generator",
        "definition": {
            "edabench_rate": f"answered requests/s of a {cfg.seconds}s open-loop run at the max rate: the highest "
                             f"stepped rate with sent and answered >= {ACHIEVED_SHARE:.0%} of target, no failures "
                             f"and schedule-lag p99 <= {HTTP_LAG_P99_LIMIT_US // 1000} ms (retried at "
                             f"{CONFIRM_BACKOFF:.0%} if the {cfg.seconds}s run fails)",
            "wrk_and_locust_rate": "closed loop, as many requests as the tool can do",
            "cpu": "user+system CPU seconds of the client process / requests (server likewise)",
        },
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()},
        "machine_before": before,
        "machine_after": machine(),
        "rounds": rounds,
        "median": aggregate(rounds),
    }


def render(result: dict[str, Any]) -> str:
    m = result["median"]
    rows: list[list[Any]] = [
        ["wrk (-t1)", m["wrk_rate"], m["wrk_cpu_us_per_request"], m["wrk_server_cpu_us_per_request"],
         None, None, None, None],
        ["Locust FastHttpUser", m["locust_rate"], m["locust_cpu_us_per_request"], m["locust_server_cpu_us_per_request"],
         None, None, None, None],
    ]
    for name, v in m["edabench"].items():
        rows.append([f"edabench 1 process, {name}", v["rate"], v["cpu_us_per_request"],
                     v["server_cpu_us_per_request"], v["rate_vs_locust"], v["cpu_per_request_vs_locust"],
                     v["rate_vs_wrk"], v["cpu_per_request_vs_wrk"]])
    headers = ["client (median of rounds)", "req/s", "client CPU us/req", "server CPU us/req",
               "req/s vs Locust", "CPU/req vs Locust", "req/s vs wrk", "CPU/req vs wrk"]
    lines = [table(headers, rows)]
    for name, v in m["edabench"].items():
        lines.append(f"edabench {name}: max over short steps {fmt(v['max_rate'])}/s, held for the whole run "
                     f"{fmt(v['sustained_rate'])}/s ({v['held_in_rounds']} of {len(result['rounds'])} rounds), "
                     f"schedule-lag p99 there {fmt(v['lag_p99_us'])} us")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="write the result as JSON here")
    p.add_argument("--rounds", type=int, default=Config.rounds)
    p.add_argument("--seconds", type=int, default=Config.seconds)
    p.add_argument("--connections", type=int, default=Config.connections, help="wrk connections and Locust users")
    p.add_argument("--pools", default="default,32",
                   help="edabench echo-driver pools to measure, comma-separated ('default' = the driver's 64)")
    p.add_argument("--start-rate", type=float, default=Config.start_rate)
    p.add_argument("--factor", type=float, default=Config.factor)
    p.add_argument("--refine", type=int, default=Config.refine)
    p.add_argument("--work", default=None, help="keep run directories and logs here (default: temporary)")
    a = p.parse_args(argv)
    pools = tuple(None if x == "default" else int(x) for x in a.pools.split(","))
    cfg = Config(rounds=a.rounds, seconds=a.seconds, connections=a.connections, start_rate=a.start_rate,
                 factor=a.factor, refine=a.refine, eda_pools=pools)
    work = Path(a.work) if a.work else None
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    result = run(bench(cfg, work))
    print(render(result))
    if a.out:
        write_json(a.out, result)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
