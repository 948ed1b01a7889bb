"""Isolated logic of infra: URL redaction, path reachability, port picking, registry identity checks."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import psutil
import pytest

from infra import registry
from infra.errors import StackError
from infra.external import redact
from infra.ports import free_port
from infra.postgres import _traversable
from infra.stack import Stack


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://postgres@127.0.0.1:5432/postgres", "postgresql://postgres@127.0.0.1:5432/postgres"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("127.0.0.1:9092", "127.0.0.1:9092"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_traversable_follows_every_parent(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    inner = closed / "inner"
    inner.mkdir(parents=True)
    closed.chmod(0o700)
    other_uid, other_gid = 65534, 65534
    st = tmp_path.stat()
    open_to_others = all(p.stat().st_mode & 0o001 for p in [tmp_path, *tmp_path.parents])
    assert _traversable(inner, other_uid, other_gid) is False
    assert _traversable(inner, st.st_uid, st.st_gid) is True
    closed.chmod(0o711)
    assert _traversable(inner, other_uid, other_gid) is open_to_others


def test_unknown_service_is_refused() -> None:
    with pytest.raises(StackError, match="unknown service"):
        Stack(needs={"kafka", "mysql"})


def _entry(pid: int, cmdline: list[str], create_time: float) -> registry.Entry:
    me = psutil.Process(os.getpid())
    return registry.Entry("x", pid, create_time, cmdline, me.pid, me.create_time())


def test_entry_identity_needs_same_start_time_and_command() -> None:
    me = psutil.Process(os.getpid())
    assert _entry(me.pid, me.cmdline(), me.create_time()).matches_live_process()
    assert not _entry(me.pid, me.cmdline(), me.create_time() - 10).matches_live_process()
    assert not _entry(me.pid, ["/bin/redis-server"], me.create_time()).matches_live_process()
    # A server that rewrote its title is still recognised by its executable's name.
    assert _entry(me.pid, [sys.executable, "x"], me.create_time()).matches_live_process() == (
        Path(me.cmdline()[0]).name == Path(sys.executable).name
    )


def test_registry_round_trip(infra_state_dir: Path) -> None:
    me = psutil.Process(os.getpid())
    entry = _entry(me.pid, me.cmdline(), me.create_time())
    registry.register(entry)
    assert registry.load(me.pid) == entry
    (infra_state_dir / "pids" / "garbage.json").write_text("{not json")
    assert registry.entries() == [entry]  # torn files are dropped, never block a run
    assert registry.clean_stale() == []  # owner (this process) alive: untouched
    registry.unregister(me.pid)
    assert registry.entries() == []
