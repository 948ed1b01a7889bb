"""`edabench locust` end to end as a command: run directory, report, gate and exit code.

The echo target answers in 50 ms without stalls while the locustfile's SLO asks p50 <= 30 ms, so the
gate must fail the run with exit code 1 and say so in gate.xml, after writing complete results.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

COMMAND = [sys.executable, "-c", "from harness.locust.cli import app; app()"]


def test_gate_fails_a_run_that_misses_its_slo(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = ["echo", "--headless", "--workers", "0", "--users", "2", "--run-time", "2s", "--warmup", "1",
            "--runs-dir", str(runs), "-o", "base_ms=50", "-o", "stall_every_s=0"]
    proc = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # only on a hang: the command and what it started, by its group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = out.decode()
    assert proc.returncode == 1, text
    (run_dir,) = runs.iterdir()
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    assert summary["books_balanced"] and summary["ops"]["echo"]["response_time_us"]["p50"] > 30_000
    gate = (run_dir / "gate.xml").read_text()
    assert 'name="p50_ms"' in gate and "<failure" in gate
    run = orjson.loads((run_dir / "run.json").read_bytes())
    assert run["command"][0] == "edabench" and "echo" in run["command"]
    assert run["ended_at"] and run["config"]["locust"]["workers"] == 0
    assert f"results: {run_dir}" in text.replace("\n", "")
