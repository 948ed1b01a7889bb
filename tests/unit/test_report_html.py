"""The single-run HTML page: self-contained, one spectrum per op, labelled, escaped, reproducible."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from report_fixtures import RunShape, make_run, table_rows

from reports.build import build_report
from reports.fmt import ms
from reports.html import breakable
from reports.loader import load_run

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = make_run(tmp_path_factory.mktemp("runs"), RunShape(kinds=("deposit", "withdraw", "balance")))
    out = build_report([run])
    return run, out.read_text()


def _figure(page: str, caption: str) -> str:
    m = re.search(r'<figure class="chart" data-chart="' + re.escape(caption) + r'">(.*?)</figure>', page, re.S)
    assert m, f"no chart {caption!r}"
    return m.group(1)


def test_default_output_is_report_html_in_the_run(report: tuple[Path, str]) -> None:
    run, _ = report
    assert (run / "report.html").is_file()
    assert (run / "summary.md").is_file()


@pytest.mark.parametrize("kind", ["deposit", "withdraw", "balance"])
def test_each_op_has_its_spectrum_with_response_and_service(report: tuple[Path, str], kind: str) -> None:
    svg = _figure(report[1], f"Latency by percentile: {kind}")
    assert "<svg" in svg
    assert len(re.findall(r'<g id="c\d+-series-\d+">', svg)) == 2  # response and service curves


def test_overall_spectrum_overlays_all_kinds(report: tuple[Path, str]) -> None:
    svg = _figure(report[1], "Latency by percentile (all kinds): response vs service time")
    assert len(re.findall(r'<g id="c\d+-series-\d+">', svg)) == 2 + 3


@pytest.mark.parametrize("caption", [
    "Target vs achieved rate",
    "Errors, timeouts and not-sent per second",
    "In flight and driver gauges",
    "Schedule lag (actual − intended send)",
    "CPU of harness and target processes",
    "Memory (RSS) of harness and target processes",
    "Latency over time: deposit (p50, p99, max per interval)",
])
def test_run_charts_are_drawn(report: tuple[Path, str], caption: str) -> None:
    svg = _figure(report[1], caption)
    assert re.search(r'<g id="c\d+-series-0">\s*<path', svg)


def test_page_needs_no_network(report: tuple[Path, str]) -> None:
    page = report[1]
    assert "<script" not in page
    assert "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "@import" not in page and "url(http" not in page


def test_svg_ids_are_unique_across_charts(report: tuple[Path, str]) -> None:
    ids = re.findall(r'\bid="([^"]+)"', report[1])
    assert len(ids) == len(set(ids))


def test_every_internal_reference_resolves(report: tuple[Path, str]) -> None:
    page = report[1]
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', page))
    assert refs <= ids


def test_reproduce_command_is_shown_exactly(report: tuple[Path, str]) -> None:
    page = report[1]
    cmd = shlex.join(["edabench", "run", "workloads/echo-http.toml", "--rate", "600.0"])
    assert f'<pre id="command">{cmd}</pre>' in page


def test_environment_table_lists_git_sha_and_cpu(report: tuple[Path, str]) -> None:
    env = dict((r[1][0], r[1][1]) for r in table_rows(report[1], "environment"))
    assert env["git_sha"] == "abc123"
    assert env["cpu"] == "Test CPU @ 2.0GHz"


def test_error_kinds_are_tabled_per_op(report: tuple[Path, str]) -> None:
    tables = table_rows(report[1], "errors")
    assert [r[1] for r in tables[:2]] == [["http_503", "36"], ["http_503", "12"]]  # overall, then deposit


def test_open_loop_run_has_no_closed_loop_banner(report: tuple[Path, str]) -> None:
    assert 'id="closed-loop"' not in report[1]


def test_closed_loop_run_is_labelled(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(closed_loop=True))
    page = build_report([run]).read_text()
    assert 'class="banner closed" id="closed-loop">CLOSED-LOOP RUN' in page
    assert "CLOSED-LOOP RUN" in (run / "summary.md").read_text()


def test_interrupted_run_is_flagged(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(interrupted=True))
    assert "Run was interrupted before its planned end." in build_report([run]).read_text()


def test_run_without_resources_or_timeseries_still_builds(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(resources=False))
    (run / "timeseries.jsonl").unlink()
    page = build_report([run]).read_text()
    assert "No resource samples in this run." in page
    assert "Latency by percentile: echo" in page


def test_names_from_runs_are_escaped_everywhere(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(name=EVIL, kinds=(EVIL, "ok"), error_kind=EVIL))
    page = build_report([run]).read_text()
    summary = (run / "summary.md").read_text()
    assert "<script" not in page.lower()
    assert "<script" not in summary.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_driver_observed_histograms_get_their_own_table_and_charts(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(observed=("read_your_writes_lag",)))
    page = build_report([run]).read_text()
    expected = load_run(run).summary["observed_us"]["read_your_writes_lag"]
    (row,) = table_rows(page, "observed")
    assert row[1] == ["read_your_writes_lag", *(ms(expected[k]) for k in ("p50", "p90", "p99", "p99_9", "p99_99",
                                                                          "max")), f"{expected['count']:,}"]
    assert _figure(page, "Observed metrics by percentile")
    assert _figure(page, "Observed metrics over time (p99, max per interval)")


def test_observed_spectrum_histogram_matches_summary(tmp_path: Path) -> None:
    data = load_run(make_run(tmp_path, RunShape(observed=("read_your_writes_lag",))))
    expected = data.summary["observed_us"]["read_your_writes_lag"]
    merged = data.observed["read_your_writes_lag"].merged
    assert list(merged.values_at([50, 99])) == [expected["p50"], expected["p99"]]


def test_run_that_died_before_its_summary_still_reports_and_fails(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape())
    (run / "summary.json").unlink()
    page = build_report([run]).read_text()
    assert 'id="no-summary"' in page
    assert '<div class="banner bad" id="verdict">FAIL' in page
    assert "Latency over time: echo (p50, p99, max per interval)" in page


def test_long_names_get_break_opportunities_and_stay_escaped() -> None:
    assert str(breakable("<b>inventory_reservation-2.x</b>")) == (
        "&lt;b&gt;inventory_<wbr>reservation-<wbr>2.<wbr>x&lt;/<wbr>b&gt;")


def test_page_names_no_url_but_the_svg_namespaces(report: tuple[Path, str]) -> None:
    urls = set(re.findall(r"https?://[^\"'<>\s)]+", report[1]))
    assert urls == {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
