"""Workload specs: a good file loads; a bad one says which file, which field and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.spec import RateProfile, Spec, SpecError, load_spec, parse_spec

GOOD = """\
name = "demo"
target = "echo"
duration_s = 12
warmup_s = 3

[rate]
profile = "ramp"
rate = 10
end_rate = 50

[[ops]]
name = "read"
weight = 3

[[ops]]
name = "write"

[slo]
p99_ms = 250
[slo.ops.write]
p99_ms = 400
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


def minimal(**extra: str) -> str:
    lines = ['name = "demo"', 'target = "echo"', *(f"{k} = {v}" for k, v in extra.items())]
    return "\n".join(lines) + "\n"


def test_a_good_spec_loads_with_its_values(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert (spec.name, spec.target, spec.duration_s, spec.warmup_s) == ("demo", "echo", 12.0, 3.0)
    assert (spec.rate.profile, spec.rate.rate, spec.rate.end_rate) == ("ramp", 10.0, 50.0)
    assert [(o.name, o.weight) for o in spec.ops] == [("read", 3.0), ("write", 1.0)]
    assert spec.slo.p99_ms == 250 and spec.slo.ops["write"].p99_ms == 400


def test_defaults_are_one_op_constant_100_per_second_for_30_seconds() -> None:
    spec = parse_spec({"name": "n", "target": "t"})
    assert [o.name for o in spec.ops] == ["op"]
    assert (spec.rate.profile, spec.rate.rate, spec.duration_s, spec.warmup_s) == ("constant", 100.0, 30.0, 0.0)


def test_the_shipped_echo_workload_is_valid() -> None:
    spec = load_spec(Path(__file__).resolve().parents[2] / "workloads" / "echo-http.toml")
    assert spec.target == "echo" and spec.slo.p99_ms == 1000


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert load_error(path) == f"{path}: no such workload file"


def test_invalid_toml_names_the_file_and_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "demo"\ntarget = \n')
    message = load_error(path)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line 2" in message


def test_an_unknown_field_is_named_with_its_file(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(duraton_s="10"))
    assert load_error(path) == f"{path}: field `duraton_s`: unknown field (check the spelling)"


def test_an_unknown_nested_field_gives_its_dotted_path(tmp_path: Path) -> None:
    path = write(tmp_path, minimal() + "[rate]\nrat = 5\n")
    assert load_error(path) == f"{path}: field `rate.rat`: unknown field (check the spelling)"


def test_a_negative_rate_names_the_field_the_bound_and_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, minimal() + "[rate]\nrate = -5\n")
    message = load_error(path)
    assert message.startswith(f"{path}: field `rate.rate`: ")
    assert "greater than or equal to 0" in message
    assert message.endswith("(got -5)")


def test_a_zero_duration_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(duration_s="0"))
    message = load_error(path)
    assert message.startswith(f"{path}: field `duration_s`: ")
    assert "greater than 0" in message


def test_a_ramp_without_end_rate_says_what_it_needs(tmp_path: Path) -> None:
    path = write(tmp_path, minimal() + '[rate]\nprofile = "ramp"\nrate = 10\n')
    assert load_error(path) == f"{path}: field `rate`: profile 'ramp' needs end_rate"


def test_steps_without_entries_say_what_they_need(tmp_path: Path) -> None:
    path = write(tmp_path, minimal() + '[rate]\nprofile = "steps"\n')
    assert load_error(path) == f"{path}: field `rate`: profile 'steps' needs at least one [[rate.steps]] entry"


def test_a_burst_without_burst_ops_says_what_it_needs(tmp_path: Path) -> None:
    path = write(tmp_path, minimal() + '[rate]\nprofile = "burst"\n')
    assert load_error(path) == f"{path}: field `rate`: profile 'burst' needs burst_ops"


def test_an_unknown_profile_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, minimal() + '[rate]\nprofile = "sine"\n')
    message = load_error(path)
    assert message.startswith(f"{path}: field `rate.profile`: ")
    assert "'constant'" in message and "(got 'sine')" in message


def test_duplicate_op_names_are_listed(tmp_path: Path) -> None:
    path = write(tmp_path, minimal() + '[[ops]]\nname = "a"\n[[ops]]\nname = "b"\n[[ops]]\nname = "a"\n')
    assert load_error(path) == f"{path}: field `(top level)`: ops: duplicate op name(s) ['a']"


def test_a_bad_op_name_gives_its_index(tmp_path: Path) -> None:
    path = write(tmp_path, minimal() + '[[ops]]\nname = "ok"\n[[ops]]\nname = "has space"\n')
    message = load_error(path)
    assert message.startswith(f"{path}: field `ops[1].name`: ")
    assert "(got 'has space')" in message


def test_slo_for_an_op_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, minimal() + '[[ops]]\nname = "a"\n[slo.ops.b]\np99_ms = 5\n')
    assert load_error(path) == f"{path}: field `(top level)`: slo.ops names op(s) ['b'] that are not in [[ops]]"


def test_a_missing_required_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "demo"\n')
    assert load_error(path) == f"{path}: field `target`: Field required"


def test_every_problem_is_reported_one_per_line(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(duration_s="-1", bogus="1") + "[rate]\nrate = -2\n")
    lines = load_error(path).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: field `") for line in lines)
    assert {line.split("`")[1] for line in lines} == {"duration_s", "bogus", "rate.rate"}


def test_parse_spec_names_the_source_it_is_given() -> None:
    with pytest.raises(SpecError, match=r"^inline: field `max_in_flight`: "):
        parse_spec({"name": "n", "target": "t", "max_in_flight": 0}, "inline")


def test_overrides_replace_rate_duration_and_warmup() -> None:
    spec = parse_spec({"name": "n", "target": "t", "rate": {"rate": 5}})
    changed = spec.with_overrides(rate=300.0, duration_s=7.0, warmup_s=None)
    assert (changed.rate.rate, changed.duration_s, changed.warmup_s) == (300.0, 7.0, 0.0)
    assert spec.rate.rate == 5, "the original spec is unchanged"


def test_a_bad_override_is_a_spec_error_naming_the_field() -> None:
    spec = parse_spec({"name": "n", "target": "t"})
    with pytest.raises(SpecError) as info:
        spec.with_overrides(duration_s=-1.0)
    assert "field `duration_s`" in str(info.value)
    assert "greater than 0" in str(info.value)


def test_specs_are_frozen() -> None:
    spec = parse_spec({"name": "n", "target": "t"})
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]
    assert isinstance(spec, Spec) and isinstance(spec.rate, RateProfile)
