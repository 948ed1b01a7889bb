"""The statistical baseline comparison (harness/results/baseline.py) on small synthetic run directories.

Each run directory is written here in edabench's format: run.json, summary.json, timeseries.jsonl and a
`<kind>.response.hlog` interval log written with hdrh's HistogramLogWriter, one 1 s histogram per line.
Unlike the harness's, the warm-up seconds here carry samples, so that leaving them out is tested.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from harness.results.baseline import (
    Comparison,
    Incomparable,
    _merge,
    _read_hlog,
    compare,
    identity,
    mann_whitney_greater,
    pick_newest,
    t_sf,
)

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}


def new_hist() -> HdrHistogram:
    return HdrHistogram(1, 3_600_000_000, 3)


def write_run(root: Path, name: str, *, base_ms: float = 10.0, scale: float = 1.0, sigma: float = 0.1,
              rate: int = 200, duration_s: int = 10, warmup_s: int = 2, target: str = "echo",
              workload: str = "echo-http", kinds: tuple[str, ...] = ("echo",), processes: int = 1,
              started_at: str = "2026-12-01T10:00:00.000000Z", seed: int = 1, warmup_scale: float = 1.0,
              achieved_ratio: float = 1.0, error_rate: float = 0.0) -> Path:
    """One run directory; latencies (µs) are log-normal around base_ms * scale, per kind at `rate`/s.

    `warmup_scale` multiplies the warm-up seconds' latencies only; `achieved_ratio` and `error_rate` set
    the summary's rates."""
    rng = np.random.default_rng(seed)
    run_dir = root / name
    run_dir.mkdir(parents=True)
    per_kind = rate // len(kinds)
    totals = {k: new_hist() for k in kinds}
    files, writers = {}, {}
    for kind in kinds:
        fh = (run_dir / f"{kind}.response.hlog").open("w", encoding="ascii")
        writer = HistogramLogWriter(fh)
        writer.output_log_format_version()
        fh.write("#[StartTime: 1796112000.000 (seconds since epoch), 2026-12-01 10:00:00+00:00]\n")
        writer.output_legend()
        files[kind], writers[kind] = fh, writer
    timeseries = []
    for t in range(warmup_s + duration_s):
        warm = t < warmup_s
        for kind in kinds:
            samples = base_ms * 1000 * scale * np.exp(sigma * rng.standard_normal(per_kind))
            samples *= warmup_scale if warm else 1.0
            hist = new_hist()
            for v in samples.astype(np.int64):
                hist.record_value(int(v))
            writers[kind].output_interval_histogram(hist, float(t), float(t + 1), 1000.0)
            if not warm:
                totals[kind].add(hist)
        timeseries.append({"t": t, "warmup": warm, "ok": per_kind * len(kinds), "error": 0, "timeout": 0})
    for fh in files.values():
        fh.close()

    def block(hist: HdrHistogram) -> dict[str, Any]:
        rt = {k: hist.get_value_at_percentile(p) for k, p in PERCENTILES.items()}
        rt.update(count=hist.get_total_count(), max=hist.get_max_value())
        return {"response_time_us": rt, "target_rate": float(per_kind),
                "achieved_rate": per_kind * achieved_ratio, "error_rate": error_rate}

    overall = new_hist()
    for h in totals.values():
        overall.add(h)
    ops = {k: block(h) for k, h in totals.items()}
    summary = {"schema": "edabench.summary/1", "name": workload, "ops": ops,
               "overall": {**block(overall), "target_rate": float(rate),
                           "achieved_rate": rate * achieved_ratio}}
    spec = {"name": workload, "target": target, "workload": None, "duration_s": float(duration_s),
            "warmup_s": float(warmup_s), "timeout_s": 5.0, "processes": processes,
            "rate": {"profile": "constant", "rate": float(rate), "end_rate": None, "steps": [],
                     "burst_ops": None, "burst_every_s": None, "poisson": False},
            "ops": [{"name": k, "weight": 1.0} for k in kinds], "target_options": {"base_ms": base_ms},
            "workload_options": {}}
    run = {"schema": "edabench.run/1", "name": workload, "run_id": name, "spec": spec,
           "config": {"rate": float(rate), "profile": "constant", "duration_s": float(duration_s),
                      "warmup_s": float(warmup_s), "processes": processes, "closed_loop": False},
           "started_at": started_at}
    (run_dir / "run.json").write_text(json.dumps(run))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "timeseries.jsonl").write_text("".join(json.dumps(x) + "\n" for x in timeseries))
    return run_dir


