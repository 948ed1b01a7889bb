"""summary.md for CI job summaries: verdict, SLO table, key percentiles; safe to render as HTML."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import RunShape, make_run

from reports.build import build_report
from reports.fmt import ms
from reports.loader import load_run
from reports.markdown import esc


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = make_run(tmp_path_factory.mktemp("runs"), RunShape(kinds=("deposit", "withdraw")))
    build_report([run])
    return run, (run / "summary.md").read_text()


def test_heading_gives_the_verdict(summary: tuple[Path, str]) -> None:
    assert summary[1].splitlines()[0] == "## edabench: echo-http: FAIL"


def test_slo_table_has_the_failing_p99_row(summary: tuple[Path, str]) -> None:
    run, text = summary
    p99 = load_run(run).summary["overall"]["response_time_us"]["p99"] / 1000
    row = next(line for line in text.splitlines() if line.startswith("| overall | p99_ms |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["overall", "p99_ms", "100 ms", f"{p99:.4g} ms", "❌ FAIL", f"{100 - p99:+,.0f} %"]


def test_percentile_table_has_overall_and_each_kind(summary: tuple[Path, str]) -> None:
    run, text = summary
    data = load_run(run).summary
    for op, block in [("overall", data["overall"]), ("deposit", data["ops"]["deposit"])]:
        row = [line for line in text.splitlines() if line.startswith(f"| {op} | ")][-1]  # after the SLOs
        cells = [c.strip() for c in row.strip("|").split("|")]
        rt = block["response_time_us"]
        assert cells[-5:] == [ms(rt["p50"]), ms(rt["p90"]), ms(rt["p99"]), ms(rt["p99_9"]), ms(rt["max"])]


def test_cells_cannot_break_tables_or_inject_html() -> None:
    assert esc("a|b<img src=x>\nc") == "a\\|b&lt;img src=x&gt; c"


def test_comparison_summary_names_each_compared_run_once(tmp_path: Path) -> None:
    base = make_run(tmp_path, RunShape(kinds=("deposit", "withdraw")))
    slower = make_run(tmp_path, RunShape(kinds=("deposit", "withdraw"), scale_us=1.5, seed=2, name="slower"))
    build_report([base, slower], tmp_path / "cmp.html")
    text = (tmp_path / "compare.md").read_text()
    label = load_run(slower).label
    section = text[text.index("### Against baseline") :]
    assert section.count(label) == 1
    assert f"#### `{label}`: " in section
    assert "| op | metric | baseline | current | change | verdict |" in section
