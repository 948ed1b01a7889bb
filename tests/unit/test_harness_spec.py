"""Workload specs (harness/spec.py) and plans (harness/plan.py): a good file loads; a bad one says which file,
which field and what is wrong, before anything starts.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.produce_driver import NullDriver
from harness.plan import make_plan
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
    assert (spec.timeout_s, spec.drain_timeout_s, spec.max_in_flight, spec.processes) == (5.0, 10.0, 100_000, None)


def test_the_generator_must_keep_its_schedule_by_default() -> None:
    slo = parse_spec({"name": "n", "target": "t"}).slo
    assert (slo.max_schedule_lag_ms, slo.check_generator) == (50.0, True)


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


def test_a_constant_rate_of_zero_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"name": "n", "target": "t", "rate": {"rate": 0}}, "x.toml")
    assert str(info.value) == ("x.toml: field `rate`: rate must be greater than 0 "
                               "(a run that sends nothing measures nothing)")


def test_a_ramp_from_zero_to_zero_is_refused() -> None:
    with pytest.raises(SpecError, match=r"field `rate`: a ramp from 0 to 0 sends nothing"):
        parse_spec({"name": "n", "target": "t", "rate": {"profile": "ramp", "rate": 0, "end_rate": 0}})


def test_steps_that_are_all_zero_are_refused() -> None:
    with pytest.raises(SpecError, match=r"field `rate`: every step has rate 0"):
        parse_spec({"name": "n", "target": "t", "rate": {"profile": "steps", "steps": [{"rate": 0, "duration_s": 1}]}})


def test_a_ramp_from_zero_and_a_pause_between_steps_are_allowed() -> None:
    parse_spec({"name": "n", "target": "t", "rate": {"profile": "ramp", "rate": 0, "end_rate": 10}})
    parse_spec({"name": "n", "target": "t", "rate": {"profile": "steps", "steps": [
        {"rate": 5, "duration_s": 1}, {"rate": 0, "duration_s": 1}]}})


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


def test_slo_for_a_kind_the_workload_makes_is_left_to_the_plan() -> None:
    spec = parse_spec({"name": "n", "target": "t", "workload": "bank", "slo": {"ops": {"transfer": {"p99_ms": 5}}}})
    assert set(spec.slo.ops) == {"transfer"}


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


# -- plans: the spec against its target and workload --------------------------------------------------

_modules = itertools.count()


def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """Write `source` as a fresh importable module; returns its name."""
    name = f"plan_fixture_{next(_modules)}"
    (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


GOOD_DRIVER = """
from harness.protocol import OK

class Ping:
    async def start(self, ctx): pass
    async def send(self, op): return OK
    async def stop(self): pass
"""

WORKLOAD = """
from pydantic import BaseModel, ConfigDict

class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accounts: int = 10

class Ledger:
    KINDS = ("open", "transfer")
    Options = Options
    def __init__(self, options, seed, process_index): pass
    def next_op(self, kind): return kind, None
    def on_result(self, op, error): pass
