"""`edabench infra up/status/down`, and reuse of the persistent stack by Stack()."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
from typer.testing import CliRunner

from infra import registry, state
from infra.cli import app
from infra.stack import Stack

runner = CliRunner()


def _run_stack(stack: Stack) -> Stack:
    """Start and stop a Stack (the CLI runs its own event loop, so these tests are sync)."""

    async def cycle() -> Stack:
        async with stack:
            return stack

    return asyncio.run(cycle())


def _stop_leftovers() -> None:
    st = state.load()
    for pid in st.pids.values() if st else []:
        entry = registry.load(pid)
        if entry is not None:
            registry.terminate(entry, 10.0, entry.stop_signal)
            registry.remove_dirs(entry)


def test_up_status_reuse_down(infra_state_dir: Path, tmp_path: Path) -> None:
    try:
        result = runner.invoke(app, ["up", "--run-dir", str(tmp_path / "stack")])
        assert result.exit_code == 0, result.output
        st = state.load()
        assert st is not None and set(st.urls) == {"kafka", "postgres", "redis"}
        pids = dict(st.pids)
        assert all(psutil.pid_exists(p) for p in pids.values())
        assert "EDABENCH_POSTGRES_DSN=" in result.output

        result = runner.invoke(app, ["status"])
        assert result.exit_code == 0, result.output
        assert result.output.count("yes") == 3

        # A second `up` sees the healthy stack and starts nothing.
        result = runner.invoke(app, ["up"])
        assert result.exit_code == 0 and "already running" in result.output
        assert state.load() == st

        stack = _run_stack(Stack(needs={"kafka", "redis"}, run_dir=tmp_path / "run"))
        assert stack.reused == {"kafka", "redis"} and stack.started == set()
        assert stack.urls == {"kafka": st.urls["kafka"], "redis": st.urls["redis"]}
        assert stack.pids == {"tansu": pids["tansu"], "redis": pids["redis"]}
        assert all(psutil.pid_exists(p) for p in pids.values()), "a reusing Stack must not stop the stack"

        result = runner.invoke(app, ["down"])
        assert result.exit_code == 0, result.output
        assert not any(psutil.pid_exists(p) for p in pids.values())
        assert state.load() is None

        result = runner.invoke(app, ["status"])
        assert result.exit_code == 1
    finally:
        _stop_leftovers()


def test_status_reports_dead_server_and_stack_is_not_reused(infra_state_dir: Path, tmp_path: Path) -> None:
    try:
        result = runner.invoke(app, ["up", "-s", "redis", "--run-dir", str(tmp_path / "stack")])
        assert result.exit_code == 0, result.output
        st = state.load()
        assert st is not None
        entry = registry.load(st.pids["redis"])
        assert entry is not None
        registry.terminate(entry)  # the server dies behind the stack's back

        result = runner.invoke(app, ["status"])
        assert result.exit_code == 1 and "no" in result.output

        stack = _run_stack(Stack(needs={"redis"}, run_dir=tmp_path / "run", use_env=False))
        assert stack.reused == set() and stack.started == {"redis"}
        assert stack.pids["redis"] != st.pids["redis"]
    finally:
        _stop_leftovers()
        runner.invoke(app, ["down"])
