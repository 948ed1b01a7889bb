"""The `edabench` command. Sub-commands of other rooms (infra, report, locust) mount here."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from harness import gate as gating
from harness.spec import SpecError, load_spec

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Open-loop load and benchmark harness for event-driven systems.")
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


def _mount(module: str, name: str, help_text: str) -> None:
    """Mount a sub-app if its room is installed; a missing room must not break the core CLI."""
    try:
        sub = importlib.import_module(module).app
    except ImportError:
        return
    app.add_typer(sub, name=name, help=help_text)


_mount("infra.cli", "infra", "Start, stop and inspect the embedded stack.")
_mount("reports.cli", "report", "Write the self-contained HTML report of one or more runs.")
try:  # registers `edabench locust` as a plain command; importing it does not load Locust (gevent)
    importlib.import_module("harness.locust.cli").mount(app)
except ImportError:
    pass


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


@app.command()
def run(
    workload: Annotated[Path, typer.Argument(help="Workload spec (TOML), e.g. workloads/echo-http.toml")],
    rate: Annotated[float | None, typer.Option(help="Override the profile's rate (ops/s, all processes)")] = None,
    duration: Annotated[float | None, typer.Option(help="Override the measured duration (s)")] = None,
    warmup: Annotated[float | None, typer.Option(help="Override the warm-up (s)")] = None,
    processes: Annotated[int | None, typer.Option(help="Generator processes (default: one per core)")] = None,
    kafka: Annotated[str | None, typer.Option(envvar="EDABENCH_KAFKA_BOOTSTRAP",
                                              help="Use this Kafka instead of the embedded broker")] = None,
    postgres: Annotated[str | None, typer.Option(envvar="EDABENCH_POSTGRES_DSN",
                                                 help="Use this PostgreSQL DSN instead of the embedded one")] = None,
    redis: Annotated[str | None, typer.Option(envvar="EDABENCH_REDIS_URL",
                                              help="Use this Redis URL instead of the embedded one")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories are created")] = Path("runs"),
    metrics_port: Annotated[int | None, typer.Option(help="Serve live Prometheus metrics on this port")] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report")] = False,
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Exit non-zero if an SLO is breached")] = True,
) -> None:
    """Run a workload open-loop and write runs/<UTC timestamp>-<name>/."""
    from harness.live import LiveView
    from harness.loop import run as run_loop
    from harness.runner import RunOptions, execute

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        spec = load_spec(workload).with_overrides(rate=rate, duration_s=duration, warmup_s=warmup)
    except SpecError as exc:
        raise _fail(str(exc)) from None
    view = LiveView(spec.warmup_s + spec.duration_s, err, metrics_port)

    def started(run_dir: Path, spec_: Any, procs: int) -> None:
        err.print(f"[bold]{spec_.name}[/]: target {spec_.target}, {procs} generator process(es), "
                  f"results in {run_dir}", highlight=False)

    opts = RunOptions(spec_path=str(workload), processes=processes,
                      services={"kafka": kafka, "postgres": postgres, "redis": redis}, runs_root=runs_dir,
                      command=["edabench", *sys.argv[1:]], report=not no_report,
                      on_interval=view.on_interval, on_started=started, isolate=True)
    try:
        with view:
            outcome = run_loop(execute(spec, opts))
    except KeyboardInterrupt:
        raise _fail("aborted", 130) from None
    except Exception as exc:  # services that do not start, unknown targets: say what and stop
        logging.getLogger(__name__).debug("run failed", exc_info=True)
        raise _fail(f"{type(exc).__name__}: {exc}") from None
    print_summary(outcome.summary)
    console.print(f"results: {outcome.run_dir}", highlight=False)
    if outcome.report:
        console.print(f"report:  {outcome.report}", highlight=False)
    if not outcome.ok:
        raise _fail("the books do not balance or verification found problems; see summary.json", 1)
    if gate:
        checks = gating.evaluate_slos(outcome.summary)
        _print_checks(checks, [])
        gating.write_junit(outcome.run_dir / "gate.xml", spec.name, checks, [])
        if not gating.passed(checks, []):
            raise typer.Exit(1)


def _fmt_ms(us: Any) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['name']}: response time (ms) from intended start"
                  + ("  [INTERRUPTED, partial]" if summary.get("interrupted") else ""))
    for col in ("op", "ok", "error", "timeout", "not sent", "rate", "p50", "p90", "p99", "p99.9", "max"):
        table.add_column(col, justify="right" if col != "op" else "left")
    rows = [*summary["ops"].items()]
    if len(rows) > 1:
        rows.append(("overall", summary["overall"]))
    for op, block in rows:
        c, rt = block["counts"], block["response_time_us"]
        table.add_row(op, str(c["ok"]), str(c["error"]), str(c["timeout"]), str(c["not_sent"]),
                      f"{block['achieved_rate']:.0f}/{block['target_rate']:.0f}",
                      *(_fmt_ms(rt.get(k)) for k in ("p50", "p90", "p99", "p99_9", "max")))
    console.print(table)
    lag = summary.get("schedule_lag_us", {})
    console.print(f"schedule lag p99 {_fmt_ms(lag.get('p99'))} ms, max {_fmt_ms(lag.get('max'))} ms; "
                  f"books balanced: {summary['books_balanced']}", highlight=False)
    for metric, block in summary.get("observed_us", {}).items():
        console.print(f"{metric}: p50 {_fmt_ms(block.get('p50'))} ms, p99 {_fmt_ms(block.get('p99'))} ms, "
                      f"max {_fmt_ms(block.get('max'))} ms", highlight=False)
    for problem in summary["verify"]["problems"][:20]:
        console.print(f"[red]problem:[/] {problem}", highlight=False)


def _print_checks(checks: list[gating.Check], deltas: list[gating.Delta]) -> None:
    table = Table(title="gate")
    for col in ("op", "check", "goal", "measured", "margin", "result"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.op, c.name, "-" if c.goal is None else f"{c.goal:g} {c.unit}",
                      "-" if c.measured is None else f"{c.measured:g} {c.unit}",
                      "-" if c.margin is None else f"{c.margin:+.1%}",
                      "[green]PASS[/]" if c.passed else f"[red]FAIL[/] {c.detail}")
    for d in deltas:
        table.add_row(d.op, f"vs baseline {d.metric}", "-" if d.baseline is None else f"{d.baseline:g}",
                      "-" if d.current is None else f"{d.current:g}",
                      "-" if d.ratio is None else f"x{d.ratio:.3f}",
                      "[red]REGRESSION[/]" if d.regression else "[green]ok[/]")
    console.print(table)


@app.command("gate")
def gate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory to check")],
    baseline: Annotated[Path | None, typer.Option(help="Baseline run directory to compare with")] = None,
    tolerance: Annotated[float, typer.Option(help="Allowed relative change vs the baseline")]
    = gating.DEFAULT_TOLERANCE,
    junit: Annotated[Path | None, typer.Option(help="JUnit XML output (default RUN/gate.xml)")] = None,
) -> None:
    """Check a run against its SLOs (and a baseline); exit 1 on any breach or regression."""
    try:
        summary = gating.load_run(run_dir)
        base = gating.load_run(baseline) if baseline else None
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    checks = gating.evaluate_slos(summary)
    deltas = gating.compare_runs(summary, base, tolerance) if base else []
    _print_checks(checks, deltas)
    out = junit or ((run_dir if run_dir.is_dir() else run_dir.parent) / "gate.xml")
    gating.write_junit(out, summary.get("name", "run"), checks, deltas)
    console.print(f"junit: {out}", highlight=False)
    if not gating.passed(checks, deltas):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
