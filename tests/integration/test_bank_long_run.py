"""Long runs of the bank pipeline hear every outcome, and a driver that goes deaf says so at once.

Before: after ~2-4 minutes every op was booked a timeout while the ledger applied everything (the
embedded broker's fetch cost grew with the run, the outcome reader stalled, nothing supervised it),
and the run reported thousands of applied events as lost. Now the reader is supervised and
watched, and "not heard" is never reported as "lost".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.engine.runner import RunOptions, RunOutcome, execute
from harness.loop import run
from harness.plan import Plan, make_plan
from harness.protocol import DriverContext, check_driver
from harness.spec import load_spec, parse_spec
from targets.bank.driver import BankDriver
from targets.bank.outcomes import OutcomeHandler
from workloads.bank.generator import BankWorkload

REPO = Path(__file__).resolve().parents[2]
FAIL_AFTER = 150  # outcome records handled before the failure is injected


class _Breaking(OutcomeHandler):
    mode = "raise"

    def on_records(self, records: list[Any]) -> None:
        self.seen = getattr(self, "seen", 0) + len(records)
        if self.seen > FAIL_AFTER:
            if self.mode == "raise":
                raise ConnectionResetError("the reader's connection to the broker was reset")
            return  # deaf: records arrive and are dropped without a word
        super().on_records(records)


class ReaderDiesBank(BankDriver):
    """The bank driver whose outcome reader raises mid-run (as a failed fetch would)."""

    handler_mode = "raise"

    async def start(self, ctx: DriverContext) -> None:
        import targets.bank.driver as module

        original = module.OutcomeHandler
        mode = self.handler_mode

        class Handler(_Breaking):
            pass

        Handler.mode = mode
        module.OutcomeHandler = Handler  # type: ignore[misc]
        try:
            await super().start(ctx)
        finally:
            module.OutcomeHandler = original  # type: ignore[misc]


class ReaderGoesDeafBank(ReaderDiesBank):
    handler_mode = "deaf"


def _spec(**over: Any) -> Any:
    data: dict[str, Any] = {
        "name": "bank-deaf", "target": "bank", "workload": "bank", "duration_s": 20, "warmup_s": 1,
        "timeout_s": 3, "drain_timeout_s": 5, "rate": {"rate": 50},
        "ops": [{"name": "open", "weight": 20}, {"name": "deposit", "weight": 50},
                {"name": "withdrawal", "weight": 30}],
        "target_options": {"partitions": 1, "instances": 1, "stall_s": 3, "lag_interval_s": 0},
        "workload_options": {"verify_settle_s": 5},
    }
    data.update(over)
    return parse_spec(data)


def _run(tmp_path: Path, driver: type[BankDriver], services: dict[str, str | None]) -> RunOutcome:
    spec = _spec()
    plan = Plan(spec, check_driver(driver), BankWorkload, "test")
    return run(execute(plan, RunOptions(runs_root=tmp_path, services=services)))


def _lost(problems: list[str]) -> int:
    """How many events the run calls lost (absent from the ledger)."""
    total = 0
    for p in problems:
        m = re.search(r"(\d+) are not \(lost\)", p) or re.search(r"^(\d+) events sent but absent", p)
        if m:
            total += int(m.group(1))
    return total


def test_a_reader_that_fails_stops_the_run_at_once_naming_it_and_nothing_is_called_lost(
        tmp_path: Path, embedded_kafka: str, embedded_postgres: str) -> None:
    outcome = _run(tmp_path, ReaderDiesBank, {"kafka": embedded_kafka, "postgres": embedded_postgres})
    s = outcome.summary
    problems = s["verify"]["problems"]
    assert any("bank outcome reader" in p and "ConnectionResetError" in p for p in problems), problems
    assert s["interrupted"], "the schedule stops as soon as the reader fails"
    assert s["measured_s"] < 20
    assert _lost(problems) == 0, problems
    assert s["books_balanced"]


def test_a_reader_that_goes_deaf_is_caught_by_the_watchdog_and_nothing_is_called_lost(
        tmp_path: Path, embedded_kafka: str, embedded_postgres: str) -> None:
    outcome = _run(tmp_path, ReaderGoesDeafBank, {"kafka": embedded_kafka, "postgres": embedded_postgres})
    s = outcome.summary
    problems = s["verify"]["problems"]
    assert any("bank outcome watchdog" in p and "received nothing" in p for p in problems), problems
    assert s["interrupted"]
    assert _lost(problems) == 0, problems
    assert any("are in the ledger (applied, but not heard" in p for p in problems), problems


@pytest.mark.slow  # 3 minutes: `nox -s slow`; `nox -s perf` runs the whole 5-minute bank-sustained
def test_three_minutes_at_50_events_per_second_hears_every_outcome(tmp_path: Path) -> None:
    """The duration that failed every time before: every op ok, books balanced, verification clean."""
    spec = load_spec(REPO / "workloads" / "bank-sustained.toml").with_overrides(duration_s=180, warmup_s=5)
    outcome = run(execute(make_plan(spec), RunOptions(runs_root=tmp_path, isolate=True)))
    s = outcome.summary
    assert s["verify"]["problems"] == []
    assert s["books_balanced"]
    counts = s["overall"]["counts"]
    assert counts["ok"] == counts["scheduled"] == 50 * 185
    assert s["generator"]["kept_up"]


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
