"""`edabench locust [WORKLOAD]`: Locust's master/worker processes and web UI on the harness's engine.

The command does what `edabench run` does up to the load (the services, then the target's
launch, recorded in the first run directory), then starts a Locust master and its local workers.
Each worker that runs a `ScheduledOps` user hosts a generator with the target's own driver; the
master merges their reports into one run directory per test and writes the results, the gate's
gate.xml and the report. The command prints them when Locust exits; its exit code is the gate's.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from harness.spec import SpecError

app = typer.Typer(add_completion=False, rich_markup_mode=None,
                  help="Run a workload with Locust's master, workers and web UI on edabench's generator.")
err = Console(stderr=True)
log = logging.getLogger(__name__)
_SPAN = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_timespan(text: str) -> float:
    """Seconds from "90", "90s", "1m30s", "2h" (Locust's --run-time forms)."""
    m = _SPAN.match(text)
    if not m or not any(m.groups()):
        raise typer.BadParameter(f"{text!r} is not a time span (e.g. 30s, 5m, 1h30m)", param_hint="--run-time")
    h, mins, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mins * 60 + s


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@dataclass
class Options:
    web: bool
    autostart: bool
    workers: int
    expect_workers: int | None
    users: int
    spawn_rate: float
    timed: bool
    web_host: str
    web_port: int
    master_bind_host: str
    master_bind_port: int | None
    services: dict[str, str | None]
    runs_dir: Path
    metrics_port: int | None
    report: bool
    extra_args: list[str]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def locust(
    ctx: typer.Context,
    workload: Annotated[str | None, typer.Argument(
        help="A locustfile (path, or a name in workloads/locustfiles: echo, bank, cart...), or a workload "
             "TOML; none with --host URL: the generic http target")] = None,
    web: Annotated[bool, typer.Option("--web/--headless", help="Serve Locust's web UI, or run one test headless")]
    = False,
    autostart: Annotated[bool, typer.Option(help="With --web: start a test at once")] = False,
    workers: Annotated[int, typer.Option(help="Local Locust workers, each hosting a generator (0: one Locust "
                                              "process, no master)")] = 1,
    expect_workers: Annotated[int | None, typer.Option(
        help="Workers in all, remote ones included (default: --workers)")] = None,
    users: Annotated[int | None, typer.Option(
        "--users", "-u", help="Locust users (default: one per worker; the number does not shape the load)")] = None,
    spawn_rate: Annotated[float | None, typer.Option("--spawn-rate", "-r", help="Users started per second")] = None,
    run_time: Annotated[str | None, typer.Option(
        help="Measured duration after the warm-up, e.g. 30s, 5m (default: the spec's; with --web and no "
             "--run-time nor --autostart a test runs until Stop)")] = None,
    warmup: Annotated[float | None, typer.Option(help="Warm-up excluded from the statistics (s)")] = None,
    rate: Annotated[float | None, typer.Option(help="Override the profile's rate (ops/s, all workers together)")]
    = None,
    host: Annotated[str | None, typer.Option(
        help="A URL the harness did not launch: the target's `url` option (alone: the generic http target)")]
    = None,
    target_option: Annotated[list[str] | None, typer.Option(
        "--target-option", "-o", metavar="KEY=VALUE",
        help="Set a target option over the spec's [target_options] (value read as JSON, else text)")] = None,
    web_host: Annotated[str, typer.Option(help="Interface of the web UI")] = "127.0.0.1",
    web_port: Annotated[int, typer.Option(help="Port of the web UI")] = 8089,
    master_bind_host: Annotated[str, typer.Option(
        help="Interface workers connect to (0.0.0.0 for workers on other machines)")] = "127.0.0.1",
    master_bind_port: Annotated[int | None, typer.Option(help="Port workers connect to (default: a free one)")]
    = None,
    kafka: Annotated[str | None, typer.Option(envvar="EDABENCH_KAFKA_BOOTSTRAP", help="External Kafka")] = None,
    postgres: Annotated[str | None, typer.Option(envvar="EDABENCH_POSTGRES_DSN", help="External PostgreSQL")] = None,
    redis: Annotated[str | None, typer.Option(envvar="EDABENCH_REDIS_URL", help="External Redis")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories are created")] = Path("runs"),
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics of the master's merged view on this port")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the HTML report of each test")] = True,
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Exit non-zero when a goal is missed")] = True,
) -> None:
    """Run a workload with Locust; options after `--` go to Locust's master (exit codes: see `gate`)."""
    from harness.cli import parse_options
    from harness.locust.workload import resolve
    from harness.plan import make_plan

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        wl = resolve(workload, host)
        spec = wl.spec
        options = parse_options(target_option)
        if host and workload is not None:
            options = {**options, "url": host}
        if options:
            spec = spec.with_overrides(target_options=_merge(spec.target_options, options))
        spec = spec.with_overrides(rate=rate, warmup_s=warmup,
                                   duration_s=parse_timespan(run_time) if run_time else None)
        plan = make_plan(spec, wl.source)
    except SpecError as exc:
        raise _fail(str(exc)) from None
    hosting = max(1, expect_workers or workers)
    n_users = users or hosting
    opts = Options(web=web, autostart=autostart, workers=max(0, workers), expect_workers=expect_workers,
                   users=n_users, spawn_rate=spawn_rate or float(n_users),
                   timed=not web or autostart or run_time is not None, web_host=web_host, web_port=web_port,
                   master_bind_host=master_bind_host, master_bind_port=master_bind_port,
                   services={"kafka": kafka, "postgres": postgres, "redis": redis}, runs_dir=runs_dir,
                   metrics_port=metrics_port, report=report, extra_args=list(ctx.args))
    from harness.locust.session import run_session
    from harness.loop import run as run_loop

    try:
        run_dirs = run_loop(run_session(plan, wl.locustfile, wl.source, opts, ["edabench", *sys.argv[1:]], err))
    except KeyboardInterrupt:
        raise _fail("aborted", 130) from None
    except Exception as exc:  # services that do not start, a target that fails: say what and stop
        log.debug("locust session failed", exc_info=True)
        raise _fail(f"{type(exc).__name__}: {exc}") from None
    _finish(run_dirs, web, gate)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _finish(run_dirs: list[Path], web: bool, gate: bool) -> None:
    """Print each test's results and verdict (written by the master); exit with the worst code."""
    from harness.cli import console, print_checks, print_summary
    from harness.results import gate as gating

    if not run_dirs:
        if web:
            err.print("no test was started: nothing to report")
            return
        raise _fail("Locust exited without results; see the run directory's logs/locust-master.log", 4)
    codes = []
    for run_dir in run_dirs:
        summary = gating.load_summary(run_dir)
        print_summary(summary)
        checks = gating.evaluate_slos(summary)
        print_checks(checks)
        console.print(f"results: {run_dir}", highlight=False)
        for name in ("report.html", "summary.md", "gate.xml"):
            if (run_dir / name).exists():
                console.print(f"{name}: {run_dir / name}", highlight=False)
        code = gating.exit_code(checks)
        codes.append(gating.INTERRUPTED if summary.get("interrupted") else code)
    worst = gating.INTERRUPTED if gating.INTERRUPTED in codes else max(codes)
    if worst == gating.INTERRUPTED or gate or worst == gating.UNTRUSTED:
        raise typer.Exit(worst)


def mount(parent: typer.Typer) -> None:
    """Register `locust` as a command of `parent` (a sub-typer would need `edabench locust locust`)."""
    parent.registered_commands.extend(app.registered_commands)
