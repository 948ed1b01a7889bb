"""The gate (harness/results/gate.py), its JUnit XML (harness/results/junit.py) and `edabench gate`.

SLO and integrity checks on one run, the one exit code for a verdict (0 pass, 1 SLO breach,
3 regression, 4 untrusted run, 130 interrupted; 2 usage error from the CLI), the verdict as JSON,
the quick summary-to-summary comparison, and JUnit as CI reporters read it. The baseline statistics
themselves are tested in test_results_baseline.py; here `edabench gate --baseline` is tested for its
wiring, with the comparison stubbed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.results import baseline as baselines
from harness.results.gate import (
    INTEGRITY,
    INTERRUPTED,
    PASS,
    REGRESSION,
    SLO_BREACH,
    UNTRUSTED,
    USAGE,
    Check,
    compare_summaries,
    evaluate_slos,
    exit_code,
    load_summary,
    passed,
    verdict_json,
)
from harness.results.junit import write_baseline, write_checks


def block(p50: int = 20_000, p90: int = 50_000, p95: int = 70_000, p99: int = 80_000, p99_9: int = 95_000,
          max_us: int = 100_000, target_rate: float = 200.0, achieved_rate: float = 200.0,
          error_rate: float = 0.0, count: int = 1000) -> dict[str, Any]:
    """One op block of summary.json (latencies in µs)."""
    rt = {"count": count, "min": 1_000, "mean": p50, "p50": p50, "p90": p90, "p95": p95, "p99": p99,
          "p99_9": p99_9, "p99_99": max_us, "max": max_us} if count else {"count": 0}
    return {"counts": {"scheduled": 1000, "ok": 1000, "error": 0, "timeout": 0, "not_sent": 0},
            "target_rate": target_rate, "achieved_rate": achieved_rate, "error_rate": error_rate,
            "timeout_share": 0.0, "response_time_us": rt, "service_time_us": rt}


def generator(kept_up: bool = True, checked: bool = True, lag_ms: float = 1.2) -> dict[str, Any]:
    return {"kept_up": kept_up, "checked": checked, "max_schedule_lag_ms": 50.0, "schedule_lag_p99_ms": lag_ms,
            "intervals_behind": [] if kept_up else [3, 4], "intervals_behind_count": 0 if kept_up else 2}


def summary(overall: dict[str, Any] | None = None, ops: dict[str, dict[str, Any]] | None = None,
            slo: dict[str, Any] | None = None, books_balanced: bool = True, problems: list[str] | None = None,
            interrupted: bool = False, empty: bool = False, gen: dict[str, Any] | None = None,
            name: str = "demo") -> dict[str, Any]:
    overall = overall or block()
    return {"schema": "edabench.summary/2", "name": name, "interrupted": interrupted, "empty": empty,
            "books_balanced": books_balanced, "measured_s": 10.0,
            "ops": ops if ops is not None else {"echo": overall}, "overall": overall,
            "generator": gen if gen is not None else generator(),
            "verify": {"problems": problems or []}, "slo": slo or {}}


def find(checks: list[Check], name: str, op: str = "overall") -> Check:
    (check,) = [c for c in checks if c.name == name and c.op == op]
    return check


@dataclass(frozen=True)
class Cmp:
    """A baseline comparison row, shaped as harness.results.baseline.Comparison."""

    op: str = "overall"
    metric: str = "p99_ms"
    baseline: float | None = 10.0
    current: float | None = 15.0
    ratio: float | None = 1.5
    p_value: float | None = 0.001
    regression: bool = True
    unit: str = "ms"
    detail: str = "p99 +50% (10 ms -> 15 ms), p = 0.001"


# -- SLO and integrity checks -------------------------------------------------------------------------


def test_a_clean_run_without_goals_passes_the_run_checks() -> None:
    checks = evaluate_slos(summary())
    assert [(c.op, c.name, c.passed) for c in checks] == [
        ("run", "books_balanced", True), ("run", "verify", True), ("run", "not_empty", True),
        ("run", "complete", True), ("run", "generator_kept_up", True)]
    assert passed(checks, [])


def test_the_integrity_checks_are_books_verify_not_empty_and_the_generator() -> None:
    assert INTEGRITY == ("books_balanced", "verify", "not_empty", "generator_kept_up")
    checks = evaluate_slos(summary())
    assert [c.name for c in checks if c.integrity] == list(INTEGRITY)


def test_a_latency_goal_met_passes_with_the_share_of_the_goal_left_as_margin() -> None:
    check = find(evaluate_slos(summary(block(p99=80_000), slo={"p99_ms": 100})), "p99_ms")
    assert (check.goal, check.measured, check.unit, check.passed) == (100.0, 80.0, "ms", True)
    assert check.margin == pytest.approx(0.2)


def test_a_latency_goal_missed_fails_with_a_negative_margin() -> None:
    checks = evaluate_slos(summary(block(p99=120_000), slo={"p99_ms": 100}))
    check = find(checks, "p99_ms")
    assert (check.measured, check.passed) == (120.0, False)
    assert check.margin == pytest.approx(-0.2)
    assert not passed(checks, [])


def test_a_latency_exactly_at_its_goal_passes() -> None:
    check = find(evaluate_slos(summary(block(p50=25_000), slo={"p50_ms": 25})), "p50_ms")
    assert check.passed and check.margin == 0.0


@pytest.mark.parametrize(("goal", "measured_ms"), [("p50_ms", 11.0), ("p90_ms", 22.0), ("p95_ms", 27.0),
                                                   ("p99_ms", 30.0), ("p999_ms", 33.0), ("max_ms", 44.0)])
def test_each_latency_goal_reads_its_own_percentile(goal: str, measured_ms: float) -> None:
    b = block(p50=11_000, p90=22_000, p95=27_000, p99=30_000, p99_9=33_000, max_us=44_000)
    assert find(evaluate_slos(summary(b, slo={goal: 1000})), goal).measured == measured_ms


def test_a_latency_goal_without_samples_fails_and_says_so() -> None:
    check = find(evaluate_slos(summary(block(count=0), slo={"p99_ms": 100})), "p99_ms")
    assert (check.passed, check.measured, check.detail) == (False, None, "no samples")


def test_error_rate_goal_passes_below_and_fails_above() -> None:
    ok = find(evaluate_slos(summary(block(error_rate=0.005), slo={"max_error_rate": 0.01})), "max_error_rate")
    bad = find(evaluate_slos(summary(block(error_rate=0.02), slo={"max_error_rate": 0.01})), "max_error_rate")
    assert (ok.passed, ok.unit, ok.margin) == (True, "ratio", pytest.approx(0.5))
    assert (bad.passed, bad.margin) == (False, pytest.approx(-1.0))


def test_min_rate_ratio_compares_achieved_with_target() -> None:
    ok = find(evaluate_slos(summary(block(achieved_rate=199.0), slo={"min_rate_ratio": 0.99})), "min_rate_ratio")
    low = find(evaluate_slos(summary(block(achieved_rate=190.0), slo={"min_rate_ratio": 0.99})), "min_rate_ratio")
    assert (ok.measured, ok.passed) == (0.995, True)
    assert (low.measured, low.passed) == (0.95, False)
    assert low.margin == pytest.approx((0.95 - 0.99) / 0.99)


def test_min_rate_ratio_with_nothing_scheduled_fails() -> None:
    check = find(evaluate_slos(summary(block(target_rate=0.0), slo={"min_rate_ratio": 0.9})), "min_rate_ratio")
    assert (check.passed, check.detail) == (False, "nothing scheduled")


def test_per_op_goals_are_checked_on_that_op() -> None:
    ops = {"read": block(p99=10_000), "write": block(p99=300_000)}
    checks = evaluate_slos(summary(block(p99=300_000), ops=ops,
                                   slo={"ops": {"read": {"p99_ms": 50}, "write": {"p99_ms": 250}}}))
    assert find(checks, "p99_ms", "read").passed
    assert not find(checks, "p99_ms", "write").passed
    assert [c.op for c in checks if c.name == "p99_ms"] == ["read", "write"], "no overall check without an overall goal"


def test_a_goal_for_an_op_that_did_not_run_fails() -> None:
    check = find(evaluate_slos(summary(slo={"ops": {"missing": {"p99_ms": 5}}})), "present", "missing")
    assert not check.passed and "missing" in check.detail


def test_the_generator_settings_of_the_slo_table_are_not_goals() -> None:
    checks = evaluate_slos(summary(slo={"max_schedule_lag_ms": 50.0, "check_generator": True}))
    assert [c.op for c in checks] == ["run"] * 5


def test_an_explicit_slo_replaces_the_one_in_the_summary() -> None:
    checks = evaluate_slos(summary(block(p99=80_000), slo={"p99_ms": 50}), slo={"p99_ms": 100})
    assert find(checks, "p99_ms").passed


def test_unbalanced_books_fail_the_run_even_when_every_goal_is_met() -> None:
    checks = evaluate_slos(summary(slo={"p99_ms": 1000}, books_balanced=False))
    assert not find(checks, "books_balanced", "run").passed
    assert find(checks, "p99_ms").passed
    assert exit_code(checks) == UNTRUSTED


def test_verify_problems_fail_the_run_and_are_counted_and_quoted() -> None:
    check = find(evaluate_slos(summary(problems=["lost 3 events", "balance mismatch on A1"])), "verify", "run")
    assert (check.passed, check.measured) == (False, 2.0)
    assert check.detail == "lost 3 events; balance mismatch on A1"


def test_verify_quotes_at_most_five_problems() -> None:
    check = find(evaluate_slos(summary(problems=[f"p{i}" for i in range(8)])), "verify", "run")
    assert (check.measured, check.detail) == (8.0, "p0; p1; p2; p3; p4")


def test_an_empty_run_fails_not_empty() -> None:
    check = find(evaluate_slos(summary(empty=True)), "not_empty", "run")
    assert (check.passed, check.detail) == (False, "no op was scheduled in the measured window")


def test_an_interrupted_run_fails_the_complete_check() -> None:
    check = find(evaluate_slos(summary(interrupted=True)), "complete", "run")
    assert (check.passed, check.integrity, check.detail) == (False, False, "interrupted runs are partial")


def test_a_generator_that_fell_behind_fails_and_says_by_how_much() -> None:
    check = find(evaluate_slos(summary(gen=generator(kept_up=False, lag_ms=184.0))), "generator_kept_up", "run")
    assert (check.passed, check.goal, check.measured, check.unit) == (False, 50.0, 184.0, "ms")
    assert "fell behind" in check.detail and "184.0 ms > 50.0 ms" in check.detail
    assert "2 seconds behind" in check.detail


def test_a_spec_that_opts_out_has_no_generator_check() -> None:
    checks = evaluate_slos(summary(gen=generator(kept_up=False, checked=False)))
    assert "generator_kept_up" not in [c.name for c in checks]
    assert exit_code(checks) == PASS


def test_a_summary_without_a_generator_verdict_has_no_generator_check() -> None:
    data = summary()
    del data["generator"]
    assert "generator_kept_up" not in [c.name for c in evaluate_slos(data)]


# -- exit codes ---------------------------------------------------------------------------------------


def test_the_exit_codes_are_the_documented_ones() -> None:
    assert (PASS, SLO_BREACH, USAGE, REGRESSION, UNTRUSTED, INTERRUPTED) == (0, 1, 2, 3, 4, 130)


def test_a_run_meeting_its_goals_exits_0() -> None:
    assert exit_code(evaluate_slos(summary(slo={"p99_ms": 100})), []) == PASS


def test_a_missed_goal_exits_1() -> None:
    assert exit_code(evaluate_slos(summary(block(p99=120_000), slo={"p99_ms": 100}))) == SLO_BREACH


def test_a_regression_exits_3() -> None:
    assert exit_code(evaluate_slos(summary()), [Cmp()]) == REGRESSION


def test_comparisons_without_a_regression_pass() -> None:
    assert exit_code(evaluate_slos(summary()), [Cmp(regression=False)]) == PASS


@pytest.mark.parametrize("broken", [{"books_balanced": False}, {"problems": ["lost 1"]}, {"empty": True},
                                    {"gen": generator(kept_up=False)}],
                         ids=["books", "verify", "not_empty", "generator_kept_up"])
def test_an_untrusted_run_exits_4(broken: dict[str, Any]) -> None:
    assert exit_code(evaluate_slos(summary(**broken))) == UNTRUSTED


def test_an_interrupted_run_exits_130() -> None:
    assert exit_code(evaluate_slos(summary(interrupted=True))) == INTERRUPTED


def test_untrusted_comes_before_interrupted() -> None:
    assert exit_code(evaluate_slos(summary(interrupted=True, books_balanced=False))) == UNTRUSTED


def test_interrupted_comes_before_a_missed_goal() -> None:
    checks = evaluate_slos(summary(block(p99=120_000), slo={"p99_ms": 100}, interrupted=True))
    assert exit_code(checks, [Cmp()]) == INTERRUPTED


def test_untrusted_comes_before_a_missed_goal() -> None:
    checks = evaluate_slos(summary(block(p99=120_000), slo={"p99_ms": 100}, problems=["lost 1"]))
    assert exit_code(checks) == UNTRUSTED


def test_a_missed_goal_comes_before_a_regression() -> None:
    checks = evaluate_slos(summary(block(p99=120_000), slo={"p99_ms": 100}))
    assert exit_code(checks, [Cmp()]) == SLO_BREACH


def test_passed_means_exit_code_0() -> None:
    assert passed(evaluate_slos(summary()), [])
    assert not passed(evaluate_slos(summary()), [Cmp()])


# -- the verdict as JSON ------------------------------------------------------------------------------


def test_verdict_json_has_the_exit_code_and_every_check() -> None:
    checks = evaluate_slos(summary(block(p99=120_000), slo={"p99_ms": 100}))
    verdict = verdict_json(checks)
    assert (verdict["exit_code"], verdict["passed"], verdict["baseline"]) == (1, False, [])
    assert len(verdict["checks"]) == len(checks)
    assert verdict["checks"][-1] == {"op": "overall", "check": "p99_ms", "goal": 100.0, "measured": 120.0,
                                     "unit": "ms", "passed": False, "margin": pytest.approx(-0.2), "detail": ""}


def test_verdict_json_lists_the_baseline_comparisons_and_is_json() -> None:
    verdict = verdict_json(evaluate_slos(summary()), [Cmp()])
    assert verdict["exit_code"] == REGRESSION
    assert verdict["baseline"] == [{"op": "overall", "metric": "p99_ms", "baseline": 10.0, "current": 15.0,
                                    "ratio": 1.5, "p_value": 0.001, "regression": True, "unit": "ms",
                                    "detail": "p99 +50% (10 ms -> 15 ms), p = 0.001"}]
    assert orjson.loads(orjson.dumps(verdict)) == verdict


# -- a quick comparison of two summaries ----------------------------------------------------------------


def regressions(current: dict[str, Any], base: dict[str, Any], op: str = "overall", **kw: Any) -> set[str]:
    return {d.metric for d in compare_summaries(current, base, **kw) if d.regression and d.op == op}


def test_a_p99_regression_beyond_tolerance_is_flagged() -> None:
    deltas = compare_summaries(summary(block(p99=115_000)), summary(block(p99=100_000)), tolerance=0.10)
    assert {d.metric for d in deltas if d.regression and d.op == "overall"} == {"p99_ms"}
    (d,) = [d for d in deltas if d.op == "overall" and d.metric == "p99_ms"]
    assert (d.baseline, d.current, d.unit) == (100.0, 115.0, "ms")
    assert d.ratio == pytest.approx(1.15)


def test_a_p99_change_within_tolerance_is_not_a_regression() -> None:
    assert regressions(summary(block(p99=105_000)), summary(block(p99=100_000)), tolerance=0.10) == set()


def test_a_change_of_exactly_the_tolerance_is_not_a_regression() -> None:
    assert "p99_ms" not in regressions(summary(block(p99=110_000)), summary(block(p99=100_000)), tolerance=0.10)


def test_faster_is_never_a_regression() -> None:
    fast = summary(block(p50=1_000, p99=2_000, p99_9=3_000, max_us=4_000))
    assert regressions(fast, summary()) == set()


def test_the_tolerance_decides() -> None:
    current, base = summary(block(p99=115_000)), summary(block(p99=100_000))
    assert "p99_ms" in regressions(current, base, tolerance=0.10)
    assert "p99_ms" not in regressions(current, base, tolerance=0.20)


def test_an_achieved_rate_drop_beyond_tolerance_is_a_regression() -> None:
    deltas = compare_summaries(summary(block(achieved_rate=170.0)), summary(block(achieved_rate=200.0)))
    (d,) = [d for d in deltas if d.op == "overall" and d.metric == "achieved_rate"]
    assert (d.baseline, d.current, d.unit, d.ratio, d.regression) == (200.0, 170.0, "ops/s", 0.85, True)


def test_a_small_rate_drop_or_a_rate_gain_is_not_a_regression() -> None:
    assert regressions(summary(block(achieved_rate=185.0)), summary()) == set()
    assert regressions(summary(block(achieved_rate=400.0)), summary()) == set()


def test_error_rate_from_zero_is_compared_absolutely() -> None:
    assert regressions(summary(block(error_rate=0.0005)), summary()) == set()
    assert regressions(summary(block(error_rate=0.002)), summary()) == {"error_rate"}


def test_every_op_present_in_both_runs_is_compared() -> None:
    current = summary(ops={"read": block(p99=300_000), "only_now": block()})
    base = summary(ops={"read": block(p99=100_000), "only_before": block()})
    deltas = compare_summaries(current, base)
    assert {d.op for d in deltas} == {"overall", "read"}
    assert regressions(current, base, "read") == {"p99_ms"}
    assert {d.metric for d in deltas if d.op == "read"} == {
        "p50_ms", "p99_ms", "p99_9_ms", "max_ms", "achieved_rate", "error_rate"}


# -- loading a run ------------------------------------------------------------------------------------


def run_dir(root: Path, name: str, data: dict[str, Any], started_at: str | None = None) -> Path:
    path = root / name
    path.mkdir()
    (path / "summary.json").write_bytes(orjson.dumps(data))
    if started_at is not None:
        (path / "run.json").write_bytes(orjson.dumps({"name": data["name"], "started_at": started_at}))
    return path


def test_load_summary_reads_a_run_directory_or_a_summary_path(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary())
    assert load_summary(path)["name"] == load_summary(path / "summary.json")["name"] == "demo"


def test_load_summary_of_a_directory_without_one_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no summary\.json"):
        load_summary(tmp_path)


# -- JUnit XML ----------------------------------------------------------------------------------------


def junit_checks(tmp_path: Path, checks: list[Check], duration_s: float = 12.5) -> ET.Element:
    out = tmp_path / "gate.xml"
    write_checks(out, "demo", checks, duration_s)
    return ET.parse(out).getroot()


def test_junit_has_one_testcase_per_check_and_counts_failures(tmp_path: Path) -> None:
    checks = evaluate_slos(summary(block(p99=120_000), slo={"p99_ms": 100, "p50_ms": 25}, problems=["lost 1"]))
    root = junit_checks(tmp_path, checks)
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests")) == int(root.get("tests")) == len(checks) == 7
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(suite.get("failures")) == int(root.get("failures")) == len(failed) == 2
    assert {(c.get("classname"), c.get("name")) for c in failed} == {
        ("edabench.demo.run", "verify"), ("edabench.demo.overall", "p99_ms")}
    assert (suite.get("errors"), suite.get("skipped")) == ("0", "0")


def test_junit_names_the_suite_after_the_run_and_stamps_it(tmp_path: Path) -> None:
    suite = junit_checks(tmp_path, evaluate_slos(summary()), duration_s=12.5).find("testsuite")
    assert suite is not None
    assert suite.get("name") == "edabench.demo"
    assert suite.get("time") == "12.500"
    assert datetime.strptime(suite.get("timestamp", ""), "%Y-%m-%dT%H:%M:%S")


def test_a_missed_goal_is_a_failure_of_type_slo_with_its_units(tmp_path: Path) -> None:
    root = junit_checks(tmp_path, evaluate_slos(summary(block(p99=120_000), slo={"p99_ms": 100})))
    failure = root.find("testsuite/testcase[@name='p99_ms']/failure")
    assert failure is not None
    assert failure.get("type") == "slo"
    assert failure.get("message") == "p99_ms: goal 100 ms, measured 120 ms"
    assert failure.text == failure.get("message")


def test_a_ratio_goal_says_ratio_in_its_message(tmp_path: Path) -> None:
    root = junit_checks(tmp_path, evaluate_slos(summary(block(error_rate=0.02), slo={"max_error_rate": 0.01})))
    failure = root.find("testsuite/testcase[@name='max_error_rate']/failure")
    assert failure is not None
    assert failure.get("message") == "max_error_rate: goal 0.01 ratio, measured 0.02 ratio"


def test_a_goal_without_samples_shows_n_a(tmp_path: Path) -> None:
    root = junit_checks(tmp_path, evaluate_slos(summary(block(count=0), slo={"p99_ms": 100})))
    failure = root.find("testsuite/testcase[@name='p99_ms']/failure")
    assert failure is not None
    assert failure.get("message") == "p99_ms: goal 100 ms, measured n/a"
    assert failure.text == "no samples"


def test_an_integrity_failure_is_of_type_integrity_with_its_detail(tmp_path: Path) -> None:
    root = junit_checks(tmp_path, evaluate_slos(summary(problems=["lost 3 events"])))
    failure = root.find("testsuite/testcase[@name='verify']/failure")
    assert failure is not None
    assert (failure.get("type"), failure.text) == ("integrity", "lost 3 events")
    assert failure.get("message") == "verify: goal n/a, measured 1 problems"


def test_an_interrupted_run_is_a_failure_of_type_interrupted(tmp_path: Path) -> None:
    root = junit_checks(tmp_path, evaluate_slos(summary(interrupted=True)))
    failure = root.find("testsuite/testcase[@name='complete']/failure")
    assert failure is not None
    assert (failure.get("type"), failure.text) == ("interrupted", "interrupted runs are partial")


def test_junit_of_a_passing_run_has_no_failures(tmp_path: Path) -> None:
    root = junit_checks(tmp_path, evaluate_slos(summary(slo={"p99_ms": 100})))
    assert (root.get("tests"), root.get("failures")) == ("6", "0")
    assert root.find("testsuite/testcase/failure") is None


def test_baseline_junit_has_one_testcase_per_comparison_and_fails_regressions(tmp_path: Path) -> None:
    out = tmp_path / "gate-baseline.xml"
    write_baseline(out, "demo", [Cmp(), Cmp(op="echo", metric="p50_ms", regression=False)])
    root = ET.parse(out).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("edabench.demo.baseline", "2", "1")
    assert [(c.get("classname"), c.get("name")) for c in suite.findall("testcase")] == [
        ("edabench.demo.baseline.overall", "p99_ms"), ("edabench.demo.baseline.echo", "p50_ms")]
    failure = suite.find("testcase[@name='p99_ms']/failure")
    assert failure is not None
    assert failure.get("type") == "regression"
    assert failure.get("message") == "p99_ms: baseline 10 ms, current 15 ms, x1.500"
    assert failure.text == "p99 +50% (10 ms -> 15 ms), p = 0.001"


def test_a_rate_regression_message_says_ops_per_second(tmp_path: Path) -> None:
    out = tmp_path / "gate-baseline.xml"
    write_baseline(out, "demo", [Cmp(metric="achieved_rate", baseline=200.0, current=170.0, ratio=0.85,
                                     unit="ops/s", detail="")])
    failure = ET.parse(out).getroot().find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "achieved_rate: baseline 200 ops/s, current 170 ops/s, x0.850"
    assert failure.text == failure.get("message"), "without a detail, the message is the text"


# -- `edabench gate` ----------------------------------------------------------------------------------


def gate(*args: str | Path) -> Any:
    return CliRunner().invoke(app, ["gate", *map(str, args)])


def test_gate_exits_0_when_every_goal_is_met_and_writes_junit(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary(slo={"p99_ms": 100}))
    result = gate(path)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    assert ET.parse(path / "gate.xml").getroot().get("failures") == "0"


def test_gate_exits_1_when_a_goal_is_missed(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary(block(p99=150_000), slo={"p99_ms": 100}))
    result = gate(path)
    assert result.exit_code == 1
    assert "FAIL" in result.output
    assert ET.parse(path / "gate.xml").getroot().get("failures") == "1"


def test_gate_exits_4_when_the_books_do_not_balance(tmp_path: Path) -> None:
    assert gate(run_dir(tmp_path, "run", summary(books_balanced=False))).exit_code == 4


def test_gate_exits_4_and_says_so_when_the_generator_fell_behind(tmp_path: Path) -> None:
    result = gate(run_dir(tmp_path, "run", summary(gen=generator(kept_up=False, lag_ms=184.0))))
    assert result.exit_code == 4
    assert "fell behind" in " ".join(result.output.split())


def test_gate_exits_130_for_an_interrupted_run(tmp_path: Path) -> None:
    assert gate(run_dir(tmp_path, "run", summary(interrupted=True))).exit_code == 130


def test_gate_exits_2_with_a_message_when_there_is_no_summary(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = gate(empty)
    assert result.exit_code == 2
    assert "no summary.json" in result.output


def test_gate_accepts_a_summary_path_and_writes_junit_beside_it(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary(slo={"p99_ms": 100}))
    result = gate(path / "summary.json")
    assert result.exit_code == 0, result.output
    assert ET.parse(path / "gate.xml").getroot().get("failures") == "0"


def test_gate_writes_junit_where_asked(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary(block(p99=150_000), slo={"p99_ms": 100}))
    out = tmp_path / "ci" / "slo.xml"
    out.parent.mkdir()
    assert gate(path, "--junit", out).exit_code == 1
    assert ET.parse(out).getroot().get("failures") == "1"
    assert not (path / "gate.xml").exists()


def test_gate_json_prints_the_verdict(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary(block(p99=150_000), slo={"p99_ms": 100}))
    result = gate(path, "--json")
    assert result.exit_code == 1
    verdict = orjson.loads(result.stdout)
    assert (verdict["run_dir"], verdict["exit_code"], verdict["passed"]) == (str(path), 1, False)
    assert [c["check"] for c in verdict["checks"] if not c["passed"]] == ["p99_ms"]


def test_gate_given_several_runs_checks_the_newest_and_says_so(tmp_path: Path) -> None:
    old = run_dir(tmp_path, "a", summary(name="old"), started_at="2026-12-01T10:00:00.000000Z")
    new = run_dir(tmp_path, "b", summary(block(p99=150_000), slo={"p99_ms": 100}, name="new"),
                  started_at="2026-12-01T11:00:00.000000Z")
    result = gate(new, old)
    assert result.exit_code == 1, "the newest run (by start time, not by argument order) missed its goal"
    assert "checking the newest" in result.output
    assert (new / "gate.xml").exists() and not (old / "gate.xml").exists()


def test_gate_with_a_baseline_exits_3_on_a_regression_and_writes_its_own_junit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baselines, "compare", lambda current, bases, force=False: [Cmp()])
    base = run_dir(tmp_path, "base", summary())
    current = run_dir(tmp_path, "current", summary(slo={"p99_ms": 100}))
    result = gate(current, "--baseline", base)
    assert result.exit_code == 3
    assert "REGRESSION" in result.output
    assert ET.parse(current / "gate-baseline.xml").getroot().get("failures") == "1"
    assert ET.parse(current / "gate.xml").getroot().get("failures") == "0", "gate.xml keeps the run's own checks"


def test_gate_passes_every_baseline_but_the_run_itself_to_the_comparison(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def compare(current: Path, bases: list[Path], force: bool = False) -> list[Any]:
        seen.update(current=current, bases=bases, force=force)
        return [Cmp(regression=False)]

    monkeypatch.setattr(baselines, "compare", compare)
    a, b = run_dir(tmp_path, "a", summary()), run_dir(tmp_path, "b", summary())
    current = run_dir(tmp_path, "current", summary())
    result = gate(current, "--baseline", a, "--baseline", b, "--baseline", current, "--force")
    assert result.exit_code == 0, result.output
    assert seen == {"current": current, "bases": [a, b], "force": True}


def test_gate_refuses_runs_that_cannot_be_compared_with_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def compare(current: Path, bases: list[Path], force: bool = False) -> list[Any]:
        raise baselines.Incomparable("target differs: baseline 'bank', current 'cart'")

    monkeypatch.setattr(baselines, "compare", compare)
    result = gate(run_dir(tmp_path, "current", summary()), "--baseline", run_dir(tmp_path, "base", summary()))
    assert result.exit_code == 2
    assert "target differs" in result.output and "--force" in result.output


def test_gate_exits_2_when_the_baseline_is_not_a_run(tmp_path: Path) -> None:
    current = run_dir(tmp_path, "current", summary(), started_at="2026-12-01T10:00:00.000000Z")
    missing = tmp_path / "missing"
    missing.mkdir()
    assert gate(current, "--baseline", missing).exit_code == 2
