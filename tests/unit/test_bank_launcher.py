"""The launcher's run namespace and its supervision of instance processes, with stand-in programs for
the service (a process that exits at once, one that sleeps): deaths are reported and restarted per
the policy, deliberate kills and stops are not deaths, instances run in a session of their own and
die with the process that started them.

Every process a test starts is stopped by PID in `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from targets.bank.launcher import Launcher, run_namespace
from targets.bank.procs import ServiceProcs, describe_exit
from targets.bank.topics import Names

EXITS = [sys.executable, "-c", "import sys; sys.exit(3)"]
SLEEPS = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_an_auto_namespace_is_valid_short_and_made_of_the_run_directory(tmp_path: Path) -> None:
    ns = run_namespace("auto", str(tmp_path / "20261202T051415Z-bank-smoke"))
    assert len(ns) <= 24 and ns.startswith("20261202t051415")
    Names(ns)  # accepted


def test_two_run_directories_of_the_same_name_get_different_namespaces(tmp_path: Path) -> None:
    assert run_namespace("auto", str(tmp_path / "a" / "run")) != run_namespace("auto", str(tmp_path / "b" / "run"))


def test_an_auto_namespace_without_a_run_directory_is_unique_too() -> None:
    assert run_namespace("auto", None) != run_namespace("auto", None)


def test_an_explicit_namespace_is_kept_and_an_empty_one_means_the_seeds_names() -> None:
    assert (run_namespace("nightly", "/x/run"), run_namespace("", "/x/run")) == ("nightly", "")


def test_a_malformed_namespace_is_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="namespace"):
        run_namespace("Nightly_1", None)


@contextlib.asynccontextmanager
async def supervised(tmp_path: Path, command: list[str], instances: int = 1) -> AsyncIterator[Launcher]:
    """A launcher whose instances run `command` (no broker, no database), spawned as start() would."""
    launcher = Launcher({}, {"kafka": "127.0.0.1:1", "postgres": "postgresql://h/db"}, str(tmp_path))
    procs = ServiceProcs(["--kafka", "127.0.0.1:1"], [0] * instances, tmp_path / "logs", {"X": "1"})
    procs.command = command
    launcher.procs = procs
    try:
        for i in range(instances):
            launcher.pids[procs.name(i)] = procs.spawn(i)
        yield launcher
    finally:
        await procs.stop(5)


async def ended(procs: ServiceProcs, i: int = 0) -> None:
    """Until instance `i`'s current process has ended (bounded: the stand-ins end at once)."""
    deadline = time.monotonic() + 30
    while procs.alive(i):
        assert time.monotonic() < deadline, "the stand-in did not end"
        await asyncio.sleep(0.02)


async def test_an_instance_that_exits_is_named_in_the_problems_and_restarted(tmp_path: Path) -> None:
    async with supervised(tmp_path, EXITS) as launcher:
        procs = launcher.procs
        assert procs is not None
        first = launcher.pids["bancaire-0"]
        await ended(procs)
        launcher.check("always", 5)
        assert len(launcher.problems) == 1
        line = launcher.problems[0]
        assert line.startswith(f"bancaire-0 (pid {first}) exited with code 3 at t=")
        assert line.endswith(f"restarted as pid {launcher.pids['bancaire-0']} (1 of 5)")
        assert launcher.pids["bancaire-0"] == procs.pid(0) != first


async def test_a_restart_runs_the_same_command_line_and_environment(tmp_path: Path) -> None:
    async with supervised(tmp_path, SLEEPS) as launcher:
        procs = launcher.procs
        assert procs is not None
        before = _proc(procs.pid(0), "cmdline")
        os.kill(procs.pid(0), signal.SIGKILL)  # not through the launcher: a crash, as it sees it
        await ended(procs)
        launcher.check()
        assert _proc(procs.pid(0), "cmdline") == before
        assert b"X=1" in _proc(procs.pid(0), "environ").split(b"\0")
        assert "was killed by SIGKILL" in launcher.problems[0]


