"""The cart locustfile against the real cart service (PostgreSQL and Redis, embedded), one Locust process.

Open-model shopper actions at 100/s for three seconds: every kind of request answers without
errors, every arrival is accounted for, and the run directory has one hlog per request name.
"""

from __future__ import annotations

from pathlib import Path

from harness.locust.coordinator import LocustOptions, execute
from harness.loop import run

KINDS = {"add", "view", "browse", "summary", "update", "remove", "history"}


def test_cart_shoppers_open_model(tmp_path: Path) -> None:
    opts = LocustOptions(workload="cart", workers=0, users=5, spawn_rate=100, duration_s=3, warmup_s=1,
                         runs_root=tmp_path, report=False)
    outcome = run(execute(opts))
    assert outcome.ok, outcome.summaries
    (summary,), (run_dir,) = outcome.summaries, outcome.run_dirs
    assert set(summary["ops"]) <= KINDS and {"add", "view", "browse"} <= set(summary["ops"])
    overall = summary["overall"]["counts"]
    assert overall["error"] == 0 and overall["timeout"] == 0, summary["overall"]
    assert abs(overall["measured"]["scheduled"] - 300) <= 5
    assert (run_dir / "add.response.hlog").exists() and not summary["closed_loop"]
