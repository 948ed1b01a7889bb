"""The bank locustfile: events produced from Locust (confluent-kafka) through the pipeline to PostgreSQL.

Starts the embedded broker and database, the bank service, and a Locust master with one worker.
Every event must come back as the outcome the workload expected, and the produce-to-persisted
histogram must be in the results. Slow (services and a 6 s run): marked `slow`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.locust.coordinator import LocustOptions, execute
from harness.loop import run

pytestmark = pytest.mark.slow


def test_bank_events_reach_the_ledger(tmp_path: Path) -> None:
    opts = LocustOptions(workload="bank", workers=1, users=8, spawn_rate=100, duration_s=6, warmup_s=2,
                         runs_root=tmp_path, report=False)
    outcome = run(execute(opts))
    assert outcome.ok, outcome.summaries
    (summary,) = outcome.summaries
    counts = summary["overall"]["counts"]
    assert counts["error"] == 0 and counts["timeout"] == 0, summary["overall"]
    assert {"open", "deposit", "compte"} <= set(summary["ops"])
    pipeline = summary["observed_us"]["produce_to_persisted"]
    assert pipeline["count"] > 0 and pipeline["p99"] < 5_000_000
