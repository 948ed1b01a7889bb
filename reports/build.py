"""Build the report files: one self-contained HTML page and a Markdown summary beside it."""

from __future__ import annotations

from pathlib import Path

from reports import html, markdown
from reports.compare import Comparison, compare
from reports.gating import DEFAULT_TOLERANCE
from reports.history import History, history
from reports.loader import load_run
from reports.model import run_view

SUMMARY_NAME = "summary.md"
COMPARE_NAME = "compare.md"  # a comparison never overwrites the compared run's own summary.md


def default_output(run_dirs: list[Path], history_dir: Path | None = None) -> Path:
    """`<run>/report.html` for one run, `<last run>/compare.html` for several, else in the history folder."""
    if len(run_dirs) == 1:
        return Path(run_dirs[0]) / "report.html"
    if run_dirs:
        return Path(run_dirs[-1]) / "compare.html"
    if history_dir is not None:
        return Path(history_dir) / "history.html"
    raise ValueError("nothing to report: give at least one run directory or a history folder")


def _title(names: list[str], n_runs: int, hist: History | None) -> str:
    if n_runs == 1:
        return f"edabench report: {names[0]}"
    if n_runs > 1:
        return f"edabench comparison: {' vs '.join(dict.fromkeys(names))} ({n_runs} runs)"
    return f"edabench history: {len(hist.points) if hist else 0} runs"


def build_report(
    run_dirs: list[Path],
    out: Path | None = None,
    history_dir: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Path:
    """Write the HTML report (and its Markdown summary next to it); return the HTML path."""
    return build(run_dirs, out, history_dir, tolerance)[0]


def build(
    run_dirs: list[Path],
    out: Path | None = None,
    history_dir: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[Path, Comparison | None]:
    """Write the HTML report and its Markdown summary; return the HTML path and the comparison.

    One run: the full report, summary.md beside it. Several: a comparison (the first run is the
    baseline), compare.md beside it. `history_dir` adds a trend over every run in that folder.
    """
    run_dirs = [Path(p) for p in run_dirs]
    out = Path(out) if out is not None else default_output(run_dirs, history_dir)
    runs = [load_run(p) for p in run_dirs]
    views = [run_view(r, with_charts=len(runs) == 1) for r in runs]
    comparison: Comparison | None = compare(runs, tolerance) if len(runs) > 1 else None
    hist = history(Path(history_dir)) if history_dir is not None else None
    page = html.render(
        title=_title([r.name for r in runs], len(runs), hist),
        views=views,
        comparison=comparison,
        history=hist,
        mixed_loop=len({r.closed_loop for r in runs}) > 1,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    if views:
        name = COMPARE_NAME if comparison is not None else SUMMARY_NAME
        (out.parent / name).write_text(markdown.render(views, comparison), encoding="utf-8")
    return out, comparison


def after_run(run_dir: Path) -> Path | None:
    """The CLI's after-run step (entry point `edabench.after_run`): the run's HTML report."""
    return Path(build_report([run_dir]))
