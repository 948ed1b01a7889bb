"""One seam for both front ends: `edabench locust` and `edabench run` keep the same books.

The same spec runs once through `edabench run` and once through `edabench locust` (a Locust master
and a worker hosting the generator). Both send the same arrival schedule through the same target
driver, found by the same name, so their books are the same: every op scheduled, warm-up and
measured window alike, ends with the same outcome.

The bank workload picks each event from the ledger it has seen acknowledged so far (a transfer
needs two open accounts), so how the schedule splits among event kinds follows the pipeline's
timing, in two `edabench run`s as much as here; the books of the whole run are compared, and the
workload's own ledger check (`verify`) must pass in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.locust_run import edabench, only_run, read

ECHO = """name = "same-books"
target = "echo"
duration_s = 2
warmup_s = 1
[rate]
rate = 80
[[ops]]
name = "echo"
[target_options]
base_ms = 5
[slo]
check_generator = false
"""


def _both(tmp_path: Path, run: list[str], locust: list[str]) -> tuple[dict[str, Any], ...]:
    """Summary and run.json of `edabench run RUN...` and of `edabench locust LOCUST...`."""
    out = []
    for front, command in (("run", ["run", *run]), ("locust", ["locust", *locust, "--workers", "1"])):
        runs = tmp_path / front
        code, text = edabench([*command, "--runs-dir", str(runs), "--no-report", "--no-gate"],
                              tmp_path / f"{front}.log", timeout_s=300)
        run_dir = only_run(runs)
        summary = read(run_dir / "summary.json")
        assert summary["books_balanced"] and not summary["verify"]["problems"], (front, code, text[-3000:])
        out += [summary, read(run_dir / "run.json")]
    return tuple(out)


def test_echo_books_are_the_same_through_both_front_ends(tmp_path: Path) -> None:
    spec = tmp_path / "same-books.toml"
    spec.write_text(ECHO)
    ran, ran_json, locust, locust_json = _both(tmp_path, [str(spec)], [str(spec)])
    assert ran_json["spec"] == locust_json["spec"] and locust_json["front_end"] == "locust"
    assert {k: b["counts"] for k, b in ran["ops"].items()} == {k: b["counts"] for k, b in locust["ops"].items()}
    assert ran["ops"]["echo"]["counts"]["scheduled"] == 80 * 3


def test_bank_books_are_the_same_through_both_front_ends(tmp_path: Path) -> None:
    """`edabench locust bank` runs workloads/bank-smoke.toml with the bank driver, as `edabench run`."""
    shorter = ["--warmup", "1", "--rate", "100"]
    ran, ran_json, locust, locust_json = _both(tmp_path, ["workloads/bank-smoke.toml", "--duration", "3", *shorter],
                                               ["bank", "--run-time", "3s", *shorter])
    assert ran_json["spec"] == locust_json["spec"] and locust_json["spec"]["target"] == "bank"
    assert ran["overall"]["counts"] == locust["overall"]["counts"]
    assert ran["overall"]["counts"]["ok"] == ran["overall"]["counts"]["scheduled"] == 100 * 4
    assert ran["deliveries"].keys() == locust["deliveries"].keys()
