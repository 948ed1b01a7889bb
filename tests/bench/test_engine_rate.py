"""Smoke test of the engine benchmark: a tiny version runs end to end and yields its figures.

Numbers are not asserted (they live in docs/benchmarks.md, measured by `python -m benchmarks.engine_rate`);
only that the fixed run, both searches and the scaling ratio are computed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.engine_rate import bench, render
from harness.loop import run


def test_engine_benchmark_runs_and_computes_the_scaling(tmp_path: Path) -> None:
    result = run(bench(seconds=1, work=tmp_path, log=lambda _msg: None, start=1000.0, ceiling=2000.0, refine=0))
    assert result["fixed_400k"]["rate"] == 400_000
    for key in ("max_1", "max_2"):
        assert result[key]["max_rate"] and result[key]["steps"], key
    assert result["scaling_2_vs_1"] is not None
    assert "max held, 2 processes" in render(result)
