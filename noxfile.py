"""Sessions: tests, lint, bench, perf, truth, slow, soak, chaos, gate_noise, locust (see README, "Sessions")."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# Perf scenarios: (workload, extra `edabench run` arguments). `--quick` runs the CI-sized ones only.
QUICK = [
    ("workloads/echo-http.toml", []),
    ("workloads/bank-smoke.toml", []),
    ("workloads/cart-smoke.toml", []),
    ("workloads/kafka-pair.toml", []),
]
FULL = [
    ("workloads/echo-kafka.toml", []),
    ("workloads/kafka-ack.toml", []),
    ("workloads/bank-throughput.toml", []),
    ("workloads/bank-latency.toml", []),
    ("workloads/bank-burst.toml", []),
    ("workloads/bank-restart.toml", []),
    ("workloads/bank-idempotence.toml", []),
    ("workloads/bank-sustained.toml", []),
    ("workloads/bank-10k.toml", []),
    ("workloads/cart-seed.toml", []),
    ("workloads/cart-races.toml", []),
    ("workloads/cart-async.toml", []),
    ("workloads/cart-2k.toml", []),
    ("workloads/cart-capacity.toml", []),
]
SOAKS = ["workloads/bank-soak.toml", "workloads/cart-soak.toml"]


# Debian packages some tests drive for real (headless Chromium for the browser tests, promtool and
# prometheus for the exposition and a real scrape, wrk as the HTTP benchmark's anchor): installed
# when missing and we may (root, apt-get present).
DEBIAN_TOOLS = {"chromium": "chromium", "promtool": "prometheus", "wrk": "wrk"}


def ensure_debian_tools(session: nox.Session) -> None:
    missing = sorted({pkg for tool, pkg in DEBIAN_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.warn(f"missing {', '.join(missing)} and cannot install them here; the tests that need them fail")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, external=True, env=env)


@nox.session
def tests(session: nox.Session) -> None:
    """The default suite: unit, integration (embedded and machine services), truth, browser tests."""
    ensure_debian_tools(session)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Micro-benchmarks (pytest-benchmark, saved under .benchmarks/), then the generator benchmarks, each
    a ratio to an anchor measured in the same run: the null driver's max rate and 1 -> 2 processes, the
    Kafka produce path vs a bare librdkafka loop, the HTTP generator vs wrk and Locust (docs/benchmarks.md).
    `nox -s bench -- --micro` for the pytest-benchmark part alone."""
    session.install("-e", ".[test,bench]")
    session.run("pytest", "tests/bench", "--benchmark-enable", "--benchmark-autosave",
                "--benchmark-columns=min,median,max,ops", "-p", "no:randomly")
    if "--micro" in session.posargs:
        return
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    session.run("python", "-m", "benchmarks.engine_rate", "--out", str(out / "engine.json"))
    session.run("python", "-m", "benchmarks.kafka_send_rate", "--rounds", "1", "--out", str(out / "kafka.json"))
    session.run("python", "-m", "benchmarks.http_generator", "--rounds", "1", "--out", str(out / "http.json"))


@nox.session
def truth(session: nox.Session) -> None:
    """The echo target against its analytic truth (p50, p99, p99.9, max within 5%), where load is controlled."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/truth", "-m", "slow", "-p", "no:randomly", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """The slow integration tests: a 3-minute bank run, the seed's 60 s Gateway flow, cart scenarios."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/integration", "-m", "slow", "-p", "no:randomly", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """30-minute soaks of the bank and cart pipelines; every process's memory judged after the first minute."""
    session.install("-e", ".[test,bench]")
    failed = []
    for workload in SOAKS:
        runs = Path("runs-soak") / Path(workload).stem
        try:
            session.run("edabench", "run", workload, "--runs-dir", str(runs), *session.posargs)
        except nox.command.CommandFailed:
            failed.append(workload)
        latest = sorted(runs.iterdir())[-1] if runs.exists() and any(runs.iterdir()) else None
        if latest is not None:
            try:
                session.run("python", "-m", "benchmarks.soak_memory", str(latest))
            except nox.command.CommandFailed:
                failed.append(f"{workload} (memory)")
    if failed:
        session.error(f"soaks that failed: {', '.join(failed)}")


@nox.session
def perf(session: nox.Session) -> None:
    """Perf scenarios on the embedded stack, each gated on its SLOs. `nox -s perf -- --quick` for CI size."""
    session.install("-e", ".[test,bench]")
    quick = "--quick" in session.posargs
    scenarios = QUICK if quick else QUICK + FULL
    failed = []
    for workload, extra in scenarios:
        if not Path(workload).exists():
            session.warn(f"skipping {workload}: not present")
            continue
        try:
            session.run("edabench", "run", workload, *extra)
        except nox.command.CommandFailed:
            failed.append(workload)
    if failed:
        session.error(f"scenarios that failed their gate: {', '.join(failed)}")


@nox.session
def locust(session: nox.Session) -> None:
    """Locust's web UI on 127.0.0.1:8089 driving the echo target (pass another workload as argument)."""
    session.install("-e", ".[test]")
    workload = session.posargs[0] if session.posargs else "echo"
    session.run("edabench", "locust", workload, "--web", *session.posargs[1:])


@nox.session
def gate_noise(session: nox.Session) -> None:
    """Baseline comparison noise: false alarms over 20 unchanged echo runs, detection of a 50% slower one.

    `nox -s gate_noise -- --runs 20 --out gate_noise.json` (~7 min on 2 cores); exits 1 above one false alarm
    or on a missed detection."""
    session.install("-e", ".[test,bench]")
    session.run("python", "-m", "benchmarks.gate_noise", *session.posargs)


# The HTTP fuzz of both services: malformed paths, numbers, If-Match values, bodies and lengths (issue 12).
HTTP_FUZZ_FILES = [
    "tests/integration/test_bank_pipeline.py",
    "tests/integration/test_cart_api.py",
    "tests/integration/test_cart_limits.py",
]
HTTP_FUZZ_TESTS = "malformed or announcing or rest_api or invalid_requests or if_match or ascii_digits or shorter_than"


@nox.session
def chaos(session: nox.Session) -> None:
    """Chaos scenarios, reconciled (bank at 320 events/s: poison records of every kind, a PostgreSQL fast
    stop and restart, a SIGKILL every 10 s, a 3 s broker SIGSTOP), then the HTTP fuzz of both services.
    Arguments go to the chaos part, e.g. `nox -s chaos -- -k 2-instances`."""
    session.install("-e", ".[test]")
    failed = []
    for what, args in [
        ("chaos scenarios", ["tests/chaos", "-m", "slow", "-p", "no:randomly", "-s", *session.posargs]),
        ("HTTP fuzz", [*HTTP_FUZZ_FILES, "-p", "no:randomly", "-k", HTTP_FUZZ_TESTS]),
    ]:
        try:
            session.run("pytest", *args)
        except nox.command.CommandFailed:
            failed.append(what)
    if failed:
        session.error(f"failed: {', '.join(failed)}")