def row(rows: list[Comparison], metric: str, op: str = "overall") -> Comparison:
    (found,) = [r for r in rows if r.op == op and r.metric == metric]
    return found


# -- verdicts --------------------------------------------------------------------------------------


def test_same_distribution_is_not_a_regression(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1)
    cur = write_run(tmp_path, "cur", seed=2)
    rows = compare(cur, [base])
    assert not [r for r in rows if r.regression]
    p50 = row(rows, "p50_ms")
    assert p50.p_value is not None and p50.p_value > 0.01
    assert p50.ratio == pytest.approx(1.0, abs=0.03)


def test_fifty_percent_slower_is_a_regression_with_a_small_p_value(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1)
    cur = write_run(tmp_path, "cur", seed=2, scale=1.5)
    rows = compare(cur, [base])
    for op in ("overall", "echo"):
        p50 = row(rows, "p50_ms", op)
        assert p50.regression
        assert p50.p_value is not None and p50.p_value < 1e-3
        assert p50.ratio == pytest.approx(1.5, rel=0.05)
        assert p50.baseline == pytest.approx(10.0, rel=0.05) and p50.unit == "ms"
        assert p50.detail.startswith("regression: ")
    assert row(rows, "p99_ms").regression


def test_small_absolute_change_under_the_floor_is_not_a_regression(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1, base_ms=2.0)
    cur = write_run(tmp_path, "cur", seed=2, base_ms=2.0, scale=1.3)  # +30%, but +0.6 ms
    p50 = row(compare(cur, [base]), "p50_ms")
    assert p50.p_value is not None and p50.p_value < 1e-3  # clearly significant...
    assert p50.ratio is not None and p50.ratio > 1.2  # ...and beyond the tolerance...
    assert not p50.regression  # ...yet under the 1 ms floor
    assert "1 ms floor" in p50.detail


def test_a_change_within_the_tolerance_is_not_a_regression(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1, base_ms=40.0)
    cur = write_run(tmp_path, "cur", seed=2, base_ms=40.0, scale=1.06)  # +2.4 ms, but +6%
    p50 = row(compare(cur, [base]), "p50_ms")
    assert p50.p_value is not None and p50.p_value < 0.01
    assert not p50.regression
    assert "10% tolerance" in p50.detail


def test_too_few_intervals_is_not_compared_even_when_much_slower(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1, duration_s=4)
    cur = write_run(tmp_path, "cur", seed=2, duration_s=4, scale=2.0)
    p50 = row(compare(cur, [base]), "p50_ms")
    assert p50.p_value is None and not p50.regression
    assert p50.detail.startswith("not compared: 4 current and 4 baseline")
    assert p50.ratio == pytest.approx(2.0, rel=0.05)  # the values are still reported


def test_sparse_intervals_are_merged_and_too_few_windows_are_not_compared(tmp_path: Path) -> None:
    # 5 samples a second: a p50 window needs 20, so 10 s make only 2 windows (each of 4 s)
    base = write_run(tmp_path, "base", seed=1, rate=5)
    cur = write_run(tmp_path, "cur", seed=2, rate=5, scale=2.0)
    p50 = row(compare(cur, [base]), "p50_ms")
    assert p50.p_value is None and not p50.regression
    assert "2 current and 2 baseline" in p50.detail


def test_p99_9_needs_windows_of_a_thousand_samples(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1)  # 2,000 samples: 2 windows of >= 1,000
    cur = write_run(tmp_path, "cur", seed=2, scale=2.0)
    p999 = row(compare(cur, [base]), "p99_9_ms")
    assert p999.p_value is None and not p999.regression
    assert "windows of >= 1000 samples" in p999.detail


def test_warm_up_intervals_are_left_out(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1)
    cur = write_run(tmp_path, "cur", seed=2, warmup_scale=5.0)  # only the 2 warm-up seconds are slow
    rows = compare(cur, [base])
    assert not [r for r in rows if r.regression]
    assert "10 vs 10 1 s intervals" in row(rows, "p50_ms").detail


