"""`edabench locust WORKLOAD`: a Locust run with edabench's services, HDR results, report and gate."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from harness.spec import SpecError

app = typer.Typer(add_completion=False, help="Run a locustfile with HDR recording, run directories and the gate.")
err = Console(stderr=True)
_SPAN = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_timespan(text: str) -> float:
    """Seconds from "90", "90s", "1m30s", "2h" (Locust's --run-time forms)."""
    m = _SPAN.match(text)
    if not m or not any(m.groups()):
        raise typer.BadParameter(f"{text!r} is not a time span (e.g. 30s, 5m, 1h30m)")
    h, mins, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mins * 60 + s


def parse_options(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; VALUE is read as JSON (numbers, true, lists) and kept as text otherwise."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def locust(
    ctx: typer.Context,
    workload: Annotated[str, typer.Argument(help="Locustfile path, or a name in workloads/locustfiles (echo, cart, "
                                                 "bank...)")],
    web: Annotated[bool, typer.Option("--web/--headless", help="Serve Locust's web UI, or run headless")] = False,
    autostart: Annotated[bool, typer.Option(help="With --web: start the test at once, stop after --run-time")]
    = False,
    workers: Annotated[int, typer.Option(help="Local worker processes (0: one process, no master)")] = 1,
    users: Annotated[int, typer.Option("--users", "-u", help="Locust users in all")] = 10,
    spawn_rate: Annotated[float | None, typer.Option("--spawn-rate", "-r", help="Users started per second")]
    = None,
    run_time: Annotated[str | None, typer.Option(help="Measured duration after the warm-up, e.g. 30s, 5m "
                                                      "(default: the spec's)")] = None,
    warmup: Annotated[float | None, typer.Option(help="Warm-up excluded from the statistics (s)")] = None,
    rate: Annotated[float | None, typer.Option(help="Open-model arrivals per second in all (default: the spec's)")]
    = None,
    host: Annotated[str | None, typer.Option(help="Target base URL (default: the launched target's)")] = None,
    web_host: Annotated[str, typer.Option(help="Interface of the web UI")] = "127.0.0.1",
    web_port: Annotated[int, typer.Option(help="Port of the web UI")] = 8089,
    master_bind_host: Annotated[str, typer.Option(help="Interface workers connect to (0.0.0.0 for remote ones)")]
    = "127.0.0.1",
    master_bind_port: Annotated[int | None, typer.Option(help="Port workers connect to (default: a free one)")]
    = None,
    expect_workers: Annotated[int | None, typer.Option(help="Workers in all, with remote ones (default: --workers)")]
    = None,
    target_option: Annotated[list[str] | None, typer.Option(
        "--target-option", "-o", help="KEY=VALUE over the spec's target options (value as JSON, else text)")]
    = None,
    user_class: Annotated[list[str] | None, typer.Option("--class", help="Run only these user classes")] = None,
    kafka: Annotated[str | None, typer.Option(envvar="EDABENCH_KAFKA_BOOTSTRAP", help="External Kafka")] = None,
    postgres: Annotated[str | None, typer.Option(envvar="EDABENCH_POSTGRES_DSN", help="External PostgreSQL")] = None,
    redis: Annotated[str | None, typer.Option(envvar="EDABENCH_REDIS_URL", help="External Redis")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories are created")] = Path("runs"),
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report")] = False,
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Exit non-zero if an SLO is breached")] = True,
) -> None:
    """Run WORKLOAD with Locust (master + N workers); extra options after `--` go to Locust's master."""
    from harness.locust.coordinator import LocustOptions, execute
    from harness.loop import run as run_loop

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    opts = LocustOptions(
        workload=workload, web=web, autostart=autostart, workers=max(0, workers), users=users,
        spawn_rate=spawn_rate, duration_s=parse_timespan(run_time) if run_time else None, warmup_s=warmup,
        rate=rate, host=host, web_host=web_host, web_port=web_port, master_bind_host=master_bind_host,
        master_bind_port=master_bind_port, expect_workers=expect_workers, user_classes=list(user_class or []),
        target_options=parse_options(target_option or []),
        extra_args=list(ctx.args), services={"kafka": kafka, "postgres": postgres, "redis": redis},
        runs_root=runs_dir, command=["edabench", *sys.argv[1:]], report=not no_report,
    )

    def started(run_dir: Path, spec: Any, procs: Any) -> None:
        where = f", web UI http://{web_host}:{web_port}" if web else ""
        err.print(f"[bold]{spec.name}[/]: target {spec.target}, Locust with {opts.workers} worker(s){where}; "
                  f"results in {run_dir}", highlight=False)

    try:
        outcome = run_loop(execute(opts, on_started=started))
    except SpecError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("aborted", 130) from None
    except Exception as exc:
        logging.getLogger(__name__).debug("locust run failed", exc_info=True)
        raise _fail(f"{type(exc).__name__}: {exc}") from None
    _finish(outcome, gate)


def _finish(outcome: Any, gate: bool) -> None:
    from harness import gate as gating
    from harness.cli import _print_checks, console, print_summary

    if not outcome.run_dirs:
        err.print("no test was started: nothing to report")
        return
    failed = False
    for run_dir, summary, report in zip(outcome.run_dirs, outcome.summaries, outcome.reports, strict=True):
        print_summary(summary)
        print_comparison(summary, console)
        console.print(f"results: {run_dir}", highlight=False)
        if report:
            console.print(f"report:  {report}", highlight=False)
        if not (summary["books_balanced"] and not summary["verify"]["problems"]):
            err.print("[red]the books do not balance or verification found problems; see summary.json[/]")
            failed = True
            continue
        if gate:
            checks = gating.evaluate_slos(summary)
            _print_checks(checks, [])
            gating.write_junit(run_dir / "gate.xml", summary.get("name", "run"), checks, [])
            failed = failed or not gating.passed(checks, [])
    if failed:
        raise typer.Exit(1)


def print_comparison(summary: dict[str, Any], out: Console) -> None:
    """Locust's own p50/p99 (from the send, rounded, warm-up included) next to the HDR ones."""
    from rich.table import Table

    theirs = summary.get("locust", {})
    table = Table(title="Locust's own numbers vs edabench HDR (ms)")
    for col in ("request", "Locust count", "Locust p50", "Locust p99", "HDR count", "HDR p50", "HDR p99"):
        table.add_column(col, justify="left" if col == "request" else "right")
    for name, block in summary["ops"].items():
        loc, rt = theirs.get(name, {}), block["response_time_us"]
        hdr = [f"{rt[k] / 1000:.2f}" if k in rt else "-" for k in ("p50", "p99")]
        table.add_row(name, str(loc.get("count", "-")), str(loc.get("p50_ms", "-")), str(loc.get("p99_ms", "-")),
                      str(rt.get("count", 0)), *hdr)
    out.print(table)
    if summary.get("closed_loop"):
        out.print("[yellow]closed loop:[/] some requests came from ordinary Locust users; their latencies are "
                  "from the send, as Locust's", highlight=False)


def mount(parent: typer.Typer) -> None:
    """Register `locust` as a command of `parent` (a sub-typer would need `edabench locust locust`)."""
    parent.registered_commands.extend(app.registered_commands)
