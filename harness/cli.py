"""The `edabench` command: `run`, `gate`, and the commands other rooms plug in.

Reports and infra are not imported here: they register their sub-commands and the after-run
report builder as entry points (`edabench.commands`, `edabench.after_run`), so the harness stays
below them and a missing room never breaks the core command.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from harness.plugins import after_run
from harness.results import gate as gating

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="Open-loop load and benchmark harness for event-driven systems.")
def _width(tty: bool) -> int | None:
    """The terminal's width on a terminal; COLUMNS when set; else 140 (a CI log)."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit():
        return int(cols)
    return None if tty else 140


console = Console(width=_width(sys.stdout.isatty()))
err = Console(stderr=True, width=_width(sys.stderr.isatty()))
log = logging.getLogger("edabench")


def _version() -> str:
    try:
        return version("edabench")
    except PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"edabench {_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    show_version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="Print the version and exit.")] = False,
) -> None:
    """Open-loop load and benchmark harness for event-driven systems."""


def _mount_plugins() -> None:
    """Sub-commands of other rooms (`report`, `infra`, `locust`), found by entry point."""
    for ep in entry_points(group="edabench.commands"):
        try:
            target = ep.load()
        except ImportError:
            continue
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=ep.name)
        elif callable(target):
            target(app)  # a function that registers its own command(s)