"""


def plan_error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        make_plan(parse_spec({"name": "n", **data}), "x.toml")
    return str(info.value)


def test_a_target_given_as_module_and_class_is_loaded_and_checked() -> None:
    plan = make_plan(parse_spec({"name": "n", "target": "benchmarks.produce_driver:NullDriver"}), "x.toml")
    assert plan.target.cls is NullDriver
    assert (plan.target.send_is_coroutine, plan.target.has_batch, plan.workload_cls) == (True, False, None)
    assert plan.source == "x.toml"


def test_an_installed_target_is_found_by_name() -> None:
    plan = make_plan(parse_spec({"name": "n", "target": "echo"}))
    assert plan.target.cls.__name__ == "EchoDriver"


def test_an_unknown_target_is_refused_naming_the_installed_ones() -> None:
    message = plan_error({"target": "nope"})
    assert message.startswith("x.toml: field `target`: unknown target 'nope'; installed: ")
    assert "echo" in message and "bank" in message and "(or give module:Class)" in message


def test_a_target_module_that_cannot_be_imported_is_named() -> None:
    message = plan_error({"target": "no_such_module_here:Driver"})
    assert message.startswith("x.toml: field `target`: cannot import module 'no_such_module_here'")


def test_a_target_module_that_fails_while_loading_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = module(tmp_path, monkeypatch, "raise RuntimeError('no config')\n")
    assert plan_error({"target": f"{name}:Ping"}) == (
        f"x.toml: field `target`: cannot load '{name}:Ping': RuntimeError: no config")


def test_a_driver_without_send_is_refused_naming_what_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = module(tmp_path, monkeypatch, GOOD_DRIVER.replace("    async def send(self, op): return OK\n", ""))
    assert plan_error({"target": f"{name}:Ping"}) == (
        f"x.toml: field `target`: {name}:Ping: a driver needs a `send(op)` method (or `send_batch(ops)`)")


def test_a_driver_with_a_sync_start_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = module(tmp_path, monkeypatch, GOOD_DRIVER.replace("async def start", "def start"))
    assert plan_error({"target": f"{name}:Ping"}).endswith(f"{name}:Ping: `start` must be `async def`")


def test_an_unknown_target_option_is_refused_naming_it() -> None:
    assert plan_error({"target": "echo", "target_options": {"bogus": 1}}) == (
        "x.toml: field `target_options.bogus`: unknown option (check the spelling)")


def test_an_invalid_target_option_value_is_refused_with_the_value() -> None:
    assert plan_error({"target": "echo", "target_options": {"base_ms": -1}}) == (
        "x.toml: field `target_options.base_ms`: Input should be greater than or equal to 0 (got -1)")


def test_a_driver_without_options_model_takes_any_options() -> None:
    make_plan(parse_spec({"name": "n", "target": "benchmarks.produce_driver:NullDriver",
                          "target_options": {"anything": [1, 2]}}))


def test_an_unknown_workload_is_refused_naming_the_installed_ones() -> None:
    message = plan_error({"target": "benchmarks.produce_driver:NullDriver", "workload": "nope"})
    assert message.startswith("x.toml: field `workload`: unknown workload 'nope'; installed: ")
    assert "bank" in message


def test_an_op_kind_the_workload_cannot_make_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = module(tmp_path, monkeypatch, WORKLOAD)
    message = plan_error({"target": "benchmarks.produce_driver:NullDriver", "workload": f"{name}:Ledger",
                          "ops": [{"name": "open"}, {"name": "close"}]})
    assert message == (f"x.toml: field `ops[1].name`: unknown op kind 'close' for workload '{name}:Ledger'; "
                       "known: open, transfer")


def test_a_goal_for_a_kind_the_workload_cannot_make_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = module(tmp_path, monkeypatch, WORKLOAD)
    message = plan_error({"target": "benchmarks.produce_driver:NullDriver", "workload": f"{name}:Ledger",
                          "ops": [{"name": "open"}], "slo": {"ops": {"close": {"p99_ms": 5}}}})
    assert message.startswith("x.toml: field `slo.ops.close`: unknown op kind 'close'")


def test_a_bad_workload_option_is_refused_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = module(tmp_path, monkeypatch, WORKLOAD)
    message = plan_error({"target": "benchmarks.produce_driver:NullDriver", "workload": f"{name}:Ledger",
                          "ops": [{"name": "open"}], "workload_options": {"acounts": 5}})
    assert message == "x.toml: field `workload_options.acounts`: unknown option (check the spelling)"


def test_a_good_workload_makes_a_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = module(tmp_path, monkeypatch, WORKLOAD)
    plan = make_plan(parse_spec({"name": "n", "target": "benchmarks.produce_driver:NullDriver",
                                 "workload": f"{name}:Ledger", "ops": [{"name": "open"}, {"name": "transfer"}],
                                 "workload_options": {"accounts": 5}}))
    assert plan.workload_cls.__name__ == "Ledger"
