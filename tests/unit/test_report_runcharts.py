"""What each run chart is drawn from: top kinds plus "other" on the spectrum, one panel per kind over
time, no chart for what never happened, and resources on the schedule's clock."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import RunShape, make_run

from reports import runcharts
from reports.build import build_report
from reports.loader import load_run

NINE = tuple(f"op{i}" for i in range(9))


@pytest.fixture(scope="module")
def nine_kinds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nine kinds, each slower than the one before, so their p99 order is known."""
    root = tmp_path_factory.mktemp("nine")
    run = make_run(root, RunShape(kinds=NINE, rate=50, duration_s=10, warmup_s=2, stall_every_s=0))
    for i, kind in enumerate(NINE):  # rescale each kind's logs: op8 slowest
        slower = make_run(root / kind, RunShape(kinds=(kind,), rate=50, duration_s=10, warmup_s=2,
                                                stall_every_s=0, scale_us=1 + i / 4, seed=i))
        for which in ("response", "service"):
            (run / f"{kind}.{which}.hlog").write_text((slower / f"{kind}.{which}.hlog").read_text())
    return run


def _figure(page: str, caption: str) -> str | None:
    m = re.search(r'<figure class="chart" data-chart="' + re.escape(caption) + r'">(.*?)</figure>', page, re.S)
    return m.group(1) if m else None


def test_overall_spectrum_overlays_the_six_slowest_kinds_and_adds_up_the_rest(nine_kinds: Path) -> None:
    labels = [c.label for c in runcharts.spectrum_curves(load_run(nine_kinds))]
    assert labels == ["response time, all kinds", "service time, all kinds",
                      *(f"response: op{i}" for i in (8, 7, 6, 5, 4, 3)), "response: other (3 kinds)"]


def test_other_curve_is_the_exact_sum_of_the_kinds_left_out(nine_kinds: Path) -> None:
    data = load_run(nine_kinds)
    other = runcharts.spectrum_curves(data)[-1].counts
    expected = sum(data.logs[k].response.merged.counts for k in ("op0", "op1", "op2"))
    assert np.array_equal(other.counts, expected)


def test_overall_spectrum_curves_have_distinct_colours(nine_kinds: Path) -> None:
    colours = [c.color for c in runcharts.spectrum_curves(load_run(nine_kinds))]
    assert len(set(colours)) == len(colours)


def test_seven_kinds_are_all_overlaid_rather_than_one_called_other(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(kinds=NINE[:7], rate=20, duration_s=3, warmup_s=0, stall_every_s=0))
    labels = [c.label for c in runcharts.spectrum_curves(load_run(run))]
    assert len(labels) == 2 + 7 and not any("other" in label for label in labels)


def test_latency_over_time_has_one_panel_per_kind_in_summary_order(nine_kinds: Path) -> None:
    panels, left_out = runcharts.latency_panels(load_run(nine_kinds))
    assert [p.title for p in panels] == list(NINE)
    assert [ln.label for ln in panels[0].lines] == ["p99", "max"]
    assert left_out == 0


def test_latency_panels_keep_the_slowest_kinds_when_there_are_too_many(nine_kinds: Path) -> None:
    panels, left_out = runcharts.latency_panels(load_run(nine_kinds), cap=4)
    assert [p.title for p in panels] == ["op5", "op6", "op7", "op8"]
    assert left_out == 5


def test_overall_latency_chart_draws_a_pair_of_lines_per_panel(nine_kinds: Path) -> None:
    page = build_report([nine_kinds], nine_kinds / "r.html").read_text()
    svg = _figure(page, "Response time over time per kind: p99 and max per interval")
    assert svg is not None
    assert len(re.findall(r'<g id="c\d+-series-\d+">', svg)) == 2 * 9


# -- charts of what never happened are left out ------------------------------------------------------


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = make_run(tmp_path_factory.mktemp("clean"), RunShape(errors_per_stall=0, timeouts_per_stall=0,
                                                             gauges=False, stall_every_s=0))
    rows = [json.loads(line) for line in (run / "timeseries.jsonl").read_text().splitlines()]
    (run / "timeseries.jsonl").write_text("".join(json.dumps(r | {"in_flight": 0}) + "\n" for r in rows))
    return run, build_report([run]).read_text()


def test_run_without_failures_has_no_outcome_chart_but_says_so(clean_run: tuple[Path, str]) -> None:
    page = clean_run[1]
    assert _figure(page, "Errors, timeouts and not-sent per second") is None
    assert '<p class="muted" id="no-failures">No errors, no timeouts and no ops left unsent in this run.</p>' in page


def test_run_without_gauges_has_no_gauge_chart_but_says_so(clean_run: tuple[Path, str]) -> None:
    page = clean_run[1]
    assert _figure(page, "In flight and driver gauges") is None
    assert 'id="no-gauges"' in page


def test_outcome_chart_draws_only_the_outcomes_that_happened(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(errors_per_stall=3, timeouts_per_stall=0))
    assert [ln.label for ln in runcharts.outcome_lines(load_run(run))] == ["errors"]


def test_gauge_chart_keeps_gauges_that_moved(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape())
    assert [ln.label for ln in runcharts.gauge_lines(load_run(run))] == ["in flight", "consumer_lag"]


# -- resources on the schedule's clock ----------------------------------------------------------------


def test_resources_are_moved_onto_the_schedules_clock(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(duration_s=10, warmup_s=3, resources_lead_s=12.5))
    data = load_run(run)
    cpu, memory = runcharts.resource_lines(data)
    schedule_t = [r["t"] for r in data.timeseries]
    assert list(cpu[0].x) == pytest.approx(schedule_t)
    assert list(memory[0].x) == pytest.approx(schedule_t)


def test_resources_offset_comes_from_the_logs_start_time(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(duration_s=3, warmup_s=1, resources_lead_s=7.25))
    assert load_run(run).resources_offset_s == pytest.approx(7.25, abs=1e-3)


def test_resources_offset_prefers_the_schedule_start_in_run_json(tmp_path: Path) -> None:
    shape = RunShape(duration_s=3, warmup_s=1, resources_lead_s=7.0)
    run = make_run(tmp_path, shape)
    meta = json.loads((run / "run.json").read_text())
    start = shape.started_at + timedelta(seconds=8.5)
    meta["schedule_started_at"] = start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (run / "run.json").write_text(json.dumps(meta))
    assert load_run(run).resources_offset_s == pytest.approx(8.5)


def test_resources_without_any_start_time_are_not_moved(tmp_path: Path) -> None:
    run = make_run(tmp_path, RunShape(duration_s=3, warmup_s=1, resources_lead_s=4.0))
    for log in run.glob("*.hlog"):
        log.unlink()
    data = load_run(run)
    assert data.resources_offset_s == 0.0
    assert list(runcharts.resource_lines(data)[0][0].x)[:2] == [4.0, 5.0]
