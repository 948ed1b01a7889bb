"""The gate: SLO checks on one run, regressions against a baseline, JUnit XML and `edabench gate`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.gate import Check, compare_runs, evaluate_slos, load_run, passed, write_junit


def block(p50: int = 20_000, p99: int = 80_000, p99_9: int = 95_000, max_us: int = 100_000,
          target_rate: float = 200.0, achieved_rate: float = 200.0, error_rate: float = 0.0,
          count: int = 1000) -> dict[str, Any]:
    """One op block of summary.json (latencies in µs)."""
    rt = {"count": count, "min": 1_000, "mean": p50, "p50": p50, "p90": p50, "p95": p99, "p99": p99,
          "p99_9": p99_9, "p99_99": max_us, "max": max_us} if count else {"count": 0}
    return {"counts": {"scheduled": 1000, "ok": 1000, "error": 0, "timeout": 0, "not_sent": 0},
            "target_rate": target_rate, "achieved_rate": achieved_rate, "error_rate": error_rate,
            "response_time_us": rt, "service_time_us": rt}


def summary(overall: dict[str, Any] | None = None, ops: dict[str, dict[str, Any]] | None = None,
            slo: dict[str, Any] | None = None, books_balanced: bool = True, problems: list[str] | None = None,
            interrupted: bool = False) -> dict[str, Any]:
    overall = overall or block()
    return {"schema": "edabench.summary/1", "name": "demo", "interrupted": interrupted,
            "books_balanced": books_balanced, "ops": ops if ops is not None else {"echo": overall},
            "overall": overall, "verify": {"problems": problems or []}, "slo": slo or {}}


def find(checks: list[Check], name: str, op: str = "overall") -> Check:
    (check,) = [c for c in checks if c.name == name and c.op == op]
    return check


def regressions(deltas: list[Any], op: str = "overall") -> set[str]:
    return {d.metric for d in deltas if d.regression and d.op == op}


# -- SLO checks ------------------------------------------------------------------------------------


def test_a_clean_run_without_goals_passes_the_three_run_checks() -> None:
    checks = evaluate_slos(summary())
    assert [(c.op, c.name, c.passed) for c in checks] == [
        ("run", "books_balanced", True), ("run", "verify", True), ("run", "complete", True)]
    assert passed(checks, [])


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


@pytest.mark.parametrize(("goal", "key"), [("p50_ms", "p50"), ("p999_ms", "p99_9"), ("max_ms", "max")])
def test_each_latency_goal_reads_its_own_percentile(goal: str, key: str) -> None:
    values = {"p50": 11_000, "p99_9": 33_000, "max": 44_000}
    check = find(evaluate_slos(summary(block(p50=11_000, p99_9=33_000, max_us=44_000), slo={goal: 1000})), goal)
    assert check.measured == values[key] / 1000


def test_a_latency_goal_without_samples_fails_and_says_so() -> None:
    check = find(evaluate_slos(summary(block(count=0), slo={"p99_ms": 100})), "p99_ms")
    assert (check.passed, check.measured, check.detail) == (False, None, "no samples")


def test_error_rate_goal_passes_below_and_fails_above() -> None:
    ok = find(evaluate_slos(summary(block(error_rate=0.005), slo={"max_error_rate": 0.01})), "max_error_rate")
    bad = find(evaluate_slos(summary(block(error_rate=0.02), slo={"max_error_rate": 0.01})), "max_error_rate")
    assert (ok.passed, ok.margin) == (True, pytest.approx(0.5))
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
    checks = evaluate_slos(summary(slo={"ops": {"missing": {"p99_ms": 5}}}))
    check = find(checks, "present", "missing")
    assert not check.passed and "missing" in check.detail


def test_an_explicit_slo_replaces_the_one_in_the_summary() -> None:
    checks = evaluate_slos(summary(block(p99=80_000), slo={"p99_ms": 50}), slo={"p99_ms": 100})
    assert find(checks, "p99_ms").passed


def test_unbalanced_books_fail_the_run_even_when_every_goal_is_met() -> None:
    checks = evaluate_slos(summary(slo={"p99_ms": 1000}, books_balanced=False))
    assert not find(checks, "books_balanced", "run").passed
    assert find(checks, "p99_ms").passed
    assert not passed(checks, [])


def test_verify_problems_fail_the_run_and_are_counted_and_quoted() -> None:
    checks = evaluate_slos(summary(problems=["lost 3 events", "balance mismatch on A1"]))
    check = find(checks, "verify", "run")
    assert (check.passed, check.measured) == (False, 2.0)
    assert check.detail == "lost 3 events; balance mismatch on A1"
    assert not passed(checks, [])


def test_an_interrupted_run_fails_the_complete_check() -> None:
    checks = evaluate_slos(summary(interrupted=True))
    check = find(checks, "complete", "run")
    assert (check.passed, check.detail) == (False, "interrupted runs are partial")
    assert not passed(checks, [])


# -- comparison with a baseline --------------------------------------------------------------------


def test_a_p99_regression_beyond_tolerance_is_flagged() -> None:
    deltas = compare_runs(summary(block(p99=115_000)), summary(block(p99=100_000)), tolerance=0.10)
    assert regressions(deltas) == {"p99_ms"}
    (d,) = [d for d in deltas if d.op == "overall" and d.metric == "p99_ms"]
    assert (d.baseline, d.current, d.unit) == (100.0, 115.0, "ms")
    assert d.ratio == pytest.approx(1.15)
    assert not passed([], deltas)


def test_a_p99_change_within_tolerance_is_not_a_regression() -> None:
    deltas = compare_runs(summary(block(p99=105_000)), summary(block(p99=100_000)), tolerance=0.10)
    assert regressions(deltas) == set()
    assert passed([], deltas)


def test_a_change_of_exactly_the_tolerance_is_not_a_regression() -> None:
    deltas = compare_runs(summary(block(p99=110_000)), summary(block(p99=100_000)), tolerance=0.10)
    assert "p99_ms" not in regressions(deltas)


def test_faster_is_never_a_regression() -> None:
    deltas = compare_runs(summary(block(p50=1_000, p99=2_000, p99_9=3_000, max_us=4_000)), summary())
    assert regressions(deltas) == set()


def test_the_tolerance_decides() -> None:
    current, base = summary(block(p99=115_000)), summary(block(p99=100_000))
    assert "p99_ms" in regressions(compare_runs(current, base, tolerance=0.10))
    assert "p99_ms" not in regressions(compare_runs(current, base, tolerance=0.20))


def test_an_achieved_rate_drop_beyond_tolerance_is_a_regression() -> None:
    deltas = compare_runs(summary(block(achieved_rate=170.0)), summary(block(achieved_rate=200.0)))
    assert regressions(deltas) == {"achieved_rate"}
    (d,) = [d for d in deltas if d.op == "overall" and d.metric == "achieved_rate"]
    assert (d.baseline, d.current, d.unit, d.ratio) == (200.0, 170.0, "ops/s", 0.85)


def test_a_small_rate_drop_or_a_rate_gain_is_not_a_regression() -> None:
    assert regressions(compare_runs(summary(block(achieved_rate=185.0)), summary())) == set()
    assert regressions(compare_runs(summary(block(achieved_rate=400.0)), summary())) == set()


def test_error_rate_from_zero_is_compared_absolutely() -> None:
    assert regressions(compare_runs(summary(block(error_rate=0.0005)), summary())) == set()
    assert regressions(compare_runs(summary(block(error_rate=0.002)), summary())) == {"error_rate"}


def test_every_op_present_in_both_runs_is_compared() -> None:
    current = summary(ops={"read": block(p99=300_000), "only_now": block()})
    base = summary(ops={"read": block(p99=100_000), "only_before": block()})
    deltas = compare_runs(current, base)
    assert {d.op for d in deltas} == {"overall", "read"}
    assert regressions(deltas, "read") == {"p99_ms"}
    assert {d.metric for d in deltas if d.op == "read"} == {
        "p50_ms", "p99_ms", "p99_9_ms", "max_ms", "achieved_rate", "error_rate"}


# -- JUnit XML -------------------------------------------------------------------------------------


def test_junit_xml_has_one_testcase_per_check_and_delta_and_counts_failures(tmp_path: Path) -> None:
    current = summary(block(p99=120_000, achieved_rate=150.0), slo={"p99_ms": 100, "p50_ms": 25},
                      problems=["lost 1 event"])
    checks = evaluate_slos(current)
    deltas = compare_runs(current, summary())
    out = tmp_path / "gate.xml"
    write_junit(out, "demo", checks, deltas)
    root = ET.parse(out).getroot()
    assert root.tag == "testsuite" and root.get("name") == "edabench.demo"
    cases = root.findall("testcase")
    assert len(cases) == int(root.get("tests")) == len(checks) + len(deltas)
    failed = [c for c in cases if c.find("failure") is not None]
    # verify + p99_ms; p99 and achieved_rate regress on overall and on the op
    assert int(root.get("failures")) == len(failed) == 6
    assert {(c.get("classname"), c.get("name")) for c in failed} == {
        ("slo.run", "verify"), ("slo.overall", "p99_ms"),
        ("baseline.overall", "p99_ms"), ("baseline.overall", "achieved_rate"),
        ("baseline.echo", "p99_ms"), ("baseline.echo", "achieved_rate")}
    p99 = next(c for c in failed if c.get("classname") == "slo.overall")
    assert p99.find("failure").get("message") == "goal 100.0 ms, measured 120.0 ms"


def test_junit_xml_of_a_passing_run_has_no_failures(tmp_path: Path) -> None:
    out = tmp_path / "gate.xml"
    write_junit(out, "demo", evaluate_slos(summary(slo={"p99_ms": 100})), [])
    root = ET.parse(out).getroot()
    assert (root.get("tests"), root.get("failures")) == ("4", "0")
    assert root.find("testcase/failure") is None


# -- `edabench gate` -------------------------------------------------------------------------------


def run_dir(root: Path, name: str, data: dict[str, Any]) -> Path:
    path = root / name
    path.mkdir()
    (path / "summary.json").write_bytes(orjson.dumps(data))
    return path


def gate(*args: str | Path) -> Any:
    return CliRunner().invoke(app, ["gate", *map(str, args)])


def test_load_run_reads_a_run_directory_or_a_summary_path(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary())
    assert load_run(path)["name"] == load_run(path / "summary.json")["name"] == "demo"
    with pytest.raises(FileNotFoundError, match=r"no summary\.json"):
        load_run(tmp_path)


def test_gate_cli_exits_0_when_every_goal_is_met_and_writes_junit(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary(slo={"p99_ms": 100}))
    result = gate(path)
    assert result.exit_code == 0, result.output
    root = ET.parse(path / "gate.xml").getroot()
    assert root.get("failures") == "0"


def test_gate_cli_exits_1_when_a_goal_is_missed(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary(block(p99=150_000), slo={"p99_ms": 100}))
    result = gate(path)
    assert result.exit_code == 1
    assert "FAIL" in result.output
    assert ET.parse(path / "gate.xml").getroot().get("failures") == "1"


def test_gate_cli_exits_1_for_an_interrupted_run(tmp_path: Path) -> None:
    assert gate(run_dir(tmp_path, "run", summary(interrupted=True))).exit_code == 1


def test_gate_cli_exits_1_on_a_regression_against_the_baseline(tmp_path: Path) -> None:
    base = run_dir(tmp_path, "base", summary(block(p99=100_000)))
    current = run_dir(tmp_path, "current", summary(block(p99=150_000)))
    junit = tmp_path / "out.xml"
    result = gate(current, "--baseline", base, "--junit", junit)
    assert result.exit_code == 1
    assert "REGRESSION" in result.output
    assert ET.parse(junit).getroot().get("failures") == "2", "p99 of overall and of the op"
    assert not (current / "gate.xml").exists()


def test_gate_cli_exits_0_against_a_baseline_within_tolerance(tmp_path: Path) -> None:
    base = run_dir(tmp_path, "base", summary(block(p99=100_000)))
    current = run_dir(tmp_path, "current", summary(block(p99=105_000)))
    assert gate(current, "--baseline", base).exit_code == 0


def test_gate_cli_tolerance_option_widens_the_band(tmp_path: Path) -> None:
    base = run_dir(tmp_path, "base", summary(block(p99=100_000)))
    current = run_dir(tmp_path, "current", summary(block(p99=150_000)))
    assert gate(current, "--baseline", base, "--tolerance", "0.6").exit_code == 0


def test_gate_cli_exits_2_with_a_message_when_there_is_no_summary(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = gate(empty)
    assert result.exit_code == 2
    assert "no summary.json" in result.output


def test_gate_cli_exits_2_when_the_baseline_has_no_summary(tmp_path: Path) -> None:
    current = run_dir(tmp_path, "current", summary())
    missing = tmp_path / "missing"
    missing.mkdir()
    assert gate(current, "--baseline", missing).exit_code == 2


def test_gate_cli_accepts_a_summary_path_and_writes_junit_beside_it(tmp_path: Path) -> None:
    path = run_dir(tmp_path, "run", summary(slo={"p99_ms": 100}))
    result = gate(path / "summary.json")
    assert result.exit_code == 0, result.output
    assert ET.parse(path / "gate.xml").getroot().get("failures") == "0"
