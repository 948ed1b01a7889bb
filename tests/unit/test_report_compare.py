"""Comparing runs: the delta table is the gate's verdict, drawn against its noise band."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from report_fixtures import RunShape, make_run, regressions_on_page, table_cells, table_rows

from reports.build import build_report
from reports.compare import compare
from reports.fmt import pct_change, with_unit
from reports.gating import compare_runs  # the gate's own function, wherever the harness keeps it
from reports.loader import load_run

LATER = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    base = make_run(root, RunShape(kinds=("deposit", "withdraw")))
    slower = make_run(root, RunShape(kinds=("deposit", "withdraw"), scale_us=1.5, seed=2, started_at=LATER))
    same = make_run(root, RunShape(kinds=("deposit", "withdraw"), seed=1, name="again"))
    return base, slower, same


def test_delta_rows_are_the_gates_deltas(runs: tuple[Path, Path, Path]) -> None:
    base, slower, _ = runs
    comp = compare([load_run(base), load_run(slower)], 0.10, with_charts=False)
    gate, _notes = compare_runs(slower, base, 0.10)
    assert [(r.op, r.metric, r.ratio, r.regression) for r in comp.rows] == [
        (d.op, d.metric, d.ratio, d.regression) for d in gate
    ]


def test_fifty_percent_slower_run_regresses_on_p99(runs: tuple[Path, Path, Path]) -> None:
    base, slower, _ = runs
    comp = compare([load_run(base), load_run(slower)], 0.10, with_charts=False)
    (row,) = [r for r in comp.rows if r.op == "overall" and r.metric == "p99_ms"]
    assert row.regression and row.verdict == "regression"
    assert row.ratio == pytest.approx(1.5, rel=0.1)


def test_identical_run_is_within_noise(runs: tuple[Path, Path, Path]) -> None:
    base, _, same = runs
    comp = compare([load_run(base), load_run(same)], 0.10, with_charts=False)
    assert comp.regressions == []
    assert {r.verdict for r in comp.rows} == {"within noise"}


def test_wider_tolerance_absorbs_the_slowdown(runs: tuple[Path, Path, Path]) -> None:
    base, slower, _ = runs
    comp = compare([load_run(base), load_run(slower)], 0.60, with_charts=False)
    assert comp.regressions == []


def test_comparison_page_overlays_every_run(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    page = build_report(list(runs), tmp_path / "cmp.html").read_text()
    spectrum = re.search(r'data-chart="Latency by percentile, all kinds, per run">(.*?)</figure>', page, re.S)
    assert spectrum and len(re.findall(r'<g id="c\d+-series-\d+">', spectrum.group(1))) == 3
    assert "Noise band: ±10.0 %" in page
    assert len(table_rows(page, "runs")) == 3


def test_deltas_are_one_op_by_metric_table_per_compared_run(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    page = build_report(list(runs), tmp_path / "cmp.html").read_text()
    labels = [load_run(r).label for r in runs]
    assert re.findall(r'<table class="deltas" data-run="([^"]+)">', page) == labels[1:]
    rows = table_cells(page, "deltas")
    assert [r[0]["data-op"] for r in rows] == ["overall", "deposit", "withdraw"] * 2
    metrics = [c[0]["data-metric"] for c in rows[0][1][1:]]
    assert metrics == ["p50_ms", "p99_ms", "p99_9_ms", "achieved_rate", "error_rate"]  # the gate's metrics


def test_each_compared_run_id_is_printed_once_in_the_deltas(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    page = build_report(list(runs), tmp_path / "cmp.html").read_text()
    section = page[page.index('<h2 id="deltas">') : page.index('<h2 id="slo">')]
    text = re.sub(r"<[^>]+>", " ", section)
    for run in runs[1:]:
        assert text.count(load_run(run).label) == 1


def test_regression_cells_are_the_gates_regressions(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    base, slower, _ = runs
    page = build_report([base, slower], tmp_path / "cmp.html").read_text()
    marked = regressions_on_page(page)
    comp = compare([load_run(base), load_run(slower)], 0.10, with_charts=False)
    assert ("overall", "p99_ms") in marked
    assert marked == {(r.op, r.metric) for r in comp.regressions}


def test_regression_cell_shows_both_values_the_change_and_the_verdict(runs: tuple[Path, Path, Path],
                                                                       tmp_path: Path) -> None:
    base, slower, _ = runs
    page = build_report([base, slower], tmp_path / "cmp.html").read_text()
    overall = next(cells for row, cells in table_cells(page, "deltas") if row["data-op"] == "overall")
    attrs, text = next(c for c in overall if c[0].get("data-metric") == "p99_ms")
    row = next(r for r in compare([load_run(base), load_run(slower)], 0.10, with_charts=False).rows
               if r.op == "overall" and r.metric == "p99_ms")
    assert attrs["data-verdict"] == "regression"
    assert text == f"{with_unit(row.baseline, row.unit)} → {with_unit(row.current, row.unit)} " \
                   f"{pct_change(row.ratio)} regression"


def test_runs_table_names_one_workload_above_it_and_gives_short_start_times(runs: tuple[Path, Path, Path],
                                                                            tmp_path: Path) -> None:
    base, slower, _ = runs
    page = build_report([base, slower], tmp_path / "cmp.html").read_text()
    assert "<p>Workload: <strong>echo-http</strong></p>" in page
    first, second = (cells for _, cells in table_rows(page, "runs"))
    assert first[:2] == [f"{load_run(base).label} (baseline)", "2026-11-23 18:15:00"]
    assert second[:2] == [load_run(slower).label, "2026-11-23 19:00:00"]


def test_several_runs_default_to_compare_html_in_the_last(runs: tuple[Path, Path, Path]) -> None:
    base, slower, _ = runs
    out = build_report([base, slower])
    assert out == slower / "compare.html"
    assert "regression(s)" in (slower / "compare.md").read_text()  # the run's own summary.md is left alone


def test_mixing_closed_and_open_loop_is_flagged(tmp_path: Path) -> None:
    a = make_run(tmp_path, RunShape())
    b = make_run(tmp_path, RunShape(closed_loop=True, started_at=LATER))
    page = build_report([a, b], tmp_path / "c.html").read_text()
    assert "Comparing closed-loop with open-loop runs" in page


def test_hostile_op_names_are_escaped_on_the_comparison_page(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    a = make_run(tmp_path, RunShape(kinds=(evil, "ok"), name=evil))
    b = make_run(tmp_path, RunShape(kinds=(evil, "ok"), name=evil, started_at=LATER, scale_us=1.3))
    page = build_report([a, b], tmp_path / "c.html").read_text()
    assert "<script" not in page.lower()
    assert 'data-op="&lt;script&gt;alert(1)&lt;/script&gt;"' in page
