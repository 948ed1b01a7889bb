"""One `edabench locust` run: services, the target, Locust's processes, then report and gate.

The same lifecycle as `harness.runner.execute` (services -> target launch -> load ->
results), with Locust generating the load: its master merges the workers' HDR reports into
the run directory this module prepared; this module then adds the report, as `edabench run`.
"""

from __future__ import annotations

import importlib
import logging
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.collector import write_json
from harness.interrupts import GracefulSigint
from harness.locust import runtime
from harness.locust.procs import LocustPlan, LocustProcesses, free_port
from harness.locust.workload import ENV_SPEC, load
from harness.registry import load_target
from harness.resources import ResourceSampler
from harness.rundir import environment, make_run_dir, utc_now
from harness.runner import build_report, target_up
from harness.spec import Spec

log = logging.getLogger(__name__)


@dataclass
class LocustOptions:
    workload: str
    web: bool = False
    autostart: bool = False
    workers: int = 1
    users: int | None = None
    spawn_rate: float | None = None
    duration_s: float | None = None  # the measured duration (--run-time); None: the spec's, or until stopped
    warmup_s: float | None = None
    rate: float | None = None
    host: str | None = None
    web_host: str = "127.0.0.1"
    web_port: int = 8089
    master_bind_host: str = "127.0.0.1"
    master_bind_port: int | None = None
    expect_workers: int | None = None  # workers in all (local + remote); default: the local ones
    user_classes: list[str] = field(default_factory=list)
    target_options: dict[str, Any] = field(default_factory=dict)  # merged over the spec's
    extra_args: list[str] = field(default_factory=list)  # passed through to the master
    services: dict[str, str | None] = field(default_factory=dict)
    runs_root: Path = Path("runs")
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    report: bool = True


@dataclass
class LocustOutcome:
    run_dirs: list[Path]
    summaries: list[dict[str, Any]]
    reports: list[Path | None]
    exit_code: int

    @property
    def ok(self) -> bool:
        return bool(self.summaries) and all(
            s["books_balanced"] and not s["verify"]["problems"] for s in self.summaries)


def _prepare(spec: Spec, services: dict[str, str], launched: dict[str, Any]) -> dict[str, Any]:
    """The options Locust's users see: target options, what the launch yielded, the services."""
    return {**spec.target_options, **launched, "services": services}


async def _run_prepare_hook(hook: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """A spec's `workload_options.prepare = "module:function"`: async setup on this side (schemas...)."""
    if not hook:
        return {}
    module, _, attr = hook.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    return dict(await fn(options) or {})


def plan(opts: LocustOptions, locustfile: Path, spec: Spec, run_dir: Path, options: dict[str, Any]
         ) -> LocustPlan:
    users = opts.users or 1
    spawn_rate = opts.spawn_rate or float(users)
    master_port = opts.master_bind_port or free_port()
    host = opts.host or options.get("url")
    master = ["--master", "--master-bind-host", opts.master_bind_host, "--master-bind-port", str(master_port),
              "--expect-workers", str(opts.expect_workers or opts.workers),
              "-u", str(users), "-r", str(spawn_rate)] if opts.workers or opts.expect_workers else [
              "-u", str(users), "-r", str(spawn_rate)]
    if host:
        master += ["--host", str(host)]
    if opts.web:
        master += ["--web-host", opts.web_host, "--web-port", str(opts.web_port)]
        if opts.autostart:
            master.append("--autostart")
    else:
        master.append("--headless")
    master += [*opts.extra_args, *opts.user_classes]
    workers = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port), *opts.user_classes]
    timed = not opts.web or opts.autostart or opts.duration_s is not None
    env = {
        ENV_SPEC: orjson.dumps(spec.model_dump(mode="json")).decode(),
        runtime.ENV_RUN_DIR: str(run_dir),
        runtime.ENV_RUNS_ROOT: str(run_dir.parent),
        runtime.ENV_MANIFEST: str(run_dir / "logs" / "locust-runs.txt"),
        runtime.ENV_OPTIONS: orjson.dumps(options, default=str).decode(),
        runtime.ENV_USERS: str(users),
        runtime.ENV_DURATION: str(spec.duration_s) if timed else "",
        runtime.ENV_END: "stop" if opts.web else "quit",
    }
    return LocustPlan(locustfile, master, opts.workers, workers, env, run_dir / "logs")


