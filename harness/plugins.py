"""Find targets and workloads by name, so that the harness never imports one.

Entry points (`edabench.targets`, `edabench.workloads`) for installed packages, or a dotted
``module:Class`` path for a module in the current directory or on PYTHONPATH (the current
directory is searched as `python -m` would; generator processes inherit the path).
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points
from typing import Any

TARGETS = "edabench.targets"
WORKLOADS = "edabench.workloads"


class UnknownPlugin(LookupError):
    """No target or workload of that name could be loaded; the message says which exist."""


def available(group: str) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=group))


def load(group: str, name: str) -> Any:
    """Load a plugin by entry-point name, or by a dotted ``module:attr`` path."""
    kind = "target" if group == TARGETS else "workload"
    if ":" in name:
        module, _, attr = name.partition(":")
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise UnknownPlugin(f"cannot import module {module!r} for {kind} {name!r} ({exc}); "
                                "is it on PYTHONPATH?") from None
        try:
            return getattr(mod, attr)
        except AttributeError:
            raise UnknownPlugin(f"module {module!r} has no {attr!r} for {kind} {name!r}") from None
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    raise UnknownPlugin(f"unknown {kind} {name!r}; installed: {', '.join(available(group)) or 'none'} "
                        "(or give module:Class)")


def load_target(name: str) -> Any:
    return load(TARGETS, name)


def load_workload(name: str) -> Any:
    return load(WORKLOADS, name)


def after_run(run_dir: Any) -> list[Any]:
    """What other rooms make of a finished run (the HTML report), by `edabench.after_run` entry point;
    a failing step is logged, never fatal: the run's results are already written."""
    import logging
    from pathlib import Path

    out = []
    for ep in entry_points(group="edabench.after_run"):
        try:
            made = ep.load()(Path(run_dir))
        except Exception:
            logging.getLogger(__name__).exception("%s failed for %s", ep.name, run_dir)
            continue
        if made:
            out.append(Path(made))
    return out
