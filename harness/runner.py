"""One run from spec to run directory: services, target launch, generators, results.

Lifecycle (each step undone in reverse, also on Ctrl-C and on failure):
services (embedded or external) -> target launch (once per run) -> generator
processes (driver start, schedule, drain, verify) -> summary.json, report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.collector import Collector, write_json
from harness.generator import Generator, GeneratorConfig, tune_gc_for_load
from harness.interrupts import GracefulSigint
from harness.registry import load_target, load_workload
from harness.resources import ResourceSampler
from harness.rundir import environment, make_run_dir, utc_now
from harness.spec import Spec
from harness.workers import WorkerPool

log = logging.getLogger(__name__)
START_SLACK_S = 0.2  # between "go" and the first intended send, so every process is waiting


@dataclass
class RunOptions:
    spec_path: str | None = None
    processes: int | None = None
    services: dict[str, str | None] = field(default_factory=dict)  # kafka / postgres / redis overrides
    runs_root: Path = Path("runs")
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    report: bool = True
    tune_gc: bool = False  # only for a process that exists to run this (the CLI), never a test runner
    #: run even a single generator in its own process, away from the collector, live view and
    #: samplers, whose once-a-second work would otherwise show up as schedule lag
    isolate: bool = False
    on_interval: Callable[[dict[str, Any]], None] | None = None
    on_started: Callable[[Path, Spec, int], None] | None = None


@dataclass
class RunOutcome:
    run_dir: Path
    summary: dict[str, Any]
    report: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.summary["books_balanced"]) and not self.summary["verify"]["problems"]


def driver_needs(driver_cls: Any, options: dict[str, Any]) -> set[str]:
    needs_for = getattr(driver_cls, "needs_for", None)
    if callable(needs_for):
        return set(needs_for(options))
    return set(getattr(driver_cls, "needs", ()))


@contextlib.asynccontextmanager
async def _services(needs: set[str], run_dir: Path, overrides: dict[str, str | None]) -> AsyncIterator[Any]:
    if not needs:
        yield None
        return
    from infra.stack import Stack  # the harness needs infra only when a target needs services

    async with Stack(needs=needs, run_dir=run_dir, **{k: v for k, v in overrides.items() if v}) as stack:
        yield stack


@contextlib.asynccontextmanager
async def _launch(driver_cls: Any, options: dict[str, Any], services: dict[str, str], run_dir: Path
                  ) -> AsyncIterator[dict[str, Any]]:
    launch = getattr(driver_cls, "launch", None)
    if launch is None:
        yield {}
        return
    async with launch(options, services, str(run_dir)) as info:
        yield dict(info or {})


@contextlib.asynccontextmanager
async def target_up(driver_cls: Any, spec: Spec, run_dir: Path, overrides: dict[str, str | None],
                    run_json: dict[str, Any], sampler: ResourceSampler
                    ) -> AsyncIterator[tuple[dict[str, str], dict[str, Any]]]:
    """The services the target needs, then the target itself: recorded in run.json's config and
    watched by the resource sampler. Yields (service URLs, what the target's launch returned)."""
    async with _services(driver_needs(driver_cls, spec.target_options), run_dir, overrides) as stack:
        services = dict(stack.urls) if stack is not None else {}
        if stack is not None:
            run_json["config"]["services"] = services
            run_json["config"]["embedded"] = sorted(stack.embedded)
            for name, pid in stack.pids.items():
                sampler.watch(name, pid)
        async with _launch(driver_cls, dict(spec.target_options), services, run_dir) as launched:
            for name, pid in (launched.get("pids") or {}).items():
                sampler.watch(name, pid)
            yield services, launched


def resolve_processes(spec: Spec, requested: int | None) -> int:
    return max(1, requested or spec.processes or os.cpu_count() or 1)


async def execute(spec: Spec, opts: RunOptions) -> RunOutcome:
    driver_cls = load_target(spec.target)
    workload_cls = load_workload(spec.workload) if spec.workload else None
    processes = resolve_processes(spec, opts.processes)
    run_dir = make_run_dir(spec.name, opts.runs_root)
    run_id = run_dir.name
    run_json: dict[str, Any] = {
        "schema": "edabench.run/1",
        "name": spec.name,
        "run_id": run_id,
        "spec": spec.model_dump(mode="json"),
        "spec_path": opts.spec_path,
        "config": {
            "rate": spec.rate.rate,
            "profile": spec.rate.profile,
            "duration_s": spec.duration_s,
            "warmup_s": spec.warmup_s,
            "processes": processes,
            "closed_loop": False,
            "services": {},
            "embedded": [],
        },
        "command": opts.command,
        "environment": environment(),
        "started_at": utc_now(),
        "ended_at": None,
        "interrupted": False,
    }
    write_json(run_dir / "run.json", run_json)
    if opts.on_started is not None:
        opts.on_started(run_dir, spec, processes)

    stop = asyncio.Event()
    sigint = GracefulSigint("\nstopping: no new ops, draining in-flight ones (Ctrl-C again to abort)", stop.set)
    sigint.install()
    sampler = ResourceSampler(run_dir / "resources.jsonl")
    sampler.watch("harness", os.getpid())
    sampler.start()
    collector: Collector | None = None
    t_measure_start = 0.0
    try:
        async with target_up(driver_cls, spec, run_dir, opts.services, run_json, sampler) as (services, launched):
            configs = [
                GeneratorConfig(spec, driver_cls, workload_cls, services, str(run_dir), run_id, i,
                                processes, launched)
                for i in range(processes)
            ]
            collector = Collector(spec, run_dir, processes, int(time.time() * 1000), opts.on_interval)
            t_measure_start = await _generate(configs, collector, stop, sampler, opts.tune_gc, opts.isolate)
    finally:
        run_json["interrupted"] = stop.is_set()
        sigint.remove()
        await sampler.stop()
        run_json["ended_at"] = utc_now()
        write_json(run_dir / "run.json", run_json)
    assert collector is not None
    collector.close()
    elapsed = time.monotonic() - t_measure_start if t_measure_start else 0.0
    measured_s = min(spec.duration_s, max(0.0, elapsed - spec.warmup_s))
    summary = collector.summary(measured_s)
    write_json(run_dir / "summary.json", summary)
    if run_json["interrupted"] != summary["interrupted"]:
        run_json["interrupted"] = summary["interrupted"]
        write_json(run_dir / "run.json", run_json)
    outcome = RunOutcome(run_dir, summary)
    if opts.report:
        outcome.report = build_report(run_dir)
    return outcome


async def _generate(configs: list[GeneratorConfig], collector: Collector, stop: asyncio.Event,
                    sampler: ResourceSampler, tune_gc: bool = False, isolate: bool = False) -> float:
    """Run the generators to completion; returns the monotonic start of the schedule (s)."""
    if len(configs) == 1 and not isolate:
        gen = Generator(configs[0], collector.accept)
        try:
            await gen.start_driver()
            if tune_gc:
                tune_gc_for_load()
            start_ns = time.monotonic_ns() + int(START_SLACK_S * 1e9)
            await gen.run(start_ns, stop)
        finally:
            await gen.stop_driver()
        return start_ns / 1e9
    pool = WorkerPool(configs, collector.accept)
    await pool.start()
    for i, proc in enumerate(pool.procs):
        if proc.pid:
            sampler.watch(f"generator-{i}", proc.pid)
    start_ns = time.monotonic_ns() + int(START_SLACK_S * 1e9)
    pool.go(start_ns)
    waiter = asyncio.create_task(pool.wait())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if stopper in done:
        pool.stop_all()
    else:
        stopper.cancel()
    await waiter
    return start_ns / 1e9


def build_report(run_dir: Path) -> Path | None:
    """The HTML report, when the reports room is installed; a report failure never loses a run."""
    try:
        from reports import build_report as build
    except ImportError:
        return None
    try:
        return Path(build([run_dir]))
    except Exception:
        log.exception("report failed for %s", run_dir)
        return None
