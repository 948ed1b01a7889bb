"""The state file of the persistent stack (`edabench infra up`): which services run where, under which pid."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from infra import registry


def state_file() -> Path:
    return registry.state_dir() / "stack.json"


@dataclass
class StackState:
    urls: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # service name -> pid
    run_dir: str = ""

    def save(self) -> None:
        path = state_file()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    def process_ours(self, service: str) -> bool:
        """Is the recorded pid still the server we started (same start time and command line)?"""
        pid = self.pids.get(service)
        entry = registry.load(pid) if pid else None
        return entry is not None and entry.matches_live_process()


def load() -> StackState | None:
    try:
        return StackState(**json.loads(state_file().read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def clear() -> None:
    with contextlib.suppress(FileNotFoundError):
        state_file().unlink()
