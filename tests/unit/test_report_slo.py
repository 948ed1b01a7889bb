"""The SLO table says what the gate says: pass/fail and margin per goal, per op and overall."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import RunShape, make_run, table_rows

from reports.build import build_report
from reports.gating import evaluate_slos  # the gate's own function, wherever the harness keeps it
from reports.loader import load_run
from reports.model import slo_rows


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    slo = {"p99_ms": 100, "max_error_rate": 0.01, "ops": {"withdraw": {"p50_ms": 50}}}
    return make_run(tmp_path_factory.mktemp("runs"), RunShape(kinds=("deposit", "withdraw"), slo=slo))


def _row(rows: list, op: str, name: str):
    (row,) = [r for r in rows if r.op == op and r.name == name]
    return row


def test_p99_row_fails_with_the_gate_margin(failing_run: Path) -> None:
    data = load_run(failing_run)
    p99_ms = data.summary["overall"]["response_time_us"]["p99"] / 1000
    row = _row(slo_rows(data.run, data.summary), "overall", "p99_ms")
    assert row.passed is False
    assert row.measured == pytest.approx(p99_ms)
    assert row.margin == pytest.approx((100 - p99_ms) / 100)


def test_error_rate_row_passes_below_its_goal(failing_run: Path) -> None:
    data = load_run(failing_run)
    row = _row(slo_rows(data.run, data.summary), "overall", "max_error_rate")
    assert row.passed is True
    assert row.measured == data.summary["overall"]["error_rate"]


def test_per_op_goal_is_checked_on_that_op(failing_run: Path) -> None:
    data = load_run(failing_run)
    row = _row(slo_rows(data.run, data.summary), "withdraw", "p50_ms")
    assert row.passed is True
    assert row.measured == pytest.approx(data.summary["ops"]["withdraw"]["response_time_us"]["p50"] / 1000)


def test_rows_are_exactly_the_gates_checks(failing_run: Path) -> None:
    data = load_run(failing_run)
    rows = slo_rows(data.run, data.summary)
    checks = evaluate_slos(data.summary, data.summary["slo"])
    assert [(r.op, r.name, r.passed, r.margin) for r in rows] == [
        (c.op, c.name, c.passed, c.margin) for c in checks
    ]


def test_html_slo_row_for_p99_reads_fail_and_margin(failing_run: Path, tmp_path: Path) -> None:
    data = load_run(failing_run)
    p99_ms = data.summary["overall"]["response_time_us"]["p99"] / 1000
    page = build_report([failing_run], tmp_path / "r.html").read_text()
    (row,) = [r for r in table_rows(page, "slo")
              if r[0].get("data-op") == "overall" and r[0].get("data-goal") == "p99_ms"]
    op, goal, target, measured, result, margin, _detail = row[1]
    assert (op, goal, target, result) == ("overall", "p99_ms", "100 ms", "FAIL")
    assert measured == f"{p99_ms:.4g} ms"
    assert margin == f"{(100 - p99_ms):+,.0f} %"


def test_verdict_banner_counts_passed_checks(failing_run: Path, tmp_path: Path) -> None:
    page = build_report([failing_run], tmp_path / "r.html").read_text()
    data = load_run(failing_run)
    rows = slo_rows(data.run, data.summary)
    assert f"FAIL: {sum(r.passed for r in rows)} of {len(rows)} SLO checks passed" in page


def test_met_goal_passes_with_positive_margin(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(slo={"p99_ms": 5000}))
    data = load_run(run)
    row = _row(slo_rows(data.run, data.summary), "overall", "p99_ms")
    assert row.passed is True
    assert 0 < row.margin < 1
