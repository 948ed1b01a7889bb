"""One run from plan to run directory: services, target launch, generators, results.

Lifecycle (each step undone in reverse, also on Ctrl-C and on failure): services (embedded or
external) -> target launch (once per run) -> generator processes (driver start, schedule,
drain, verify) -> summary.json. Reports are the caller's business: the engine never imports them.
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

from harness.engine.loadgen import GeneratorConfig, LoadGenerator, tune_gc_for_load
from harness.engine.pool import WorkerPool
from harness.interrupts import GracefulSigint
from harness.plan import Plan
from harness.profiles import build
from harness.resources import ResourceSampler
from harness.results.collector import Collector
from harness.results.messages import FinalReport, IntervalReport
from harness.results.rundir import RunRecord, make_run_dir, write_json
from harness.results.summary import build_summary

log = logging.getLogger(__name__)
START_SLACK_S = 0.2  # between "go" and the first intended send, so every process is waiting


@dataclass
class RunOptions:
    spec_path: str | None = None
    processes: int | None = None
    services: dict[str, str | None] = field(default_factory=dict)  # kafka / postgres / redis overrides
    runs_root: Path = Path("runs")
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    tune_gc: bool = False  # only for a process that exists to run this (the CLI), never a test runner
    #: run even a single generator in its own process, away from the collector, live view and
    #: samplers, whose once-a-second work would otherwise show up as schedule lag
    isolate: bool = False
    on_interval: Callable[[dict[str, Any]], None] | None = None
    on_histogram: Callable[[str, Any], None] | None = None
    on_started: Callable[[Path, Any, int], None] | None = None


@dataclass
class RunOutcome:
    run_dir: Path
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.summary["books_balanced"]) and not self.summary["verify"]["problems"]


@contextlib.asynccontextmanager
async def _services(needs: set[str], run_dir: Path, overrides: dict[str, str | None]) -> AsyncIterator[Any]:
    if not needs:
        yield None
        return
    from infra.stack import Stack  # the harness needs infra only when a target needs services

    async with Stack(needs=needs, run_dir=run_dir, **{k: v for k, v in overrides.items() if v}) as stack:
        yield stack


@contextlib.asynccontextmanager
async def target_up(plan: Plan, run_dir: Path, overrides: dict[str, str | None], record: RunRecord,
                    sampler: ResourceSampler) -> AsyncIterator[tuple[dict[str, str], dict[str, Any]]]:
    """The services the target needs, then the target itself, recorded in run.json and watched by
    the resource sampler. Yields (service URLs, what the target's launch returned)."""
    spec = plan.spec
    async with _services(plan.target.needs(spec.target_options), run_dir, overrides) as stack:
        services = dict(stack.urls) if stack is not None else {}
        if stack is not None:
            record.services(services, list(stack.embedded))
            for name, pid in stack.pids.items():
                sampler.watch(name, pid)
        async with plan.target.launch(dict(spec.target_options), services, str(run_dir)) as launched:
            launched = dict(launched or {})
            for name, pid in (launched.get("pids") or {}).items():
                sampler.watch(name, pid)
            yield services, launched


def resolve_processes(plan: Plan, requested: int | None) -> int:
    return max(1, requested or plan.spec.processes or 1)


async def execute(plan: Plan, opts: RunOptions) -> RunOutcome:
    spec = plan.spec
    processes = resolve_processes(plan, opts.processes)
    run_dir = make_run_dir(spec.name, opts.runs_root)
    record = RunRecord(run_dir, spec, opts.spec_path, opts.command, processes)
    if opts.on_started is not None:
        opts.on_started(run_dir, spec, processes)

    stop = asyncio.Event()
    sigint = GracefulSigint("\nstopping: no new ops, draining in-flight ones (Ctrl-C again to abort)", stop.set)
    sigint.install()
    sampler = ResourceSampler(run_dir / "resources.jsonl")
    sampler.watch("harness", os.getpid())
    sampler.start()
    total_s = spec.warmup_s + spec.duration_s
    profile = build(spec.rate, total_s, spec.seed)
    collector = Collector(run_dir, processes, int(time.time() * 1000), total_s, profile.rate_at, spec.warmup_s,
                          opts.on_interval, opts.on_histogram)
    start_ns = 0
    problems: list[str] = []
    try:
        async with target_up(plan, run_dir, opts.services, record, sampler) as (services, launched):
            for_drivers = {k: v for k, v in launched.items() if k not in ("pids", "problems")}
            configs = [GeneratorConfig(spec, plan.target, plan.workload_cls, services, str(run_dir), run_dir.name,
                                       i, processes, for_drivers)
                       for i in range(processes)]
            start_ns = await _generate(configs, collector, stop, sampler, opts.tune_gc, opts.isolate,
                                       on_start=lambda: record.schedule_started())
            problems.extend(str(p) for p in launched.get("problems") or ())
    except Exception as exc:
        if start_ns == 0:
            raise  # nothing ran: services or the target did not come up
        log.exception("tearing the target down failed")
        problems.append(f"tearing the target down failed: {type(exc).__name__}: {exc}")
    finally:
        sigint.remove()
        await sampler.stop()
        collector.close()
    interrupted = stop.is_set() or any(f.interrupted for f in collector.finals)
    record.end(interrupted)
    summary = build_summary(
        spec.name, collector, collector.finals, processes, measured_s(spec, start_ns, collector.finals),
        slo_of(spec), interrupted, spec.slo.max_schedule_lag_ms, spec.slo.check_generator, problems)
    write_json(run_dir / "summary.json", summary)
    return RunOutcome(run_dir, summary)


def slo_of(spec: Any) -> dict[str, Any]:
    slo = spec.slo.model_dump(exclude_none=True)
    for table in ("ops", "observed"):
        for goals in slo.get(table, {}).values():
            for key in ("max_schedule_lag_ms", "check_generator", "ops", "observed"):
                goals.pop(key, None)
    if not slo.get("observed"):
        slo.pop("observed", None)
    return slo


def measured_s(spec: Any, start_ns: int, finals: list[FinalReport]) -> float:
    """The measured window actually run: from the end of the warm-up to the schedule's end (or
    the stop), never the configured duration of a run cut short."""
    if not start_ns or not finals:
        return 0.0
    end = max((f.schedule_end_ns for f in finals if f.schedule_end_ns), default=0)
    if not end:
        return 0.0
    measured = (end - start_ns) / 1e9 - spec.warmup_s
    return max(0.0, min(spec.duration_s, measured))


async def _generate(configs: list[GeneratorConfig], collector: Collector, stop: asyncio.Event,
                    sampler: ResourceSampler, tune_gc: bool = False, isolate: bool = False,
                    on_start: Callable[[], None] | None = None) -> int:
    """Run the generators to completion; returns the monotonic start of the schedule (ns)."""
    accept: Callable[[IntervalReport | FinalReport], None] = collector.accept
    if len(configs) == 1 and not isolate:
        gen = LoadGenerator(configs[0], accept)
        try:
            await gen.start_driver()
            if tune_gc:
                tune_gc_for_load()
            start_ns = time.monotonic_ns() + int(START_SLACK_S * 1e9)
            if on_start is not None:
                on_start()
            await gen.run(start_ns, stop)
        finally:
            await gen.stop_driver()
        return start_ns
    pool = WorkerPool(configs, accept)
    await pool.start()
    for i, proc in enumerate(pool.procs):
        if proc.pid:
            sampler.watch(f"generator-{i}", proc.pid)
    start_ns = time.monotonic_ns() + int(START_SLACK_S * 1e9)
    if on_start is not None:
        on_start()
    pool.go(start_ns)
    waiter = asyncio.create_task(pool.wait())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if stopper in done:
        pool.stop_all()
    else:
        stopper.cancel()
    await waiter
    return start_ns


def summary_for(run_dir: Path) -> dict[str, Any]:
    """Read a run's summary.json back (for front ends that only know the directory)."""
    import orjson

    return orjson.loads((run_dir / "summary.json").read_bytes())


__all__ = ["RunOptions", "RunOutcome", "execute", "summary_for", "target_up", "write_json"]
