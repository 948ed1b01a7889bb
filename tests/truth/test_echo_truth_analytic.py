"""Analytic truth (perf, `nox -s truth`): the reported percentiles match the echo model's closed form.

A loaded machine makes the echo service itself answer later than its model, so this comparison
runs where load is controlled; the default suite compares with the per-request truth instead
(test_echo_truth.py).

The echo service freezes 1 s every 5 s. At a constant arrival rate, 20% of requests arrive
during a freeze and wait a uniform 0..1 s on top of the base latency, so the response time
quantile q is `base` for q <= 0.8 and `base + (q - 0.8) / 0.2 * 1 s` above. A harness that
measured from the actual send (coordinated omission) would report a p99 near the base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.engine.runner import RunOptions, execute
from harness.loop import run
from harness.plan import make_plan
from harness.spec import parse_spec
from targets.echo.latency import LatencyModel

pytestmark = pytest.mark.slow

RATE = 200
MEASURE_S = 10  # two whole stall periods, so exactly 20% of the measured arrivals meet a stall
TOLERANCE = 0.05
HDR_BUCKET = 1.002  # one bucket at 3 significant digits


def _spec(transport: str, base_ms: float, processes: int) -> dict[str, Any]:
    return {
        "name": f"truth-{transport}-{processes}p",
        "target": "echo",
        "duration_s": MEASURE_S,
        "warmup_s": 1,
        "timeout_s": 5,
        "processes": processes,
        "rate": {"rate": RATE},
        "ops": [{"name": "echo"}],
        "target_options": {"transport": transport, "base_ms": base_ms, "stall_every_s": 5, "stall_for_s": 1},
    }


def _close(measured_ms: float, truth_ms: float) -> bool:
    return abs(measured_ms - truth_ms) <= truth_ms * TOLERANCE or (
        truth_ms / HDR_BUCKET <= measured_ms <= truth_ms * HDR_BUCKET
    )


def _run(tmp_path: Path, transport: str, base_ms: float, processes: int, services: dict[str, str | None]
         ) -> dict[str, Any]:
    spec = parse_spec(_spec(transport, base_ms, processes))
    # isolate: the generator in a process of its own, as `edabench run` does. Run inside the test runner's
    # process (a whole session's heap to collect, other tests' leftovers on its loop) the schedule lag p99
    # once reached 125 ms in CI.
    outcome = run(execute(make_plan(spec), RunOptions(runs_root=tmp_path, services=services, isolate=True)))
    assert outcome.ok, outcome.summary["verify"]
    return outcome.summary


def _assert_truth(summary: dict[str, Any], base_ms: float) -> None:
    model = LatencyModel(base_ms=base_ms, stall_every_s=5, stall_for_s=1)
    rt = summary["ops"]["echo"]["response_time_us"]
    expected = {
        "p50": model.truth_ms(0.50),
        "p99": model.truth_ms(0.99),
        "p99_9": model.truth_ms(0.999),
        "max": model.truth_ms(1.0),
    }
    report = {k: (rt[k] / 1000, v) for k, v in expected.items()}
    for key, (measured, truth) in report.items():
        assert _close(measured, truth), f"{key}: measured {measured:.1f} ms, truth {truth:.1f} ms ({report})"
    counts = summary["ops"]["echo"]["counts"]
    assert counts["scheduled"] == RATE * (MEASURE_S + 1)
    assert counts["ok"] == counts["scheduled"]


@pytest.mark.parametrize("processes", [1, 2])
def test_http_percentiles_match_the_truth_under_stalls(tmp_path: Path, processes: int) -> None:
    # what the model leaves out: the event loops' millisecond timers and a client and a server turn,
    # about 2 ms on a busy 2-core machine (measured p50 51.8 ms at a 50 ms base); a 100 ms base keeps
    # that well inside the 5% the truth allows
    summary = _run(tmp_path, "http", 100, processes, {})
    _assert_truth(summary, 100)


@pytest.mark.parametrize("processes", [1, 2])
def test_kafka_percentiles_match_the_truth_under_stalls(
    tmp_path: Path, embedded_kafka: str, processes: int
) -> None:
    # the broker round trip (two produce/fetch hops, a few ms on a busy 2-core machine) is not in the
    # model; a 400 ms base keeps it well inside the 5% the truth allows
    summary = _run(tmp_path, "kafka", 400, processes, {"kafka": embedded_kafka})
    _assert_truth(summary, 400)


def test_service_time_hides_the_stall_that_response_time_shows(tmp_path: Path) -> None:
    """Service time (from the actual send) is what a closed-loop tool would report: here both agree,
    because the open-loop scheduler kept sending during the stall; the response-time p99 is the truth."""
    summary = _run(tmp_path, "http", 50, 1, {})
    rt = summary["ops"]["echo"]["response_time_us"]
    lag = summary["schedule_lag_us"]
    assert rt["p99"] / 1000 > 900
    assert lag["p99"] < 50_000, "the scheduler must not wait for responses"
