"""`edabench` (harness/cli.py): `run` refuses a bad spec, override or target option before starting anything
(exit 2), runs a spec with `-o` overrides and prints its verdict as JSON, and `--version` says which build.

`edabench gate` is tested with the gate, in test_results_gate.py.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from harness.cli import app, parse_options

ECHO = Path(__file__).resolve().parents[2] / "workloads" / "echo-http.toml"
NULL_SPEC = """\
name = "null-cli"
target = "benchmarks.produce_driver:NullDriver"
duration_s = 0.3
timeout_s = 2
drain_timeout_s = 2

[rate]
rate = 50

[target_options]
kept = "from the spec"
nested = { a = 1 }

[slo]
p99_ms = 2000
check_generator = false  # a busy test machine may delay the generator: not what is tested here
"""


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def text(result: Any) -> str:
    """The output as one line (rich wraps long messages)."""
    return " ".join(result.output.split())


def null_spec(tmp_path: Path) -> Path:
    path = tmp_path / "null.toml"
    path.write_text(NULL_SPEC, encoding="utf-8")
    return path


def run_dir_of(runs: Path) -> Path:
    (only,) = runs.iterdir()
    return only


# -- refused before anything starts -----------------------------------------------------------------


def test_run_with_a_missing_workload_file_exits_2_naming_it(tmp_path: Path) -> None:
    result = invoke("run", tmp_path / "nope.toml", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "no such workload file" in result.output
    assert not (tmp_path / "runs").exists(), "no run directory for a run that never started"


def test_run_with_an_invalid_spec_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "x"\ntarget = "echo"\n[rate]\nrate = -1\n', encoding="utf-8")
    result = invoke("run", spec, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "field `rate.rate`" in text(result)


def test_run_with_an_invalid_override_exits_2_naming_the_field(tmp_path: Path) -> None:
    result = invoke("run", ECHO, "--duration", "-1", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "field `duration_s`" in text(result)
    assert not (tmp_path / "runs").exists()


def test_run_at_rate_zero_exits_2(tmp_path: Path) -> None:
    result = invoke("run", ECHO, "--rate", "0", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "rate must be greater than 0" in text(result)
    assert not (tmp_path / "runs").exists()


def test_run_with_an_unknown_target_exits_2_naming_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "x.toml"
    spec.write_text('name = "x"\ntarget = "nope"\n', encoding="utf-8")
    result = invoke("run", spec, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "field `target`: unknown target 'nope'" in text(result)


def test_run_with_an_unknown_target_option_exits_2_naming_it(tmp_path: Path) -> None:
    result = invoke("run", ECHO, "-o", "bogus=1", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "field `target_options.bogus`: unknown option" in text(result)
    assert not (tmp_path / "runs").exists()


def test_run_with_an_invalid_target_option_value_exits_2(tmp_path: Path) -> None:
    result = invoke("run", ECHO, "--target-option", "base_ms=-5", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "field `target_options.base_ms`" in text(result) and "(got -5)" in text(result)


def test_a_target_option_without_equals_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("run", ECHO, "-o", "base_ms", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "expected KEY=VALUE" in text(result)


# -- -o KEY=VALUE -----------------------------------------------------------------------------------


def test_option_values_are_read_as_json_else_kept_as_text() -> None:
    assert parse_options(["n=5", "f=0.5", "on=true", "xs=[1,2]", "url=http://h:1/x", "empty="]) == {
        "n": 5, "f": 0.5, "on": True, "xs": [1, 2], "url": "http://h:1/x", "empty": ""}


def test_a_dotted_option_key_sets_a_nested_table() -> None:
    assert parse_options(["requests.get.path=/x", "requests.get.weight=2", "requests.put.path=/y"]) == {
        "requests": {"get": {"path": "/x", "weight": 2}, "put": {"path": "/y"}}}


def test_no_options_is_an_empty_table() -> None:
    assert parse_options(None) == {}


@pytest.mark.parametrize("item", ["novalue", "=5"])
def test_an_option_without_key_or_equals_is_refused(item: str) -> None:
    with pytest.raises(typer.BadParameter, match="expected KEY=VALUE"):
        parse_options([item])


# -- --version ---------------------------------------------------------------------------------------


def test_version_prints_the_installed_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"edabench {version('edabench')}"


# -- a real run (a do-nothing driver, a fraction of a second) -----------------------------------------


def test_run_json_prints_the_run_dir_summary_and_verdict(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = invoke("run", null_spec(tmp_path), "--runs-dir", runs, "--no-report", "--json")
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    run_dir = run_dir_of(runs)
    assert out["run_dir"] == str(run_dir)
    assert out["summary"]["books_balanced"] is True
    assert out["summary"]["ops"]["op"]["counts"]["scheduled"] == 15  # 50/s for 0.3 s
    assert (out["verdict"]["exit_code"], out["verdict"]["passed"]) == (0, True)
    assert orjson.loads((run_dir / "summary.json").read_bytes())["name"] == "null-cli"
    assert (run_dir / "gate.xml").exists()


def test_run_target_options_override_the_specs_and_are_recorded(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = invoke("run", null_spec(tmp_path), "--runs-dir", runs, "--no-report", "--json",
                    "-o", "extra=3", "--target-option", "nested.b=x")
    assert result.exit_code == 0, result.output
    spec = orjson.loads((run_dir_of(runs) / "run.json").read_bytes())["spec"]
    assert spec["target_options"] == {"kept": "from the spec", "nested": {"a": 1, "b": "x"}, "extra": 3}


def _stopped_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problems: list[str]) -> Any:
    """`edabench run` on a run whose schedule was cut short, with these problems (execute faked)."""
    from test_results_gate import summary  # the gate tests' summary builder

    import harness.engine.runner as runner

    async def fake_execute(plan: Any, opts: Any) -> Any:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        return runner.RunOutcome(run_dir, summary(interrupted=True, problems=problems))

    monkeypatch.setattr(runner, "execute", fake_execute)
    return invoke("run", null_spec(tmp_path), "--no-report", "--json")


def test_a_run_stopped_by_a_failed_watchdog_exits_4_not_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _stopped_run(tmp_path, monkeypatch, ["background task 'bank outcome watchdog' failed: OutcomeStall"])
    assert result.exit_code == 4, result.output


def test_a_cleanly_interrupted_run_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _stopped_run(tmp_path, monkeypatch, []).exit_code == 130
