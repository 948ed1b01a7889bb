"""The Locust front end's parts, without processes: Locust's stats fed in bulk, the chart, what a
locustfile may declare and import, the schedule of a test run until Stop."""

from __future__ import annotations

import ast
import importlib
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from harness.locust.chart import render
from harness.locust.wire import OPEN_ENDED_S, Session
from harness.locust.workload import locustfiles_dir, resolve
from harness.results.hdr import Sparse, bucket_indices, new_histogram, value_table
from harness.results.messages import FinalReport, IntervalReport, KindInterval
from harness.spec import SpecError

FORBIDDEN = ("confluent_kafka", "aiokafka", "asyncpg", "targets")


def _unpatched(name: str) -> ModuleType:
    """Import a module that imports Locust without gevent's monkey-patching of this test runner
    (the environment variable is Locust's own switch; it is not left for processes started later)."""
    before = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
    try:
        return importlib.import_module(name)
    finally:
        if before is None:
            del os.environ["LOCUST_SKIP_MONKEY_PATCH"]
        else:
            os.environ["LOCUST_SKIP_MONKEY_PATCH"] = before


def _stats() -> Any:
    return _unpatched("locust.stats").RequestStats()


def _feed(*args: Any) -> Any:
    return _unpatched("harness.locust.feed").LocustFeed(*args)


def _interval(t: int, values_us: list[int], counts: dict[str, int]) -> IntervalReport:
    part = Sparse.of(np.array(values_us, dtype=np.int64))
    return IntervalReport(0, t, False, counts, 0, {"echo": KindInterval(part, part)})


def test_locust_stats_fed_in_bulk_equal_locust_timing_each_op_itself() -> None:
    values = [900, 1500, 2300, 15_000, 15_100, 99_000, 250_000, 1_200_000, 3_000_000] * 7
    fed = _stats()
    _feed(fed, "echo", ["echo"], 0.0, time.time() - 5).interval(_interval(1, values, {}))
    logged = _stats()
    as_recorded = value_table(new_histogram())[bucket_indices(np.array(values))] / 1000.0  # HDR's bucket values
    for ms in as_recorded.tolist():
        logged.log_request("echo", "echo", ms, 0)
    ours, theirs = fed.get("echo", "echo"), logged.get("echo", "echo")
    assert dict(ours.response_times) == dict(theirs.response_times)
    assert ours.num_requests == theirs.num_requests == len(values)
    assert ours.total_response_time == pytest.approx(theirs.total_response_time)
    for q in (0.5, 0.9, 0.95, 0.99, 1.0):
        assert ours.get_response_time_percentile(q) == theirs.get_response_time_percentile(q)
    assert fed.total.num_requests == len(values)


def test_failures_count_without_a_latency_and_warm_up_is_left_out() -> None:
    stats = _stats()
    feed = _feed(stats, "bank", ["open", "deposit"], 2.0, time.time() - 10)
    feed.interval(_interval(1, [5000], {"error": 9}))  # warm-up: not in Locust's numbers
    feed.interval(_interval(2, [5000, 6000], {"error": 2, "timeout": 1, "not_sent": 1}))
    entry = stats.get("(all kinds)", "bank")  # several kinds: an interval's failures are not per kind
    assert (entry.num_requests, entry.num_none_requests, entry.num_failures) == (3, 3, 4)
    assert stats.get("echo", "bank").num_requests == 2 and stats.total.num_requests == 5
    books = {"open": {"errors": {"rejected:duplicate": 2}, "timeout": 1, "not_sent_reasons": {"in_flight_cap": 1}}}
    feed.final(FinalReport(0, books))
    assert sorted((e.name, e.error, e.occurrences) for e in stats.errors.values()) == [
        ("open", "not_sent:in_flight_cap", 1), ("open", "rejected:duplicate", 2), ("open", "timeout", 1)]


def test_the_chart_draws_each_percentile_per_second_and_escapes_nothing_it_did_not_make() -> None:
    assert "waiting for the first measured second" in render([])
    points = [{"t": t, "warmup": t < 1, "p50": 20_000, "p99": 900_000 if t == 3 else 25_000, "max": 1_000_000,
               "service_p99": 24_000} for t in range(6)]
    svg = render(points, warmup_s=1.0)
    assert svg.startswith('<svg id="edabench-chart" data-points="6"') and "http" not in svg
    assert all(f'<g data-series="{k}">' in svg for k in ("p50", "p99", "max", "service_p99"))
    assert '<g data-series="p90">' not in svg, "a percentile without values draws no line"
    assert "warm-up (not measured)" in svg and "1 s" in svg


def test_locustfiles_name_a_workload_and_import_no_client_nor_target() -> None:
    for path in sorted(locustfiles_dir().glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
            n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not [m for m in imported if m.split(".")[0] in FORBIDDEN], (path.name, imported)
    bank = resolve("bank")
    assert bank.spec.name == "bank-smoke" and bank.source.endswith("workloads/bank-smoke.toml")
    assert resolve("echo").spec.name == "echo-http"


def test_a_workload_is_a_locustfile_a_toml_or_a_url(tmp_path: Path) -> None:
    toml = resolve("workloads/cart-smoke.toml")
    assert toml.spec.target == "cart" and toml.locustfile.name == "locustfile.py"
    bare = resolve(None, host="http://127.0.0.1:9/x")
    assert bare.spec.target == "http" and bare.spec.target_options == {"url": "http://127.0.0.1:9/x"}
    literal = tmp_path / "mine.py"
    literal.write_text('EDABENCH = {"name": "mine", "target": "echo"}\n')
    assert resolve(str(literal)).spec.name == "mine"
    computed = tmp_path / "computed.py"
    computed.write_text("import os\nEDABENCH = os.environ['SPEC']\n")
    with pytest.raises(SpecError, match="literal"):
        resolve(str(computed))
    with pytest.raises(SpecError, match="no such locustfile"):
        resolve("nope")
    with pytest.raises(SpecError, match="--host"):
        resolve(None)


def test_a_test_run_until_stop_holds_its_rate_unless_the_profile_cannot() -> None:
    constant = Session(spec={"name": "c", "target": "echo", "rate": {"rate": 50}}, source="x", timed=False)
    assert constant.spec_for_test().duration_s == OPEN_ENDED_S
    assert Session(spec=constant.spec, source="x", timed=True).spec_for_test().duration_s == 30.0
    ramp = Session(spec={"name": "r", "target": "echo", "rate": {"profile": "ramp", "rate": 1, "end_rate": 9}},
                   source="x", timed=False)
    assert ramp.spec_for_test().duration_s == 30.0, "a ramp is defined over its duration: it ends there"
