"""Smoke test of the Kafka send-rate benchmark: a tiny version runs end to end and yields its ratios.

Numbers are not asserted (they live in docs/benchmarks.md, measured by `python -m benchmarks.kafka_send_rate`);
only that the anchor and the generator were both measured on the same broker and the ratio is computed.
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
        assert variant["max_rate"] and variant["max_rate"] > 0, name
        assert variant["ratio_to_librdkafka"] > 0 and variant["ratio_to_aiokafka"] > 0, name
        assert variant["steps"] and all(s["rate"] > 0 for s in variant["steps"]), name
        lag = variant["lag_run"]
        assert lag is not None and lag["rate"] > 0, name
        summary_lag = lag["extra"]["summary_schedule_lag_us"]
        assert summary_lag["count"] > 0 and summary_lag["p99"] >= 0, name
    median = result["median"]
    assert median["variants"]["produce"]["ratio_to_librdkafka"] == round0["variants"]["produce"]["ratio_to_librdkafka"]
    assert "ratio to librdkafka" in render(result)
