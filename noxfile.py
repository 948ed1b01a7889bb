"""Sessions: tests, lint, bench (pytest-benchmark), perf (scenarios with their gates), locust (web UI)."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# Perf scenarios: (workload, extra `edabench run` arguments). `--quick` runs the CI-sized ones only.
QUICK = [
    ("workloads/echo-http.toml", []),
    ("workloads/bank-smoke.toml", []),
    ("workloads/cart-smoke.toml", []),
]
FULL = [
    ("workloads/echo-kafka.toml", []),
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
]


@nox.session
def tests(session: nox.Session) -> None:
    """The default suite: unit, integration (embedded and machine services), truth tests."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Micro-benchmarks (pytest-benchmark); results saved under .benchmarks/ for comparison."""
    session.install("-e", ".[test,bench]")
    session.run("pytest", "tests/bench", "--benchmark-enable", "--benchmark-autosave",
                "--benchmark-columns=min,median,max,ops", "-p", "no:randomly", *session.posargs)


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