def test_a_shift_within_the_baseline_runs_spread_is_not_a_regression(tmp_path: Path) -> None:
    # four baseline runs that differ from each other by up to 20% (a loaded machine), each very steady
    bases = [write_run(tmp_path, f"b{i}", seed=i, sigma=0.01, scale=s) for i, s in enumerate((0.92, 1.0, 1.08, 1.12))]
    cur = write_run(tmp_path, "cur", seed=9, sigma=0.01, scale=1.16)
    p50 = row(compare(cur, bases), "p50_ms")
    assert p50.ratio is not None and p50.ratio > 1.1
    assert p50.current is not None and p50.baseline is not None and p50.current - p50.baseline > 1.0
    assert "U test over 10 vs 40 1 s intervals p = " in p50.detail
    within = float(p50.detail.split("intervals p = ")[1].split(",")[0])
    assert within < 1e-3  # the current seconds are all higher than every baseline second...
    assert p50.p_value is not None and p50.p_value > 0.01  # ...but the run sits within the runs' spread
    assert not p50.regression
    assert "within the noise" in p50.detail


def test_a_shift_well_beyond_the_baseline_runs_spread_is_a_regression(tmp_path: Path) -> None:
    bases = [write_run(tmp_path, f"b{i}", seed=i, sigma=0.01, scale=s) for i, s in enumerate((0.92, 1.0, 1.08, 1.12))]
    cur = write_run(tmp_path, "cur", seed=9, sigma=0.01, scale=2.0)  # t = 6.9 on 3 degrees of freedom
    p50 = row(compare(cur, bases), "p50_ms")
    assert p50.regression
    assert p50.p_value is not None and p50.p_value < 0.01
    assert "spread of 4 baseline runs" in p50.detail


def test_several_baselines_are_pooled(tmp_path: Path) -> None:
    bases = [write_run(tmp_path, f"b{i}", seed=i, scale=s) for i, s in enumerate((0.97, 1.0, 1.04))]
    cur = write_run(tmp_path, "cur", seed=9, scale=1.5)
    p50 = row(compare(cur, bases), "p50_ms")
    medians = [json.loads((b / "summary.json").read_text())["overall"]["response_time_us"]["p50"] / 1000
               for b in bases]
    assert p50.baseline == pytest.approx(statistics.median(medians))
    assert "10 vs 30 1 s intervals" in p50.detail
    assert p50.regression


def test_achieved_rate_drop_beyond_the_tolerance_is_a_regression(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1)
    cur = write_run(tmp_path, "cur", seed=2, achieved_ratio=0.85)
    rate = row(compare(cur, [base]), "achieved_rate")
    assert rate.regression and rate.unit == "ops/s"
    assert rate.ratio == pytest.approx(0.85)
    assert rate.p_value is None


def test_error_rate_rise_beyond_a_tenth_of_a_percent_is_a_regression(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1)
    small = write_run(tmp_path, "small", seed=2, error_rate=0.0008)
    large = write_run(tmp_path, "large", seed=3, error_rate=0.005)
    assert not row(compare(small, [base]), "error_rate").regression
    err = row(compare(large, [base]), "error_rate")
    assert err.regression and err.current == pytest.approx(0.005) and err.unit == "ratio"


# -- identity ------------------------------------------------------------------------------------


