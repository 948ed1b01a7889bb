"""`edabench infra up|down|status`: a persistent embedded stack that outlives the command.

`up` starts detached servers (own session, no parent-death signal) and records them in the state file;
any later `Stack()` reuses them while they are healthy. `down` stops them by recorded pid, after
checking each pid is still the server we started.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra import registry, state
from infra.errors import StackError
from infra.external import ENV_VARS, SERVICES, check
from infra.stack import PROCESS_NAMES, Stack

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Start, stop and inspect the embedded stack.")
console = Console()


async def _health(st: state.StackState) -> dict[str, bool]:
    async def one(service: str) -> bool:
        if not await asyncio.to_thread(st.process_ours, PROCESS_NAMES[service]):
            return False
        try:
            await check(service, st.urls[service], timeout_s=3.0)
        except StackError:
            return False
        return True

    names = list(st.urls)
    return dict(zip(names, await asyncio.gather(*(one(s) for s in names)), strict=True))


@app.command()
def up(
    service: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="Service to start (repeatable); default all.")
    ] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Where logs and data go; default <state dir>/stack.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each service.")] = 60.0,
) -> None:
    """Start the embedded services in the background and record them; reused by later runs."""
    needs = set(service or SERVICES)
    existing = state.load()
    if existing is not None:
        health = asyncio.run(_health(existing))
        if health and all(health.values()) and needs <= set(existing.urls):
            console.print("[green]stack already running[/green]")
            _print_table(existing, health)
            return
        _stop_recorded(existing)
    run_dir = run_dir or registry.state_dir() / "stack"
    stack = Stack(needs=needs, run_dir=run_dir, use_env=False, reuse=False, detached=True, timeout=timeout)
    try:
        asyncio.run(stack.start())
    except StackError as exc:
        console.print(f"[red]infra up failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    st = stack.to_state()
    st.save()
    _print_table(st, dict.fromkeys(st.urls, True))
    for svc, url in sorted(st.urls.items()):
        console.print(f"export {ENV_VARS[svc]}={url}", highlight=False, soft_wrap=True)


@app.command()
def down() -> None:
    """Stop the services recorded by `infra up` (by pid, after checking each is still ours)."""
    st = state.load()
    if st is None:
        console.print("no stack recorded")
        return
    stopped = _stop_recorded(st)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def status() -> None:
    """Table of service, URL, pid and health of the recorded stack; exit code 1 if any is unhealthy."""
    st = state.load()
    if st is None:
        console.print("no stack recorded (start one with `edabench infra up`)")
        raise typer.Exit(1)
    health = asyncio.run(_health(st))
    _print_table(st, health)
    if not all(health.values()):
        raise typer.Exit(1)


def _stop_recorded(st: state.StackState) -> list[str]:
    stopped = []
    for name, pid in st.pids.items():
        entry = registry.load(pid)
        if entry is None:
            continue
        if registry.terminate(entry, 15.0, entry.stop_signal):
            stopped.append(name)
        registry.remove_dirs(entry)
        registry.unregister(pid)
    state.clear()
    return stopped


def _print_table(st: state.StackState, health: dict[str, bool]) -> None:
    table = Table(title=f"edabench stack ({st.run_dir})")
    table.add_column("service")
    table.add_column("url")
    table.add_column("pid", justify="right")
    table.add_column("healthy")
    for svc in SERVICES:
        if svc not in st.urls:
            continue
        ok = health.get(svc, False)
        pid = st.pids.get(PROCESS_NAMES[svc])
        table.add_row(svc, st.urls[svc], str(pid or "-"), "[green]yes[/green]" if ok else "[red]no[/red]")
    console.print(table)
