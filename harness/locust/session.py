"""One `edabench locust` session on the command's side (asyncio): services, target, Locust.

The same lifecycle as `edabench run` up to the load, through the engine's own `target_up`:
services (embedded or external) and the target's launch, recorded in the first run directory;
then Locust's master and local workers as child processes, stopped by PID whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import socket
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.engine.runner import target_up
from harness.interrupts import GracefulSigint
from harness.locust.procs import LocustPlan, LocustProcesses, free_port
from harness.locust.wire import ENV_SESSION, MANIFEST, Session
from harness.plan import Plan
from harness.resources import ResourceSampler
from harness.results.rundir import RunRecord, make_run_dir

NOT_FOR_DRIVERS = ("pids", "problems")  # what a launch yields for the harness, not for drivers


def locust_args(opts: Any, master_port: int, url: str | None) -> tuple[list[str], list[str]]:
    """The master's and each local worker's arguments after `locust -f FILE`."""
    distributed = bool(opts.workers or opts.expect_workers)
    master = ["-u", str(opts.users), "-r", str(opts.spawn_rate)]
    if distributed:
        master += ["--master", "--master-bind-host", opts.master_bind_host, "--master-bind-port", str(master_port),
                   "--expect-workers", str(opts.expect_workers or opts.workers)]
    if url:
        master += ["--host", url]
    if opts.web:
        master += ["--web-host", opts.web_host, "--web-port", str(opts.web_port)]
        if opts.autostart:
            master.append("--autostart")
    else:
        master.append("--headless")
    master += opts.extra_args
    worker = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)]
    return master, worker


async def run_session(plan: Plan, locustfile: Path, source: str, opts: Any, command: list[str],
                      console: Console) -> list[Path]:
    """Run the session; returns the run directory of every test the master finished."""
    spec = plan.spec
    hosting = max(1, opts.expect_workers or opts.workers)
    run_dir = make_run_dir(spec.name, opts.runs_dir)
    record = RunRecord(run_dir, spec, source, command, hosting, front_end="locust")
    sampler = ResourceSampler(run_dir / "resources.jsonl")
    sampler.watch("harness", os.getpid())
    sampler.start()
    try:
        async with target_up(plan, run_dir, opts.services, record, sampler) as (services, launched):
            session = Session(
                spec=spec.model_dump(mode="json"), source=source, services=services,
                embedded=list(record.data["config"].get("embedded", [])),
                launched={k: v for k, v in launched.items() if k not in NOT_FOR_DRIVERS},
                first_run_dir=str(run_dir), runs_root=str(opts.runs_dir), command=command, timed=opts.timed,
                end="stop" if opts.web else "quit", report=opts.report, metrics_port=opts.metrics_port,
                locust={"workers": opts.workers, "expect_workers": opts.expect_workers, "users": opts.users,
                        "web": opts.web})
            master_port = opts.master_bind_port or free_port()
            master, worker = locust_args(opts, master_port, launched.get("url") or spec.target_options.get("url"))
            procs = LocustProcesses(LocustPlan(locustfile, master, opts.workers, worker,
                                               {ENV_SESSION: session.to_env()}, run_dir / "logs"))
            try:
                await procs.start()
                for name, pid in procs.pids.items():
                    sampler.watch(name, pid)
                _tell(console, spec.name, run_dir, opts, locustfile, master_port)
                sigint = GracefulSigint("\nstopping: the test ends, its books are collected and written "
                                        "(Ctrl-C again to abort)", procs.interrupt)
                sigint.install()
                loop = asyncio.get_running_loop()
                loop.add_signal_handler(signal.SIGTERM, procs.interrupt)  # stopped by a supervisor: the same
                try:
                    await procs.wait_master()
                finally:
                    sigint.remove()
                    loop.remove_signal_handler(signal.SIGTERM)
            finally:
                await procs.stop()
    finally:
        await sampler.stop()
    manifest = run_dir / "logs" / MANIFEST
    return [Path(line) for line in manifest.read_text().splitlines() if line.strip()] if manifest.exists() else []


def _tell(console: Console, name: str, run_dir: Path, opts: Any, locustfile: Path, master_port: int) -> None:
    where = f", web UI http://{opts.web_host}:{opts.web_port}" if opts.web else ""
    console.print(f"[bold]{name}[/]: Locust with {opts.workers} local worker(s){where}; results in {run_dir}",
                  highlight=False)
    if opts.expect_workers and opts.expect_workers > opts.workers:
        host = socket.gethostname() if opts.master_bind_host in ("0.0.0.0", "*", "") else opts.master_bind_host
        console.print(f"waiting for {opts.expect_workers - opts.workers} more worker(s): locust -f "
                      f"{shlex.quote(str(locustfile))} --worker --master-host {host} --master-port {master_port}",
                      highlight=False)
