"""The harness's own ceiling: README's do-nothing driver, held open-loop, 1 and 2 generator processes.

    python -m benchmarks.engine_rate [--out engine.json] [--seconds 4]

1. `fixed`: one process at 400,000 ops/s for `--seconds` (the engine issue's goal: held with
   schedule-lag p99 < 10 ms);
2. `max_1` / `max_2`: the highest constant rate held by 1 and by 2 processes (stepped up by 1.4x,
   bisected twice): sent and completed >= 95% of the target, nothing failed, schedule-lag p99 of
   the measured window <= 10 ms. The ratio max_2 / max_1 is the scaling (2 cores here, shared with
   the parent that collects). CPU per op is the generator processes' own CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import Step, find_max_rate, machine, ratio, step_from_outcome, table, write_json
from benchmarks.produce_driver import NULL_TARGET
from harness.engine.runner import RunOptions, execute
from harness.loop import run
from harness.plan import make_plan
from harness.spec import parse_spec


async def null_step(rate: float, processes: int, seconds: int, runs: Path, warmup_s: int = 1) -> Step:
    spec = parse_spec({
        "name": f"bench-null-{processes}p-{int(rate)}", "target": NULL_TARGET, "duration_s": seconds,
        "warmup_s": warmup_s, "timeout_s": 5, "drain_timeout_s": 2, "processes": processes,
        "rate": {"rate": rate}, "ops": [{"name": "op"}],
        "slo": {"check_generator": False},
    })
    outcome = await execute(make_plan(spec), RunOptions(runs_root=runs, isolate=True,
                                                        command=["benchmarks.engine_rate"]))
    return step_from_outcome(rate, outcome, outcome.summary["generator"]["cpu_s"], warmup_s, seconds,
                             run_dir=str(outcome.run_dir))


async def bench(seconds: int = 4, work: Path | None = None, log: Any = print, start: float = 100_000.0,
                ceiling: float = 3_000_000.0, refine: int = 2) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        runs = work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-engine-")))
        before = machine()
        fixed = await null_step(400_000.0, 1, seconds, runs)
        log(f"fixed 400,000/s, 1 process: sent {fixed.sent_rate:,.0f}/s, lag p99 {fixed.lag_p99_us} us, "
            f"{'held' if fixed.passed else 'NOT held'}")
        result: dict[str, Any] = {"fixed_400k": fixed.as_dict()}
        for processes in (1, 2):
            async def step(rate: float, p: int = processes) -> Step:
                s = await null_step(rate, p, seconds, runs)
                log(f"{p} process(es) at {rate:,.0f}/s: sent {s.sent_rate:,.0f}/s, lag p99 {s.lag_p99_us} us, "
                    f"{'pass' if s.passed else 'FAIL'}")
                return s

            best, steps = await find_max_rate(step, start, 1.4, refine, ceiling)
            at_best = next((s for s in steps if s.rate == best), None)
            result[f"max_{processes}"] = {"max_rate": best, "cpu_us_per_op": at_best.cpu_us_per_op if at_best else None,
                                          "steps": [s.as_dict() for s in steps]}
    result["scaling_2_vs_1"] = ratio(result["max_2"]["max_rate"], result["max_1"]["max_rate"])
    return {"benchmark": "engine_rate", "driver": NULL_TARGET, "seconds": seconds, "machine_before": before,
            "machine_after": machine(), **result}


def render(r: dict[str, Any]) -> str:
    f = r["fixed_400k"]
    rows = [
        ["1 process at 400,000/s", f["sent_rate"], f["lag_p99_us"], f["cpu_us_per_op"],
         "held" if f["passed"] else "no"],
        ["max held, 1 process", r["max_1"]["max_rate"], None, r["max_1"]["cpu_us_per_op"], ""],
        ["max held, 2 processes", r["max_2"]["max_rate"], None, r["max_2"]["cpu_us_per_op"],
         f"x{r['scaling_2_vs_1']:.2f}" if r["scaling_2_vs_1"] else ""],
    ]
    return table(["null driver", "ops/s", "lag p99 us", "CPU us/op", ""], rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None)
    p.add_argument("--seconds", type=int, default=4)
    p.add_argument("--work", default=None, help="keep run directories here")
    a = p.parse_args(argv)
    work = Path(a.work) if a.work else None
    if work:
        work.mkdir(parents=True, exist_ok=True)
    result = run(bench(a.seconds, work))
    print(render(result))
    if a.out:
        write_json(a.out, result)


if __name__ == "__main__":
    main()
