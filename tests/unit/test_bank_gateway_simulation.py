"""The simulation API's rules without a run: what a start request may say, the spec it becomes,
one run at a time, and how the run's progress lines become its status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from targets.bank.gateway.simulation import (
    BadRequest,
    Busy,
    NotRunning,
    SimConfig,
    Simulator,
    build_spec,
    check_spec,
    parse_request,
)


def config(**kw: Any) -> SimConfig:
    return SimConfig(kafka="127.0.0.1:9092", dsn="postgresql://x@127.0.0.1/db", namespace="gw-test",
                     runs_root=Path("runs"), **kw)


def spec(body: bytes, **kw: Any) -> dict[str, Any]:
    return build_spec(parse_request(body), config(**kw))


def problems(body: bytes, **kw: Any) -> dict[str, str]:
    with pytest.raises(BadRequest) as err:
        s = spec(body, **kw)
        check_spec(s)
    return {d["loc"]: d["msg"] for d in err.value.detail}


def test_the_seeds_request_becomes_a_bank_run_at_that_rate_for_that_long() -> None:
    s = spec(b'{"rate": 10, "duration": 60}')
    assert (s["target"], s["workload"]) == ("bank", "bank")
    assert s["rate"]["rate"] == 10 and s["rate"]["profile"] == "constant"
    assert (s["duration_s"], s["warmup_s"]) == (60, 0)
    check_spec(s)


def test_the_run_targets_the_gateways_pipeline_without_dropping_its_ledger() -> None:
    options = spec(b"{}", group="gw-test.bancaire-1")["target_options"]
    assert options["namespace"] == "gw-test" and options["reset"] is False and options["keep_topics"] is True
    assert options["group"] == "gw-test.bancaire-1"


def test_without_the_pipelines_group_the_run_has_no_lag_gauge() -> None:
    assert spec(b"{}")["target_options"]["lag_interval_s"] == 0


def test_the_shape_is_the_bank_smoke_scenarios() -> None:
    s = spec(b"{}")
    assert {o["name"] for o in s["ops"]} == {"open", "deposit", "withdrawal", "transfer", "close"}
    assert s["slo"]["max_error_rate"] == 0.0


def test_a_mix_and_workload_options_replace_the_shapes() -> None:
    s = spec(b'{"mix": {"open": 1, "deposit": 3}, "workload_options": {"corrupt_share": 0}}')
    assert s["ops"] == [{"name": "open", "weight": 1}, {"name": "deposit", "weight": 3}]
    assert s["workload_options"]["corrupt_share"] == 0 and s["workload_options"]["duplicate_share"] == 0.02


def test_every_run_gets_a_seed_of_its_own_unless_it_asks_for_one() -> None:
    # the workload's event ids follow from the seed and the ledger is never reset: one seed twice
    # would send the same events twice, which the ledger ignores as duplicates
    assert len({spec(b"{}")["seed"] for _ in range(5)}) == 5
    assert spec(b'{"seed": 7}')["seed"] == 7


def test_an_empty_body_is_the_seeds_defaults() -> None:
    s = spec(b"")
    assert s["rate"]["rate"] == 10 and s["duration_s"] == 60


@pytest.mark.parametrize(("body", "loc"), [
    (b'{"rate": 0}', "rate"), (b'{"rate": -1}', "rate"), (b'{"rate": "fast"}', "rate"),
    (b'{"duration": 0}', "duration"), (b'{"durationn": 5}', "durationn"), (b'{"processes": 0}', "processes"),
    (b'{"name": "a b"}', "name"), (b"[1]", "body"), (b"{", "body"),
])  # fmt: skip
def test_a_bad_request_is_refused_naming_the_field(body: bytes, loc: str) -> None:
    assert loc in problems(body)


def test_an_unknown_field_is_refused_not_ignored() -> None:
    assert problems(b'{"durration": 5}') == {"durration": "unknown field"}


def test_a_rate_over_the_gateways_limit_is_refused() -> None:
    assert "at most 100" in problems(b'{"rate": 1000}', max_rate=100)["rate"]


def test_an_unknown_op_kind_in_the_mix_is_refused_before_anything_starts() -> None:
    assert "unknown op kind 'refund'" in problems(b'{"mix": {"refund": 1}}')["spec"]


async def test_a_start_while_a_run_is_in_progress_is_refused() -> None:
    sim = Simulator(config())
    sim.run.state = "running"
    with pytest.raises(Busy):
        await sim.start(b'{"rate": 1}')


async def test_a_stop_without_a_run_is_refused() -> None:
    with pytest.raises(NotRunning):
        await Simulator(config()).stop()


def test_status_of_a_gateway_that_never_ran_anything_is_idle() -> None:
    st = Simulator(config()).status()
    assert st["state"] == "idle" and st["sent"] == 0 and st["run_dir"] is None


def test_the_runs_seconds_add_up_to_its_status() -> None:
    sim = Simulator(config())
    run = sim.run
    run.state, run.request = "starting", {"rate": 10}
    sim._on_event(run, {"event": "started", "run_id": "r1", "run_dir": "/runs/r1"})
    for t in range(3):
        sim._on_event(run, {"event": "interval", "t": t, "scheduled": 10, "sent": 10, "ok": 9, "error": 1,
                            "timeout": 0, "not_sent": 0, "in_flight": 1})
    st = sim.status()
    assert (st["state"], st["run_id"], st["sent"], st["ok"], st["errors"]) == ("running", "r1", 30, 27, 3)
    assert st["rate"] == {"target": 10, "observed": 10.0}


def test_a_finished_run_reports_the_books_of_its_summary() -> None:
    sim = Simulator(config())
    run = sim.run
    run.state = "running"
    result = {"counts": {"scheduled": 31, "ok": 31, "error": 0, "timeout": 0, "not_sent": 0}, "problems": [],
              "books_balanced": True, "achieved_rate": 10.2}
    sim._on_event(run, {"event": "finished", "ok": True, "run_dir": "/runs/r1", "summary": result})
    assert sim.status()["state"] == "running"  # until its process has exited
    sim._ended(run, 0)
    st = sim.status()
    assert (st["state"], st["sent"], st["errors"], st["result"]) == ("finished", 31, 0, result)
    assert st["rate"]["observed"] == 10.2 and "error" not in st


def test_a_run_that_failed_says_why() -> None:
    sim = Simulator(config())
    sim.run.state = "running"
    sim._on_event(sim.run, {"event": "failed", "error": "RuntimeError: no bank pipeline is running"})
    sim._ended(sim.run, 2)
    assert sim.status()["state"] == "failed" and "no bank pipeline" in sim.status()["error"]


def test_a_run_whose_process_died_without_a_word_is_failed_naming_its_log() -> None:
    sim = Simulator(config())
    sim.run.state, sim.run.log = "running", "/runs/.gateway/sim.log"
    sim._ended(sim.run, -9)
    st = sim.status()
    assert st["state"] == "failed" and "code -9" in st["error"] and "sim.log" in st["error"]


def test_a_run_stopped_on_request_is_stopped_even_if_its_process_ended_abruptly() -> None:
    sim = Simulator(config())
    sim.run.state, sim._stop_requested = "stopping", True
    sim._ended(sim.run, -2)
    assert sim.status()["state"] == "stopped"


async def test_a_refused_start_leaves_the_last_runs_status_as_it_was() -> None:
    sim = Simulator(config())
    sim.run.state, sim.run.run_id = "finished", "r1"
    with pytest.raises(BadRequest):
        await sim.start(b'{"mix": {"refund": 1}}')
    assert (sim.status()["state"], sim.status()["run_id"]) == ("finished", "r1")