def test_different_target_is_incomparable_and_names_the_field(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", target="cart")
    cur = write_run(tmp_path, "cur", target="bank")
    with pytest.raises(Incomparable, match=r"target differs: baseline 'cart', current 'bank'"):
        compare(cur, [base])


@pytest.mark.parametrize(("field", "base_kw", "cur_kw", "message"), [
    ("workload", {"workload": "cart-smoke"}, {"workload": "bank-smoke"},
     "workload differs: baseline 'cart-smoke', current 'bank-smoke'"),
    ("rate", {"rate": 200}, {"rate": 400}, "rate.rate differs: baseline 200, current 400"),
    ("duration", {"duration_s": 10}, {"duration_s": 20}, "duration_s differs: baseline 10, current 20"),
    ("op kinds", {"kinds": ("a", "b")}, {"kinds": ("a", "c")},
     "op_kinds differs: baseline ['a', 'b'], current ['a', 'c']"),
])
def test_other_identity_differences_are_refused(tmp_path: Path, field: str, base_kw: dict[str, Any],
                                                cur_kw: dict[str, Any], message: str) -> None:
    base = write_run(tmp_path, "base", **base_kw)
    cur = write_run(tmp_path, "cur", **cur_kw)
    with pytest.raises(Incomparable) as exc:
        compare(cur, [base])
    assert message in str(exc.value), field


def test_force_compares_anyway_and_says_what_differs(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1, target="cart")
    cur = write_run(tmp_path, "cur", seed=2, target="bank", scale=1.5)
    rows = compare(cur, [base], force=True)
    note = row(rows, "target")
    assert not note.regression
    assert note.detail == "target differs: baseline 'cart', current 'bank'; compared anyway (forced)"
    assert row(rows, "p50_ms").regression


def test_different_processes_are_compared_with_a_note(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1, processes=1)
    cur = write_run(tmp_path, "cur", seed=2, processes=2)
    rows = compare(cur, [base])
    note = row(rows, "processes")
    assert (note.baseline, note.current, note.regression) == (1.0, 2.0, False)
    assert note.detail == "processes differs: baseline 1, current 2; allowed, compared anyway"
    assert row(rows, "p50_ms").p_value is not None


def test_a_baseline_whose_generator_fell_behind_is_noted(tmp_path: Path) -> None:
    base = write_run(tmp_path, "base", seed=1)
    summary = json.loads((base / "summary.json").read_text())
    summary["generator"] = {"kept_up": False, "schedule_lag_p99_ms": 184.0}
    (base / "summary.json").write_text(json.dumps(summary))
    note = row(compare(write_run(tmp_path, "cur", seed=2), [base]), "generator_kept_up")
    assert not note.regression
    assert note.detail == ("the baseline run base's generator fell behind its schedule (schedule-lag p99 184.00 ms): "
                           "its latencies include the generator's own delay")


def test_identity_reads_the_spec_of_run_json(tmp_path: Path) -> None:
    ident = identity(write_run(tmp_path, "run", rate=300, kinds=("b", "a"), duration_s=7))
    assert ident["workload"] == "echo-http" and ident["target"] == "echo"
    assert (ident["rate.profile"], ident["rate.rate"]) == ("constant", 300.0)
    assert (ident["duration_s"], ident["warmup_s"], ident["op_kinds"]) == (7.0, 2.0, ["a", "b"])


def test_a_run_is_not_its_own_baseline(tmp_path: Path) -> None:
    run = write_run(tmp_path, "run")
    with pytest.raises(ValueError, match="no baseline run"):
        compare(run, [run])


def test_pick_newest_picks_by_started_at_not_by_name(tmp_path: Path) -> None:
    late = write_run(tmp_path, "a-run", started_at="2026-12-02T09:00:00.000000Z")
    early = write_run(tmp_path, "z-run", started_at="2026-12-01T09:00:00.000000Z")
    (tmp_path / "not-a-run").mkdir()
    assert pick_newest([early, late, tmp_path / "not-a-run"]) == late


# -- statistics ------------------------------------------------------------------------------------


def test_mann_whitney_normal_approximation_with_continuity_correction() -> None:
    # x above y everywhere: U = 9, mean 4.5, variance 3 * 3 * 7 / 12 = 5.25, z = (9 - 4.5 - 0.5) / sqrt(5.25)
    p = mann_whitney_greater(np.array([4.0, 5.0, 6.0]), np.array([1.0, 2.0, 3.0]))
    assert p == pytest.approx(0.0404278, abs=1e-6)  # 1 - Phi(1.74574)
    reverse = mann_whitney_greater(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    assert reverse == pytest.approx(0.985452, abs=1e-6)  # z = (0 - 4.5 - 0.5) / sqrt(5.25)


def test_mann_whitney_of_all_tied_values_is_no_evidence() -> None:
    assert mann_whitney_greater(np.full(6, 7.0), np.full(9, 7.0)) == 1.0


def test_t_distribution_tail_matches_table_values() -> None:
    assert t_sf(31.8205, 1) == pytest.approx(0.01, rel=1e-4)
    assert t_sf(2.5524, 18) == pytest.approx(0.01, rel=1e-3)
    assert t_sf(0.0, 4) == pytest.approx(0.5)
    assert t_sf(-1.0, 5) == pytest.approx(1 - 0.181609, abs=1e-5)


def test_interval_percentiles_equal_hdrh_own(tmp_path: Path) -> None:
    run = write_run(tmp_path, "run", sigma=0.8, duration_s=3)
    intervals = _read_hlog(run / "echo.response.hlog")
    assert sorted(intervals) == [0, 1, 2, 3, 4]
    summary = json.loads((run / "summary.json").read_text())["overall"]["response_time_us"]
    window = _merge([intervals[t] for t in (2, 3, 4)])  # the measured seconds, merged as one window
    assert window.total == summary["count"] == 600
    for key, pct in PERCENTILES.items():
        assert window.value_at(pct) == summary[key]