async def test_after_max_restarts_an_instance_stays_down_and_says_so_once(tmp_path: Path) -> None:
    async with supervised(tmp_path, EXITS) as launcher:
        procs = launcher.procs
        assert procs is not None
        for _ in range(3):
            await ended(procs)
            launcher.check("always", 2)
        launcher.check("always", 2)  # given up: not reported again
        assert [p.rsplit("; ", 1)[1] for p in launcher.problems] == [
            f"restarted as pid {p} ({n} of 2)" for p, n in zip(_pids(launcher.problems[:2]), (1, 2), strict=True)
        ] + ["not restarted (2 restarts already, max_restarts = 2)"]
        assert "bancaire-0" not in launcher.pids


def _proc(pid: int | None, what: str) -> bytes:
    return Path(f"/proc/{pid}/{what}").read_bytes()


def _pids(lines: list[str]) -> list[int]:
    return [int(line.split("restarted as pid ")[1].split()[0]) for line in lines]


async def test_with_restart_never_a_death_is_reported_and_not_restarted(tmp_path: Path) -> None:
    async with supervised(tmp_path, EXITS) as launcher:
        assert launcher.procs is not None
        await ended(launcher.procs)
        launcher.check("never", 5)
        launcher.check("never", 5)
        assert len(launcher.problems) == 1 and launcher.problems[0].endswith("not restarted (restart = never)")
        assert not launcher.procs.alive(0)


async def test_a_deliberate_kill_is_not_a_death_until_the_instance_is_spawned_again(tmp_path: Path) -> None:
    async with supervised(tmp_path, SLEEPS) as launcher:
        procs = launcher.procs
        assert procs is not None
        await procs.sigkill(0)
        launcher.check()
        assert (launcher.problems, procs.alive(0)) == ([], False)
        procs.spawn(0)
        os.kill(procs.pid(0), signal.SIGKILL)  # after the respawn, a crash is a crash again
        await ended(procs)
        launcher.check()
        assert len(launcher.problems) == 1


async def test_instances_stopped_by_the_launcher_are_not_deaths(tmp_path: Path) -> None:
    async with supervised(tmp_path, SLEEPS, instances=2) as launcher:
        procs = launcher.procs
        assert procs is not None
        assert await procs.stop(5) == []  # both ended on SIGTERM
        launcher.check()
        assert launcher.problems == []


async def test_an_instance_that_ignores_sigterm_is_killed_and_named(tmp_path: Path) -> None:
    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(120)"]  # fmt: skip
    async with supervised(tmp_path, stubborn) as launcher:
        procs = launcher.procs
        assert procs is not None
        deadline = time.monotonic() + 30
        while "ready" not in procs.tail(0):  # its handler is in place
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        pid = procs.pid(0)
        assert await procs.stop(0.2) == [f"bancaire-0 (pid {pid}) ignored SIGTERM for 0s: SIGKILL"]
        assert not procs.alive(0)


async def test_an_instance_runs_in_a_session_of_its_own(tmp_path: Path) -> None:
    async with supervised(tmp_path, SLEEPS) as launcher:
        pid = launcher.pids["bancaire-0"]
        assert os.getsid(pid) == pid != os.getsid(0)  # a terminal's Ctrl-C to our group does not reach it


def test_exit_descriptions_name_the_code_or_the_signal() -> None:
    assert (describe_exit(1), describe_exit(-9), describe_exit(0)) == (
        "exited with code 1",
        "was killed by SIGKILL",
        "exited with code 0",
    )


_SPAWNER = """
import sys, time
from pathlib import Path
from targets.bank.procs import ServiceProcs
procs = ServiceProcs([], [0], Path(sys.argv[1]))
procs.command = [sys.executable, "-c", "import time; time.sleep(120)"]
print(procs.spawn(0), flush=True)
time.sleep(120)
"""


async def test_an_instance_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    spawner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SPAWNER, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    child = 0
    try:
        assert spawner.stdout is not None
        child = int(await asyncio.wait_for(spawner.stdout.readline(), 30))
        spawner.kill()  # the harness SIGKILLed: no chance to stop anything
        await spawner.wait()
        deadline = time.monotonic() + 30
        while _running(child):
            assert time.monotonic() < deadline, f"pid {child} outlived the process that started it"
            await asyncio.sleep(0.05)
    finally:
        if spawner.returncode is None:
            spawner.kill()
            await spawner.wait()
        if child and _running(child):
            os.kill(child, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped by init, or by a subreaper, in its own time)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
