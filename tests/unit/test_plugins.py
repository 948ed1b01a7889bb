"""Finding targets and workloads by name (harness/plugins.py): entry points or `module:Class`, never an import
of a target by the harness; an unknown name gets an error that says what is installed."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

from benchmarks.produce_driver import NullDriver
from harness.plugins import TARGETS, WORKLOADS, UnknownPlugin, available, load, load_target, load_workload

_modules = itertools.count()


def test_the_shipped_targets_and_workloads_are_installed_entry_points() -> None:
    assert {"bank", "cart", "echo", "http", "kafka"} <= set(available(TARGETS))
    assert {"bank", "cart"} <= set(available(WORKLOADS))
    assert available(TARGETS) == sorted(available(TARGETS))


def test_a_target_is_found_by_its_entry_point_name() -> None:
    cls = load_target("echo")
    assert (cls.__module__, cls.__name__) == ("targets.echo.driver", "EchoDriver")


def test_a_workload_is_found_by_its_entry_point_name() -> None:
    cls = load_workload("bank")
    assert (cls.__module__, cls.__name__) == ("workloads.bank.generator", "BankWorkload")


def test_a_target_is_found_by_module_and_class() -> None:
    assert load_target("benchmarks.produce_driver:NullDriver") is NullDriver


def test_an_unknown_target_names_what_is_installed() -> None:
    with pytest.raises(UnknownPlugin) as info:
        load_target("nope")
    installed = ", ".join(available(TARGETS))
    assert str(info.value) == f"unknown target 'nope'; installed: {installed} (or give module:Class)"


def test_an_unknown_workload_says_workload() -> None:
    with pytest.raises(UnknownPlugin, match=r"^unknown workload 'nope'; installed: .*bank"):
        load_workload("nope")


def test_a_module_that_cannot_be_imported_is_named_with_a_hint() -> None:
    with pytest.raises(UnknownPlugin) as info:
        load_target("no_such_module_here:Driver")
    message = str(info.value)
    assert message.startswith("cannot import module 'no_such_module_here' for target 'no_such_module_here:Driver' (")
    assert message.endswith("is it on PYTHONPATH?")


def test_a_module_without_the_class_is_named() -> None:
    with pytest.raises(UnknownPlugin) as info:
        load_workload("benchmarks.produce_driver:Nope")
    assert str(info.value) == (
        "module 'benchmarks.produce_driver' has no 'Nope' for workload 'benchmarks.produce_driver:Nope'")


def test_an_unknown_plugin_is_a_lookup_error() -> None:
    assert issubclass(UnknownPlugin, LookupError)


def test_a_module_in_the_current_directory_is_found_as_python_m_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cwd_target_{next(_modules)}"
    (tmp_path / f"{name}.py").write_text("class Ping:\n    pass\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    monkeypatch.delitem(sys.modules, name, raising=False)
    assert load(TARGETS, f"{name}:Ping").__name__ == "Ping"
    assert os.getcwd() in sys.path