def fail(message: str, code: int = gating.USAGE) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` pairs; VALUE is read as JSON (numbers, true, lists) and kept as text otherwise.
    A dotted key (`requests.get.path=/x`) sets a nested table."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="-o/--target-option")
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parsed
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@app.command()
def run(
    workload: Annotated[Path, typer.Argument(help="Workload spec (TOML), e.g. workloads/echo-http.toml")],
    rate: Annotated[float | None, typer.Option(help="Override the profile's rate (ops/s, all processes)")] = None,
    duration: Annotated[float | None, typer.Option(help="Override the measured duration (s)")] = None,
    warmup: Annotated[float | None, typer.Option(help="Override the warm-up (s)")] = None,
    processes: Annotated[int | None, typer.Option(
        help="Generator processes (default: the spec's `processes`, else 1)")] = None,
    target_option: Annotated[list[str] | None, typer.Option(
        "--target-option", "-o", metavar="KEY=VALUE",
        help="Set a target option over the spec's [target_options] (value read as JSON, else text)")] = None,
    kafka: Annotated[str | None, typer.Option(envvar="EDABENCH_KAFKA_BOOTSTRAP",
                                              help="Use this Kafka instead of the embedded broker")] = None,
    postgres: Annotated[str | None, typer.Option(envvar="EDABENCH_POSTGRES_DSN", show_envvar=True,
                                                 help="Use this PostgreSQL DSN instead of the embedded one")] = None,
    redis: Annotated[str | None, typer.Option(envvar="EDABENCH_REDIS_URL",
                                              help="Use this Redis URL instead of the embedded one")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories are created")] = Path("runs"),
    metrics_port: Annotated[int | None, typer.Option(help="Serve live Prometheus metrics on this port")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the HTML report")] = True,
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Exit non-zero when a goal is missed")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary and verdict as JSON on stdout")]
    = False,
) -> None:
    """Run a workload open-loop and write runs/<UTC timestamp>-<name>/ (exit codes: see `gate`)."""
    from harness.engine.runner import RunOptions, execute
    from harness.live import LiveView
    from harness.loop import run as run_loop
    from harness.plan import make_plan
    from harness.spec import SpecError, load_spec

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        spec = load_spec(workload)
        options = parse_options(target_option)
        if options:
            spec = spec.with_overrides(target_options=_merge(spec.target_options, options))
        spec = spec.with_overrides(rate=rate, duration_s=duration, warmup_s=warmup)
        plan = make_plan(spec, str(workload))
    except SpecError as exc:
        raise fail(str(exc)) from None
    view = LiveView(spec.warmup_s + spec.duration_s, err, metrics_port)

    def started(run_dir: Path, spec_: Any, procs: int) -> None:
        err.print(f"[bold]{spec_.name}[/]: target {spec_.target}, {procs} generator process(es), "
                  f"results in {run_dir}", highlight=False)

    opts = RunOptions(spec_path=str(workload), processes=processes,
                      services={"kafka": kafka, "postgres": postgres, "redis": redis}, runs_root=runs_dir,
                      command=["edabench", *sys.argv[1:]], on_interval=view.on_interval,
                      on_histogram=view.on_histogram, on_started=started,
                      isolate=True)
    try:
        with view:
            outcome = run_loop(execute(plan, opts))
    except KeyboardInterrupt:
        raise fail("aborted", gating.INTERRUPTED) from None
    except Exception as exc:  # services that do not start, a target that fails: say what and stop
        log.debug("run failed", exc_info=True)
        raise fail(f"{type(exc).__name__}: {exc}") from None
    summary = outcome.summary
    made = after_run(outcome.run_dir) if report else []
    checks = gating.evaluate_slos(summary)
    from harness.results.junit import write_checks

    write_checks(outcome.run_dir / "gate.xml", spec.name, checks, summary.get("measured_s", 0.0))
    code = gating.exit_code(checks)
    if as_json:
        typer.echo(orjson.dumps({"run_dir": str(outcome.run_dir), "summary": summary,
                                 "verdict": gating.verdict_json(checks)}, option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(summary)
        console.print(f"results: {outcome.run_dir}", highlight=False)
        for path in made:
            console.print(f"report:  {path}", highlight=False)
        print_checks(checks)
    if gate or summary.get("interrupted") or code == gating.UNTRUSTED:
        # the gate's own order: an untrusted run (a failed watchdog stops the schedule too) is 4,
        # a cleanly interrupted one 130, as `edabench gate` says of the same run directory
        raise typer.Exit(code)


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
    gen = summary.get("generator") or {}
    kept = "kept its schedule" if gen.get("kept_up", True) else "[red]FELL BEHIND its schedule[/]"
    console.print(f"schedule lag p99 {_fmt_ms(lag.get('p99'))} ms, max {_fmt_ms(lag.get('max'))} ms: the generator "
                  f"{kept}; books balanced: {summary['books_balanced']}", highlight=False)
    overall = summary.get("overall") or {}
    if overall.get("timeout_share"):
        console.print(f"timeouts: {overall['timeout_share']:.2%} of measured ops (counted in the percentiles "
                      "at their time of expiry)", highlight=False)
    for metric, block in summary.get("observed_us", {}).items():
        console.print(f"{metric}: p50 {_fmt_ms(block.get('p50'))} ms, p99 {_fmt_ms(block.get('p99'))} ms, "
                      f"max {_fmt_ms(block.get('max'))} ms, n={block.get('count', 0)}", highlight=False)
    for problem in summary["verify"]["problems"][:20]:
        console.print(f"[red]problem:[/] {problem}", highlight=False)


def print_checks(checks: list[gating.Check], regressions: list[Any] | None = None) -> None:
    table = Table(title="gate")
    for col in ("op", "check", "goal", "measured", "margin", "result"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.op, c.name, "-" if c.goal is None else f"{c.goal:g} {c.unit}",
                      "-" if c.measured is None else f"{c.measured:g} {c.unit}",
                      "-" if c.margin is None else f"{c.margin:+.1%}",
                      "PASS" if c.passed else f"FAIL {c.detail}".strip())
    for r in regressions or []:
        def num(v: Any, unit: str = r.unit) -> str:
            return "-" if v is None else f"{v:.4g} {unit}".strip()

        if not r.unit:  # a note: a field that differs but may, or data the test could not use
            table.add_row(r.op, f"baseline note: {r.metric}", "-", "-", "-", r.detail)
            continue
        table.add_row(r.op, f"vs baseline {r.metric}", num(r.baseline), num(r.current),
                      "-" if r.ratio is None else f"x{r.ratio:.3f}",
                      "REGRESSION " + r.detail if r.regression else "ok")
    console.print(table)


@app.command("gate")
def gate_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run directory to check (several: the newest is checked)")],
    baseline: Annotated[list[str] | None, typer.Option(
        help="Baseline run directory, or a quoted glob ('baselines/*-bank-smoke'); repeat to pool several "
             "(3 or more give the run-to-run test its power)")] = None,
    force: Annotated[bool, typer.Option(help="Compare runs of different workloads, targets or rates anyway")]
    = False,
    junit: Annotated[Path | None, typer.Option(help="JUnit XML of the SLO checks (default RUN/gate.xml)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON on stdout")] = False,
) -> None:
    """Check a run against its SLOs, and against baseline runs; exit 0 pass, 1 SLO breach,
    2 usage error, 3 regression, 4 untrusted run (books, verification, generator), 130 interrupted."""
    from harness.results import baseline as baselines
    from harness.results.junit import write_baseline, write_checks

    run_dirs = [p if p.is_dir() else p.parent for p in runs]
    run_dir = baselines.pick_newest(run_dirs) if len(run_dirs) > 1 else run_dirs[0]
    if len(run_dirs) > 1:
        err.print(f"{len(run_dirs)} runs given: checking the newest, {run_dir}", highlight=False)
    try:
        summary = gating.load_summary(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    checks = gating.evaluate_slos(summary)
    comparisons: list[Any] = []
    if baseline:
        base_dirs = [p if p.is_dir() else p.parent for p in _expand(baseline) if p.resolve() != run_dir.resolve()]
        if not base_dirs:
            raise fail(f"--baseline {' '.join(baseline)}: no run directory matches")
        try:
            comparisons = baselines.compare(run_dir, base_dirs, force=force)
        except baselines.Incomparable as exc:
            raise fail(f"{exc} (use --force to compare anyway)") from None
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
        write_baseline(run_dir / "gate-baseline.xml", summary.get("name", "run"), comparisons)
    out = junit or (run_dir / "gate.xml")
    write_checks(out, summary.get("name", "run"), checks, summary.get("measured_s", 0.0))
    code = gating.exit_code(checks, comparisons)
    if as_json:
        typer.echo(orjson.dumps({"run_dir": str(run_dir), **gating.verdict_json(checks, comparisons)},
                                option=orjson.OPT_INDENT_2).decode())
    else:
        print_checks(checks, comparisons)
        console.print(f"junit: {out}" + (f", {run_dir / 'gate-baseline.xml'}" if comparisons else ""),
                      highlight=False)
    raise typer.Exit(code)


_mount_plugins()


def _expand(patterns: list[str]) -> list[Path]:
    """Baseline arguments: paths, or globs expanded here (a shell would hand the matches to RUNS)."""
    import glob

    out: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        out.extend(Path(m) for m in matches)
    return out


def main() -> None:
    app()


if __name__ == "__main__":
    main()
