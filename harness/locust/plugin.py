"""Hooks edabench into a Locust process, whatever its role.

* The master (or a stand-alone Locust) coordinates: one run directory per test
  (`harness.locust.coordinator`), the web UI's HDR tab, Prometheus metrics.
* A worker (or the stand-alone process) hosts a generator when it runs a `ScheduledOps` user
  (`harness.locust.hosting`).

Importing `harness.locust.users` installs this; `install()` is idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from harness.locust import webui
from harness.locust.coordinator import BOOKS_GRACE_S, Coordinator
from harness.locust.hosting import Hosting
from harness.locust.wire import (
    MSG_FAILED,
    MSG_GO,
    MSG_PLAN,
    MSG_READY,
    MSG_REPORT,
    MSG_STOP,
    Session,
)
from harness.spec import SpecError, parse_spec

log = logging.getLogger(__name__)
_installed = False
_roles: dict[str, Any] = {}


def install() -> None:
    global _installed
    if not _installed:
        _installed = True
        events.init.add_listener(_on_init)


def _role(runner: Any) -> str:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


def standalone_session(environment: Any) -> Session | None:
    """A plain `locust -f FILE` (no edabench command): the locustfile's spec, `--host` as its URL,
    no services and nothing launched (so a target that launches its own system needs `url`)."""
    from harness.locust.workload import spec_of_locustfile

    opts = environment.parsed_options
    locustfile = getattr(opts, "locustfile", None)
    try:
        spec, source = spec_of_locustfile(Path(str(locustfile)))
    except (SpecError, OSError, SyntaxError):
        if not environment.host:
            return None
        spec = parse_spec({"name": "locust-http", "target": "http", "target_options": {"url": environment.host}})
        source = "--host"
    else:
        if environment.host:
            spec = spec.with_overrides(target_options={**spec.target_options, "url": environment.host})
    headless = bool(getattr(opts, "headless", False))
    return Session(spec=spec.model_dump(mode="json"), source=source,
                   timed=headless or bool(getattr(opts, "autostart", False)), end="quit" if headless else "stop")


def _hosts(runner: Any, role: str) -> list[str]:
    """The workers running a ScheduledOps user, in Locust's worker-index order."""
    from harness.locust.users import ScheduledOps

    names = {c.__name__ for c in runner.user_classes if issubclass(c, ScheduledOps)}
    if role == "local":
        return ["local"] if any(runner.user_classes_count.get(n, 0) for n in names) else []
    nodes = runner.clients.ready + runner.clients.spawning + runner.clients.running
    nodes = sorted(nodes, key=lambda node: runner.get_worker_index(node.id))
    return [node.id for node in nodes if any(node.user_classes_count.get(n, 0) for n in names)]


def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_: Any) -> None:
    if runner is None:
        return
    role = _role(runner)
    from_command = Session.from_env()
    if from_command is not None:
        _die_with_parent()
    if role in ("master", "local"):
        session = from_command or standalone_session(environment)
        if session is None:
            log.error("edabench: no workload: the locustfile declares no EDABENCH spec and no --host was given")
        else:
            _coordinate(environment, runner, role, session, web_ui)
    if role in ("worker", "local"):
        _host(environment, runner, role)
    # registered after the runner's own listener: quitting fires in reverse, so this runs first,
    # while the workers are still connected and can send their books
    environment.events.quitting.add_listener(_on_quitting)


def _die_with_parent() -> None:
    """A Locust process the edabench command started ends with the command (SIGTERM: it writes
    what it has), even when the command was killed and could not stop it."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _coordinate(environment: Any, runner: Any, role: str, session: Session, web_ui: Any) -> None:
    def send(msg_type: str, data: dict[str, Any], client: str | None) -> None:
        runner.send_message(msg_type, data, client_id=client if role == "master" else None)

    co = Coordinator(environment, session, send, lambda: _hosts(runner, role))
    _roles["coordinator"] = co
    runner.register_message(MSG_READY, lambda msg, **_: co.on_ready(msg.data))
    runner.register_message(MSG_FAILED, lambda msg, **_: co.on_failed(msg.data))
    runner.register_message(MSG_REPORT, lambda msg, **_: co.on_report(msg.data))
    environment.events.test_start.add_listener(lambda **_: co.on_test_start())
    environment.events.spawning_complete.add_listener(lambda **_: co.on_spawned())
    environment.events.test_stop.add_listener(lambda **_: co.on_test_stop())
    if web_ui is not None:
        webui.install(environment, co)


def _host(environment: Any, runner: Any, role: str) -> None:
    hosting = Hosting(environment, lambda msg_type, data: runner.send_message(msg_type, data),
                      runner._send_stats if role == "worker" else None)
    _roles["hosting"] = hosting
    runner.register_message(MSG_PLAN, lambda msg, **_: hosting.on_plan(msg.data))
    runner.register_message(MSG_GO, lambda msg, **_: hosting.on_go(msg.data))
    runner.register_message(MSG_STOP, lambda msg, **_: hosting.on_stop(msg.data))
    environment.events.test_stop.add_listener(lambda **_: hosting.stop())


def _on_quitting(environment: Any, **_: Any) -> None:
    co: Coordinator | None = _roles.get("coordinator")
    wait_s = BOOKS_GRACE_S + (co.current.spec.drain_timeout_s if co is not None and co.current is not None else 10.0)
    if co is not None:
        co.on_quitting(wait_s)
    hosting: Hosting | None = _roles.get("hosting")
    if hosting is not None:
        hosting.stop()
        hosting.wait(wait_s)
