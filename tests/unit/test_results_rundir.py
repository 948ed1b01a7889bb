"""The run directory and run.json (harness/results/rundir.py): built in one place, secrets never written."""

from __future__ import annotations

from pathlib import Path

import orjson

from harness.results.rundir import MASK, SCHEMA, RunRecord, make_run_dir, redact
from harness.spec import parse_spec

SPEC = parse_spec({"name": "echo http", "target": "echo", "duration_s": 3, "warmup_s": 1, "rate": {"rate": 40},
                   "target_options": {"url": "http://bench:s3cret@127.0.0.1:8080/x", "api_key": "k-123"}})


def run_json(run_dir: Path) -> dict:
    return orjson.loads((run_dir / "run.json").read_bytes())


# -- redact -------------------------------------------------------------------------------------------


def test_a_password_in_a_url_is_masked_and_the_user_kept() -> None:
    assert redact("postgresql://bench:s3cret@db:5432/bench") == f"postgresql://bench:{MASK}@db:5432/bench"


def test_a_password_pair_in_a_dsn_is_masked() -> None:
    assert redact("host=db user=bench password=s3cret dbname=x") == f"host=db user=bench password={MASK} dbname=x"


def test_values_under_secret_looking_keys_are_masked() -> None:
    assert redact({"api_key": "k", "Token": "t", "db_password": "p", "user": "u"}) == {
        "api_key": MASK, "Token": MASK, "db_password": MASK, "user": "u"}


def test_an_empty_secret_stays_empty() -> None:
    assert redact({"password": ""}) == {"password": ""}


def test_secrets_are_masked_inside_lists_and_nested_tables() -> None:
    data = {"services": {"postgres": "postgresql://u:pw@h/db"}, "command": ["--postgres", "postgresql://u:pw@h/db"]}
    assert redact(data) == {"services": {"postgres": f"postgresql://u:{MASK}@h/db"},
                            "command": ["--postgres", f"postgresql://u:{MASK}@h/db"]}


def test_redact_leaves_its_input_and_other_values_alone() -> None:
    data = {"url": "redis://:pw@h:6379/0", "rate": 5.0, "on": True, "none": None}
    before = dict(data)
    assert redact(data) == {"url": f"redis://:{MASK}@h:6379/0", "rate": 5.0, "on": True, "none": None}
    assert data == before


# -- make_run_dir -------------------------------------------------------------------------------------


def test_a_run_dir_is_named_by_utc_stamp_and_a_safe_name_with_a_logs_folder(tmp_path: Path) -> None:
    path = make_run_dir("echo http/../x", tmp_path / "runs")
    stamp, _, name = path.name.partition("-")
    assert (len(stamp), stamp[8], stamp[-1]) == (16, "T", "Z")
    assert name == "echo_http_.._x"
    assert path.parent == tmp_path / "runs"
    assert (path / "logs").is_dir()


def test_two_runs_of_one_name_in_the_same_second_get_two_directories(tmp_path: Path) -> None:
    first, second = make_run_dir("demo", tmp_path), make_run_dir("demo", tmp_path)
    assert first != second
    assert {first.is_dir(), second.is_dir()} == {True}


# -- run.json -----------------------------------------------------------------------------------------


def test_run_json_records_the_spec_the_configuration_and_the_command(tmp_path: Path) -> None:
    run_dir = make_run_dir("demo", tmp_path)
    RunRecord(run_dir, SPEC, "workloads/x.toml", ["edabench", "run", "workloads/x.toml"], processes=2)
    data = run_json(run_dir)
    assert (data["schema"], data["name"], data["run_id"], data["front_end"]) == (SCHEMA, "echo http", run_dir.name,
                                                                                  "edabench")
    assert data["spec"]["rate"]["rate"] == 40.0
    assert {k: data["config"][k] for k in ("rate", "profile", "duration_s", "warmup_s", "processes",
                                           "closed_loop")} == {
        "rate": 40.0, "profile": "constant", "duration_s": 3.0, "warmup_s": 1.0, "processes": 2,
        "closed_loop": False}
    assert (data["spec_path"], data["command"]) == ("workloads/x.toml", ["edabench", "run", "workloads/x.toml"])
    assert data["started_at"].endswith("Z") and data["ended_at"] is None
    assert "python" in data["environment"]


def test_run_json_never_holds_a_password(tmp_path: Path) -> None:
    run_dir = make_run_dir("demo", tmp_path)
    record = RunRecord(run_dir, SPEC, None, ["edabench", "run", "--postgres", "postgresql://b:hunter2@db/x"], 1)
    record.services({"postgres": "postgresql://b:hunter2@db/x"}, ["kafka"])
    text = (run_dir / "run.json").read_text(encoding="utf-8")
    assert "hunter2" not in text and "s3cret" not in text and "k-123" not in text
    data = run_json(run_dir)
    assert data["config"]["services"] == {"postgres": f"postgresql://b:{MASK}@db/x"}
    assert data["spec"]["target_options"]["api_key"] == MASK
    assert record.data["config"]["services"]["postgres"] == "postgresql://b:hunter2@db/x", "kept in memory"


def test_run_json_records_the_services_and_which_were_embedded(tmp_path: Path) -> None:
    run_dir = make_run_dir("demo", tmp_path)
    record = RunRecord(run_dir, SPEC, None, [], 1)
    record.services({"kafka": "127.0.0.1:9092", "redis": "redis://127.0.0.1:6379/0"}, ["redis", "kafka"])
    assert run_json(run_dir)["config"]["embedded"] == ["kafka", "redis"]


def test_the_end_of_a_run_is_recorded_with_whether_it_was_interrupted(tmp_path: Path) -> None:
    run_dir = make_run_dir("demo", tmp_path)
    RunRecord(run_dir, SPEC, None, [], 1).end(interrupted=True)
    data = run_json(run_dir)
    assert data["interrupted"] is True
    assert data["ended_at"] >= data["started_at"]


def test_another_front_end_names_itself_and_adds_its_configuration(tmp_path: Path) -> None:
    run_dir = make_run_dir("demo", tmp_path)
    RunRecord(run_dir, SPEC, None, [], 1, front_end="locust", extra_config={"workers": 2})
    data = run_json(run_dir)
    assert (data["front_end"], data["config"]["workers"]) == ("locust", 2)
