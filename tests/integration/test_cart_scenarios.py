"""The cart scenario files through the real runner (`edabench run`): the books balance, the
state verifies, and the run finishes. Latency goals are gated by the runs themselves, not here
(unit and integration tests never assert on elapsed time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_scenario(spec: str, runs: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "harness.cli", "run", str(ROOT / "workloads" / spec), "--runs-dir", str(runs)]
    proc = subprocess.run(
        [*cmd, "--no-report", "--no-gate", *extra], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = runs.iterdir()
    return json.loads((run_dir / "summary.json").read_text())


def test_smoke_scenario_runs_clean(tmp_path: Path) -> None:
    summary = run_scenario("cart-smoke.toml", tmp_path, "--duration", "5", "--warmup", "1")
    assert summary["books_balanced"]
    assert summary["verify"]["problems"] == []
    counts = summary["overall"]["counts"]
    assert counts["error"] == 0 and counts["timeout"] == 0 and counts["ok"] > 500


@pytest.mark.slow
def test_races_scenario_stays_consistent(tmp_path: Path) -> None:
    summary = run_scenario("cart-races.toml", tmp_path, "--duration", "10")
    assert summary["verify"]["problems"] == []
    errors = summary["overall"]["counts"]["errors"]
    assert set(errors) <= {"http_409", "http_404"} and errors.get("http_409", 0) > 0


@pytest.mark.slow
def test_async_scenario_reports_read_your_writes_lag(tmp_path: Path) -> None:
    summary = run_scenario("cart-async.toml", tmp_path, "--duration", "10")
    assert summary["verify"]["problems"] == []
    assert summary["observed_us"]["read_your_writes_lag"]["count"] > 10
    assert summary["observed_us"]["projection_lag"]["count"] > 10
