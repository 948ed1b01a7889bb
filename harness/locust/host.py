"""The generator a Locust worker hosts: a `WorkerPool` of one `GeneratorConfig`, on asyncio.

A Locust worker runs on gevent, which monkey-patches the standard library; the generator runs
on asyncio (uvloop). So the worker starts this program in a clean interpreter
(`python -m harness.locust.host FD`) and talks to it over one end of a socket pair; the program
runs the same `WorkerPool` as `edabench run`, whose child is the same generator process with the
target's own driver. Nothing of gevent reaches asyncio, and nothing here is Locust-specific.

Frames, both ways: a 4-byte big-endian length, then a pickle (parent and child on one machine).

    worker -> host: a HostPlan dict; then ("go", start_monotonic_ns) or ("stop",); later ("stop",)
    host -> worker: ("ready",) or ("failed", reason); ("report", IntervalReport | FinalReport)...;
                    ("done",) once the generator has exited
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import signal
import socket
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.engine.loadgen import GeneratorConfig
from harness.engine.pool import WorkerPool
from harness.locust.wire import HostPlan
from harness.plan import make_plan
from harness.spec import parse_spec

HEADER = struct.Struct(">I")


def frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


async def _read(reader: asyncio.StreamReader) -> Any:
    """The next frame, or None when the worker closed its end (it is gone: stop)."""
    try:
        head = await reader.readexactly(HEADER.size)
        return pickle.loads(await reader.readexactly(HEADER.unpack(head)[0]))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def generator_config(plan: HostPlan) -> GeneratorConfig:
    """The plan as `edabench run` would build it: the spec checked against its target at load."""
    checked = make_plan(parse_spec(plan.spec, plan.source), plan.source)
    run_dir = Path(plan.run_dir)
    if not run_dir.is_dir():  # a worker on another machine: the master's run directory is not here
        run_dir = Path(tempfile.mkdtemp(prefix=f"edabench-{plan.run_id}-"))
        (run_dir / "logs").mkdir()
    return GeneratorConfig(checked.spec, checked.target, checked.workload_cls, dict(plan.services), str(run_dir),
                           plan.run_id, plan.index, plan.count, dict(plan.launched))


async def serve(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)

    def send(message: Any) -> None:
        if not writer.is_closing():
            writer.write(frame(message))

    try:
        data = await _read(reader)
        if data is None:
            return
        try:
            pool = WorkerPool([generator_config(HostPlan.from_msg(data))], lambda r: send(("report", r)))
            await pool.start()
        except Exception as exc:  # a spec the target refuses, a driver that cannot start
            send(("failed", f"{type(exc).__name__}: {exc}"))
            return
        send(("ready",))
        command = await _read(reader)
        if command is not None and command[0] == "go":
            pool.go(int(command[1]))
        else:
            pool.stop_all()  # a stop before the start: the child exits without running
        control = asyncio.create_task(_control(reader, pool))
        try:
            await pool.wait()
        finally:
            control.cancel()
        send(("done",))
    finally:
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


async def _control(reader: asyncio.StreamReader, pool: WorkerPool) -> None:
    """A stop from the worker (or its end of the socket closing) ends the schedule; the
    generator then drains and sends its books as after a timed end."""
    while True:
        command = await _read(reader)
        if command is None or command[0] == "stop":
            pool.stop_all()
            if command is None:
                return


def _die_with_parent() -> None:
    """A host whose Locust worker died must not go on loading the system (its pool's child
    dies with it in turn)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker owns Ctrl-C and sends "stop"
    _die_with_parent()
    from harness.loop import run

    run(serve(socket.socket(fileno=int(sys.argv[1]))))


if __name__ == "__main__":
    main()
