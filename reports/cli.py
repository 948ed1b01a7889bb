"""`edabench report`: build the HTML report of one run, a comparison of several, or a history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    from reports.build import build_report
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
        path = build_report(run_dirs, output, history_dir=history_dir, tolerance=tolerance)
    except RunDirError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(str(path))
