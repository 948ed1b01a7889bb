"""Find targets and workloads by name, through entry points, so the harness never imports one."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

TARGETS = "edabench.targets"
WORKLOADS = "edabench.workloads"


class UnknownPlugin(LookupError):
    """No target or workload of that name is installed."""


def available(group: str) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=group))


def load(group: str, name: str) -> Any:
    """Load a plugin by entry-point name, or by a dotted ``module:attr`` path for local experiments."""
    if ":" in name:
        module, _, attr = name.partition(":")
        mod = __import__(module, fromlist=[attr])
        return getattr(mod, attr)
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    kind = "target" if group == TARGETS else "workload"
    raise UnknownPlugin(f"unknown {kind} {name!r}; installed: {', '.join(available(group)) or 'none'}")


def load_target(name: str) -> Any:
    return load(TARGETS, name)


def load_workload(name: str) -> Any:
    return load(WORKLOADS, name)