def _run_json(spec: Spec, opts: LocustOptions, run_dir: Path, locustfile: Path) -> dict[str, Any]:
    return {
        "schema": "edabench.run/1",
        "name": spec.name,
        "run_id": run_dir.name,
        "spec": spec.model_dump(mode="json"),
        "spec_path": str(locustfile),
        "config": {
            "rate": spec.rate.rate,
            "profile": spec.rate.profile,
            "duration_s": spec.duration_s,
            "warmup_s": spec.warmup_s,
            "processes": opts.workers or 1,
            "closed_loop": False,
            "services": {},
            "embedded": [],
            "locust": {"workers": opts.workers, "users": opts.users, "spawn_rate": opts.spawn_rate,
                       "web": opts.web, "user_classes": opts.user_classes},
        },
        "command": opts.command,
        "environment": environment(),
        "started_at": utc_now(),
        "ended_at": None,
        "interrupted": False,
    }


async def execute(opts: LocustOptions, on_started: Any = None) -> LocustOutcome:
    overrides = {"duration_s": opts.duration_s, "warmup_s": opts.warmup_s, "rate": opts.rate}
    locustfile, spec = load(opts.workload, **overrides)
    if opts.target_options:
        spec = spec.with_overrides(target_options={**spec.target_options, **opts.target_options})
    driver_cls = load_target(spec.target)
    run_dir = make_run_dir(spec.name, opts.runs_root)
    run_json = _run_json(spec, opts, run_dir, locustfile)
    write_json(run_dir / "run.json", run_json)
    sampler = ResourceSampler(run_dir / "resources.jsonl")
    sampler.watch("harness", os.getpid())
    sampler.start()
    code = -1
    try:
        async with target_up(driver_cls, spec, run_dir, opts.services, run_json, sampler) as (services, launched):
            options = _prepare(spec, services, {k: v for k, v in launched.items() if k != "pids"})
            options.update(await _run_prepare_hook(spec.workload_options.get("prepare"), options))
            write_json(run_dir / "run.json", run_json)
            locust_plan = plan(opts, locustfile, spec, run_dir, options)
            _write_worker_env(locust_plan)
            procs = LocustProcesses(locust_plan)
            try:
                await procs.start()
                for name, pid in procs.pids.items():
                    sampler.watch(name, pid)
                if on_started is not None:
                    on_started(run_dir, spec, procs)
                code = await _wait(procs)
            finally:
                await procs.stop()
    finally:
        await sampler.stop()
    return _results(run_dir, opts, code)


def _write_worker_env(p: LocustPlan) -> None:
    """logs/locust-worker.env: what a worker on another machine needs (`set -a; . FILE; set +a`)."""
    shared = (ENV_SPEC, runtime.ENV_OPTIONS, runtime.ENV_USERS, runtime.ENV_DURATION)
    lines = [f"{k}={shlex.quote(p.env[k])}" for k in shared]
    lines.append(f"# locust -f {shlex.quote(str(p.locustfile))} --worker --master-host MASTER "
                 f"--master-port {p.worker_args[p.worker_args.index('--master-port') + 1]}")
    (p.log_dir / "locust-worker.env").write_text("\n".join(lines) + "\n", encoding="utf-8")


async def _wait(procs: LocustProcesses) -> int:
    """Until the master exits; Ctrl-C asks it to write what it has, a second one kills it."""
    sigint = GracefulSigint("\nstopping Locust: results so far are written (Ctrl-C again to abort)", procs.interrupt)
    sigint.install()
    try:
        return await procs.wait_master()
    finally:
        sigint.remove()


def _results(first: Path, opts: LocustOptions, code: int) -> LocustOutcome:
    manifest = first / "logs" / "locust-runs.txt"
    dirs = [Path(line) for line in manifest.read_text().splitlines() if line.strip()] if manifest.exists() else []
    if not dirs and opts.web and code == 0:  # a web session in which no test was started
        return LocustOutcome([], [], [], code)
    if not dirs:
        raise RuntimeError(f"Locust exited (code {code}) without writing results; see {first}/logs/locust-master.log")
    summaries, reports = [], []
    for d in dirs:
        summaries.append(orjson.loads((d / "summary.json").read_bytes()))
        reports.append(build_report(d) if opts.report else None)
    return LocustOutcome(dirs, summaries, reports, code)
