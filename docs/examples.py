"""Regenerate README's worked examples from real runs: `python -m docs.examples [NAME ...]`.

Each example is run as a user would run it (the `edabench` command, in this checkout), its output
is spliced into README.md between `<!-- example:NAME -->` markers, with the command, the machine
and its load average before the run: these machines are shared, so a figure is only worth its
context. Names: http, kafka, bank (default: all).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
WIDTH = "112"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _echo_server() -> Iterator[str]:
    """The echo server standing in for "your service": 20 ms, frozen 0.5 s every 4 s."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "targets.echo.server", "--http-port", str(port), "--base-ms", "20",
                             "--stall-every-s", "4", "--stall-for-s", "0.5"], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if not proc.stdout.readline().startswith(b"ready"):
            raise RuntimeError("the echo server did not start")
        yield f"http://127.0.0.1:{port}/echo"
    finally:
        proc.terminate()
        proc.wait(10)


def _run(args: list[str], shown: str, runs: Path) -> str:
    load = os.getloadavg()[0]
    env = {**os.environ, "COLUMNS": WIDTH}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", *args, "--runs-dir", str(runs)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
    text = "\n".join(lines).replace(str(runs), "runs")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    return (f"$ {shown}\n{text}\n(exit code {done.returncode}; {os.cpu_count()} cores, load average {load:.1f} "
            f"before the run, {stamp})")


def _splice(name: str, body: str) -> None:
    text = README.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- example:{name} -->\n)```\n.*?```\n(<!-- /example:{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no example:{name} markers")
    README.write_text(pattern.sub(lambda m: f"{m.group(1)}```\n{body}\n```\n{m.group(2)}", text), encoding="utf-8")


def main(names: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="edabench-examples-") as tmp:
        runs = Path(tmp)
        for name in names or ["http", "kafka", "bank"]:
            if name == "http":
                with _echo_server() as url:
                    time.sleep(0.5)
                    body = _run(["workloads/http-url.toml", "-o", f"url={url}", "--no-report"],
                                "edabench run workloads/http-url.toml -o url=http://127.0.0.1:8080/echo", runs)
            elif name == "kafka":
                body = _run(["workloads/kafka-pair.toml", "--no-report"], "edabench run workloads/kafka-pair.toml",
                            runs)
            elif name == "bank":
                body = _run(["workloads/bank-smoke.toml", "--no-report"], "edabench run workloads/bank-smoke.toml",
                            runs)
            else:
                raise SystemExit(f"unknown example {name!r}")
            _splice(name, body)
            print(f"README.md: example {name} regenerated")


if __name__ == "__main__":
    main(sys.argv[1:])
