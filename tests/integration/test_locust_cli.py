"""`edabench locust` as a user runs it: a locustfile, a workload TOML or a bare URL; the gate's exit
code; target options; Prometheus metrics of the master's merged view. Real processes throughout.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.locust_run import EDABENCH, echo_server, edabench, free_port, only_run, read, running

QUIET = ["-o", "stall_every_s=0"]  # the echo target without its stalls
# a loaded machine may slow the generator: these tests are about the front end, not its schedule
SLOW_MACHINE_OK = "[slo]\ncheck_generator = false\n"


def test_gate_fails_a_run_that_misses_its_slo(tmp_path: Path) -> None:
    """echo answers in 50 ms while the spec asks p50 <= 25 ms: complete results, then exit code 1."""
    spec = tmp_path / "slow-echo.toml"
    spec.write_text('name = "slow-echo"\ntarget = "echo"\nduration_s = 2\nwarmup_s = 1\n[rate]\nrate = 50\n'
                    '[[ops]]\nname = "echo"\n[target_options]\nbase_ms = 50\n'
                    f"{SLOW_MACHINE_OK}p50_ms = 25\n")
    runs = tmp_path / "runs"
    code, out = edabench(["locust", str(spec), "--workers", "0", "--runs-dir", str(runs), "--no-report"],
                         tmp_path / "out.log")
    assert code == 1, out
    run_dir = only_run(runs)
    summary = read(run_dir / "summary.json")
    assert summary["books_balanced"] and summary["ops"]["echo"]["response_time_us"]["p50"] > 25_000
    gate = (run_dir / "gate.xml").read_text()
    assert 'name="p50_ms"' in gate and "<failure" in gate
    run = read(run_dir / "run.json")
    assert run["front_end"] == "locust" and run["command"][:3] == ["edabench", "locust", str(spec)]
    assert run["ended_at"] and run["config"]["locust"]["workers"] == 0
    assert f"results: {run_dir}" in out.replace("\n", "")


def _passed_unless_behind(code: int, summary: dict[str, object]) -> bool:
    """Exit 0, or 4 only because a loaded machine slowed the generator (the summary says so)."""
    return code == 0 or (code == 4 and summary["books_balanced"] and not summary["generator"]["kept_up"])  # type: ignore[index]


def test_a_workload_toml_runs_as_edabench_run_would(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    code, out = edabench(["locust", "workloads/echo-http.toml", "--run-time", "2s", "--warmup", "1", "--rate", "50",
                          "--runs-dir", str(runs), "--no-report", *QUIET], tmp_path / "out.log")
    summary = read(only_run(runs) / "summary.json")
    assert _passed_unless_behind(code, summary), out
    counts = summary["ops"]["echo"]["counts"]
    assert counts["scheduled"] == counts["ok"] == 50 * 3 and summary["name"] == "echo-http"


def test_a_url_the_harness_did_not_launch_needs_no_target(tmp_path: Path) -> None:
    """`--host URL` alone drives the URL with the generic http target."""
    with echo_server(tmp_path / "echo.log", "--base-ms", "1") as url:
        runs = tmp_path / "runs"
        code, out = edabench(["locust", "--host", f"{url}/echo", "--rate", "40", "--run-time",
                              "2s", "--warmup", "0", "--workers", "0", "--runs-dir", str(runs), "--no-report"],
                             tmp_path / "out.log")
    run_dir = only_run(runs)
    summary, run = read(run_dir / "summary.json"), read(run_dir / "run.json")
    assert _passed_unless_behind(code, summary), out
    assert run["spec"]["target"] == "http" and run["spec"]["target_options"]["url"] == f"{url}/echo"
    assert summary["ops"]["op"]["counts"]["ok"] == 80


def test_metrics_port_serves_the_masters_merged_histograms(tmp_path: Path) -> None:
    port = free_port()
    args = ["locust", "echo", "--workers", "2", "--run-time", "4s", "--warmup", "0", "--metrics-port", str(port),
            "--runs-dir", str(tmp_path / "runs"), "--no-report", *QUIET]
    families: dict[str, object] = {}
    with running([EDABENCH, *args], tmp_path / "out.log") as proc:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
                continue
            families = {f.name: f for f in text_string_to_metric_families(text)}
            response = families.get("edabench_response_time_seconds")
            if response is not None and any(s.name.endswith("_count") and s.value > 0 for s in response.samples):
                break
            time.sleep(0.2)
        proc.wait(120)
    response = families["edabench_response_time_seconds"]
    assert response.type == "histogram"  # type: ignore[attr-defined]
    buckets = [s for s in response.samples if s.name.endswith("_bucket")]  # type: ignore[attr-defined]
    assert buckets and all(s.labels["kind"] == "echo" for s in buckets)
    assert {"edabench_ops", "edabench_schedule_lag_seconds", "edabench_target_rate"} <= set(families)
