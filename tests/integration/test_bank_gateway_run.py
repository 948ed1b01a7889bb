"""The bank pipeline behind its Gateway as a measured stage: every event reaches every subscriber of
its topic, each delivery is timed from the event's intended start, and missing ones are counted."""

from __future__ import annotations

from pathlib import Path

from harness.engine.runner import RunOptions, execute
from harness.loop import run
from harness.plan import make_plan
from harness.results.gate import evaluate_slos
from harness.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def test_the_gateway_smoke_workload_delivers_every_event_to_every_subscriber(tmp_path: Path) -> None:
    spec = load_spec(REPO / "workloads" / "bank-gateway-smoke.toml").with_overrides(duration_s=5)
    outcome = run(execute(make_plan(spec), RunOptions(runs_root=tmp_path, isolate=True)))
    s = outcome.summary
    assert s["verify"]["problems"] == [], s["verify"]["problems"]
    sent = s["overall"]["counts"]["scheduled"] - s["overall"]["counts"]["not_sent"]
    subscribers = spec.target_options["subscribers"]
    assert s["deliveries"]["ws_delivery"] == {"expected": sent * subscribers, "observed": sent * subscribers,
                                              "missing": 0}
    for j in range(subscribers):
        assert s["observed_us"][f"ws_delivery.s{j}"]["count"] == sent
    names = {(c.op, c.name) for c in evaluate_slos(s)}
    assert ("ws_delivery", "p99_ms") in names, "the observed metric's goal is checked by the gate"
    sampled = (outcome.run_dir / "resources.jsonl").read_text()
    assert '"gateway"' in sampled, "the gateway's CPU and memory are sampled with the other processes"
