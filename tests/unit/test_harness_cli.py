"""`edabench run` refuses a bad spec or a bad override before starting anything, with exit code 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from harness.cli import app

ECHO = Path(__file__).resolve().parents[2] / "workloads" / "echo-http.toml"


def test_run_with_a_missing_workload_file_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = CliRunner().invoke(app, ["run", str(missing), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "no such workload file" in result.output
    assert not (tmp_path / "runs").exists(), "no run directory for a run that never started"


def test_run_with_an_invalid_spec_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "x"\ntarget = "echo"\n[rate]\nrate = -1\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(spec), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "field `rate.rate`" in " ".join(result.output.split())


def test_run_with_an_invalid_override_exits_2_naming_the_field(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(ECHO), "--duration", "-1", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "field `duration_s`" in " ".join(result.output.split())
    assert not (tmp_path / "runs").exists()
