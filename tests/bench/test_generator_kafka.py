"""Smoke test of the Kafka send-rate benchmark: a tiny version runs end to end and yields its ratios.

Numbers are not asserted (they live in docs/benchmarks.md, measured by `python -m benchmarks.kafka_send_rate`);
only that the anchors and the generator's steps were measured and the ratios follow from them. Whether a
step passes depends on the machine's load, so neither outcome is required.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.kafka_send_rate import Config, bench, render
from harness.loop import run


def test_kafka_send_rate_benchmark_runs_and_computes_ratios(embedded_kafka: str, tmp_path: Path) -> None:
    result = run(bench(Config.tiny(), kafka=embedded_kafka, work=tmp_path, log=lambda _msg: None))
    (round0,) = result["rounds"]
    assert round0["librdkafka"]["rate"] > 0
    assert round0["librdkafka"]["cpu_us_per_record"] > 0
    assert round0["aiokafka"]["rate"] > 0
    assert set(round0["variants"]) == {"produce", "null"}
    for name, variant in round0["variants"].items():
        steps = variant["steps"]
        assert steps and all(st["rate"] > 0 and st["ops_total"] > 0 for st in steps), name
        # whether a step passes depends on how busy the machine is: the smoke test checks the
        # arithmetic on whatever was measured, not that the machine was quiet
        best = variant["max_rate"]
        assert best == max((st["rate"] for st in steps if st["passed"]), default=None), name
        if best is None:
            assert variant["ratio_to_librdkafka"] is None and variant["lag_run"] is None, name
            continue
        assert variant["ratio_to_librdkafka"] == best / round0["librdkafka"]["rate"], name
        assert variant["ratio_to_aiokafka"] == best / round0["aiokafka"]["rate"], name
        lag = variant["lag_run"]
        assert lag is not None and lag["rate"] > 0, name
        summary_lag = lag["extra"]["summary_schedule_lag_us"]
        assert summary_lag["count"] > 0 and summary_lag["p99"] >= 0, name
    median = result["median"]
    assert median["variants"]["produce"]["ratio_to_librdkafka"] == round0["variants"]["produce"]["ratio_to_librdkafka"]
    assert "ratio to librdkafka" in render(result)
