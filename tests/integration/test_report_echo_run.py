"""A real run through the CLI (echo target over HTTP): the report agrees with the run and the gate.

`edabench run` writes the run directory, the report and the gate's JUnit XML; `edabench gate
--baseline` and `edabench report A B` must then name the same regressions.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from report_fixtures import regressions_on_page, table_rows

from reports.loader import load_run

SPEC = """
name = "echo-report"
target = "echo"
duration_s = {duration}
warmup_s = 1.5  # not a whole second: one interval straddles the end of warm-up
timeout_s = 5
processes = 1

[rate]
rate = 200

[[ops]]
name = "echo"

[target_options]
transport = "http"
base_ms = {base_ms}
stall_every_s = 2
stall_for_s = 0.5

[slo]
p50_ms = 100
p99_ms = 100
# about report/gate agreement: whether this loaded machine let the generator keep up is another test's
check_generator = false
"""


def _edabench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def _run(tmp_path: Path, name: str, base_ms: int) -> Path:
    spec = tmp_path / f"{name}.toml"
    spec.write_text(SPEC.format(duration=8, base_ms=base_ms))  # enough seconds for the baseline test
    before = set((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else set()
    result = _edabench("run", str(spec), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: an SLO failed, as planned
    (run_dir,) = set((tmp_path / "runs").glob("*")) - before
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("echo")
    return _run(root, "fast", 10), _run(root, "slow", 40)


def test_run_ends_with_its_report_and_summary(runs: tuple[Path, Path]) -> None:
    for run in runs:
        assert (run / "report.html").is_file()
        assert (run / "summary.md").is_file()


def test_spectrum_histogram_equals_the_runs_summary(runs: tuple[Path, Path]) -> None:
    data = load_run(runs[0])
    rt = data.summary["ops"]["echo"]["response_time_us"]
    merged = data.logs["echo"].response.merged
    assert merged.total == rt["count"]
    assert list(merged.values_at([50, 90, 99, 99.9])) == [rt["p50"], rt["p90"], rt["p99"], rt["p99_9"]]


def test_report_fails_exactly_what_the_gate_failed(runs: tuple[Path, Path]) -> None:
    run = runs[0]
    junit = ET.parse(run / "gate.xml").getroot()
    gate_failed = {(c.get("classname").rsplit(".", 1)[1], c.get("name"))
                   for c in junit.iter("testcase") if c.find("failure") is not None}
    page = (run / "report.html").read_text()
    report_failed = {(r[0]["data-op"], r[0]["data-goal"]) for r in table_rows(page, "slo")
                     if r[0].get("class") == "fail"}
    assert report_failed == gate_failed == {("overall", "p99_ms")}


def test_report_and_gate_agree_on_regressions(runs: tuple[Path, Path], tmp_path: Path) -> None:
    fast, slow = runs
    gate = _edabench("gate", str(slow), "--baseline", str(fast), "--junit", str(tmp_path / "g.xml"), cwd=tmp_path)
    junit = ET.parse(slow / "gate-baseline.xml").getroot()
    gate_regressed = {(c.get("classname").rsplit(".", 1)[1], c.get("name"))
                      for c in junit.iter("testcase") if c.find("failure") is not None}
    report = _edabench("report", str(fast), str(slow), "-o", str(tmp_path / "cmp.html"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    report_regressed = regressions_on_page((tmp_path / "cmp.html").read_text())
    assert gate.returncode == 1, gate.stdout  # the SLO breach outranks the regression (exit 3)
    assert ("overall", "p50_ms") in gate_regressed
    assert report_regressed == gate_regressed
    assert "REGRESSION" in report.stdout, "the comparison's verdicts are printed in the terminal too"
