"""`edabench report`: build the HTML report of one run, a comparison of several, or a history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reports.gating import DEFAULT_TOLERANCE

# One command mounted as a group (`add_typer(app, name="report")`): the callback does the work, and
# options may follow the run directories, as they may for any command.
app = typer.Typer(
    add_completion=False,
    help="Build the HTML report of runs.",
    context_settings={"allow_interspersed_args": True},
    options_metavar="[OPTIONS]",
    subcommand_metavar="",
)


@app.callback(invoke_without_command=True)
def report(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="RUN", help="Run directories. One: full report. Several: a comparison, first = baseline."
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="HTML file to write.")] = None,
    history_dir: Annotated[
        Path | None, typer.Option("--history", help="Folder of runs to chart p99 and throughput over time.")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Noise band for comparisons, as a fraction (same meaning as the gate's).")
    ] = DEFAULT_TOLERANCE,
) -> None:
    """Write a self-contained HTML report and a Markdown summary (summary.md) next to it."""
    from reports.build import build
    from reports.loader import RunDirError

    run_dirs = list(runs or [])
    if not run_dirs and history_dir is None:
        raise typer.BadParameter("give at least one run directory, or --history DIR", param_hint="RUN")
    for p in run_dirs:
        if not p.is_dir():
            raise typer.BadParameter(f"{p}: not a directory", param_hint="RUN")
    if history_dir is not None and not history_dir.is_dir():
        raise typer.BadParameter(f"{history_dir}: not a directory", param_hint="--history")
    try:
        path, comparison = build(run_dirs, output, history_dir=history_dir, tolerance=tolerance)
    except RunDirError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if comparison is not None:
        print_comparison(comparison)
    typer.echo(str(path))


def print_comparison(comparison: Any) -> None:
    """The comparison's verdicts in the terminal: the same rows, and the gate's own verdicts."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for group in comparison.groups:
        table = Table(title=f"{group.run.label} vs baseline {comparison.baseline.label}")
        for col in ("op", "metric", "baseline", "this run", "change", "verdict"):
            table.add_column(col, justify="left" if col in ("op", "metric", "verdict") else "right")
        for r in group.rows:
            def num(v: Any, unit: str = r.unit) -> str:
                return "-" if v is None else f"{v:.4g} {unit}".strip()

            table.add_row(r.op, r.metric, num(r.baseline), num(r.current),
                          "-" if r.ratio is None else f"x{r.ratio:.3f}",
                          "REGRESSION" if r.regression else r.verdict)
        console.print(table)
        for note in group.notes:
            console.print(f"note: {note}", highlight=False)
