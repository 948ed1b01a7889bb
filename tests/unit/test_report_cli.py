"""`edabench report` as the harness mounts it: `app.add_typer(reports.cli.app, name="report")`."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from report_fixtures import RunShape, make_run
from typer.testing import CliRunner

from reports import cli


@pytest.fixture(scope="module")
def mounted() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def run() -> None:  # a sibling command, as in the real CLI
        """Placeholder."""

    app.add_typer(cli.app, name="report")
    return app


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return make_run(root, RunShape(duration_s=5, warmup_s=1)), make_run(root, RunShape(duration_s=5, name="b"))


def test_report_of_one_run_writes_report_html(mounted: typer.Typer, two_runs: tuple[Path, Path]) -> None:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(mounted, ["report", str(two_runs[0])])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(two_runs[0] / "report.html")
    assert (two_runs[0] / "report.html").is_file()


def test_report_of_two_runs_to_a_chosen_file(mounted: typer.Typer, two_runs: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    out = tmp_path / "ci" / "compare.html"
    args = ["report", *map(str, two_runs), "-o", str(out), "--tolerance", "0.2"]
    result = CliRunner(env={"COLUMNS": "300"}).invoke(mounted, args)
    assert result.exit_code == 0, result.output
    assert "Noise band: ±20.0 %" in out.read_text()
    assert (out.parent / "compare.md").is_file()


def test_history_alone_is_enough(mounted: typer.Typer, two_runs: tuple[Path, Path]) -> None:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(mounted, ["report", "--history", str(two_runs[0].parent)])
    assert result.exit_code == 0, result.output
    assert "History: 2 runs" in (two_runs[0].parent / "history.html").read_text()


def test_missing_run_directory_is_a_usage_error(mounted: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(mounted, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "not a directory" in result.output


def test_directory_without_results_is_refused(mounted: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(mounted, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a run directory" in result.output


def test_nothing_to_report_is_a_usage_error(mounted: typer.Typer) -> None:
    assert CliRunner(env={"COLUMNS": "300"}).invoke(mounted, ["report"]).exit_code == 2
