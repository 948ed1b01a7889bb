"""Where a generator process's time goes: one benchmark step with py-spy on the generator child.

    python -m benchmarks.profile_step {null,produce} RATE [--seconds 8] [--out profile.txt]

Runs one step of `engine_rate` (`null`: README's do-nothing driver) or `kafka_send_rate`
(`produce`: the librdkafka transport, on a fresh embedded broker), samples the generator process
(not the parent) with `py-spy record --format raw` for the measured window, and prints the share of
samples by self time, per function and per area (harness, transport/driver, librdkafka client,
event loop; py-spy puts the time of a C call on the Python frame that makes it, so a transport's
share includes librdkafka's produce and poll). Needs py-spy (`pip install .[bench]`) and the right
to trace a child (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import psutil

from benchmarks.common import table
from harness.loop import run

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:]*)(?::\d+)?\)$")
LOOP_FRAME = "_child_main"  # the generator process's frame that runs the event loop
AREAS = (("harness/transports/", "transport (with the librdkafka calls it makes)"),
         ("harness/", "harness"), ("benchmarks/", "driver"), ("targets/", "driver"),
         ("confluent_kafka", "librdkafka client"), ("uvloop", "event loop"), ("asyncio", "event loop"))


def area(file: str) -> str:
    return next((name for key, name in AREAS if key in file), "other")


def aggregate(raw: str) -> tuple[Counter[str], Counter[str], int]:
    """Self samples per function and per area from py-spy's raw (collapsed stack) output."""
    funcs: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        leaf = stack.rsplit(";", 1)[-1]
        m = FRAME.match(leaf)
        func, file = (m["func"], m["file"]) if m else (leaf, "")
        if func == LOOP_FRAME:  # py-spy puts time inside uvloop's C code on the frame that runs the loop
            func, where = "uvloop (C: task steps, callbacks, timers, epoll)", "event loop"
        else:
            where = area(file)
        funcs[f"{func} ({Path(file).name})"] += n
        areas[where] += n
        total += n
    return funcs, areas, total


async def _generator_child(parent: psutil.Process, timeout_s: float = 30.0) -> psutil.Process:
    """The spawned generator process (multiprocessing's spawn child of this process)."""
    for _ in range(int(timeout_s / 0.1)):
        for child in parent.children(recursive=True):
            try:
                cmd = " ".join(child.cmdline())
                if "multiprocessing.spawn" in cmd:
                    return child
            except psutil.Error:
                continue
        await asyncio.sleep(0.1)
    raise RuntimeError("no generator process appeared")


async def profile(driver: str, rate: float, seconds: int, warmup_s: int = 2) -> str:
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        raise SystemExit("py-spy is not installed (pip install .[bench])")
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        work = Path(tmp)
        if driver == "null":
            from benchmarks.engine_rate import null_step

            step = asyncio.ensure_future(null_step(rate, 1, seconds, work, warmup_s=warmup_s))
        else:
            from benchmarks.kafka_send_rate import VARIANTS, fresh_step

            variant = next(v for v in VARIANTS if v.name == driver)
            step = asyncio.ensure_future(fresh_step(None, work, variant, rate, warmup_s, seconds, work, 1))
        child = await _generator_child(psutil.Process())
        await asyncio.sleep(warmup_s + 0.5)
        out = work / "raw.txt"
        proc = await asyncio.create_subprocess_exec(spy, "record", "-r", "250", "-d", str(seconds - 1), "--nonblocking",
                                                    "--format", "raw", "-o", str(out), "-p", str(child.pid),
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()
        result = await step
        raw = out.read_text() if out.exists() else ""
    funcs, areas, total = aggregate(raw)
    if not total:
        raise SystemExit("py-spy recorded nothing (can this user trace the child?)")
    head = (f"{driver} driver at {rate:,.0f}/s: sent {result.sent_rate:,.0f}/s, lag p99 {result.lag_p99_us} us, "
            f"CPU {result.cpu_us_per_op} us/op, {total} samples")
    area_rows = [[name, f"{100 * n / total:.1f}%"] for name, n in areas.most_common()]
    func_rows = [[name, f"{100 * n / total:.1f}%"] for name, n in funcs.most_common(15)]
    return "\n".join([head, "", table(["area (self time)", "share"], area_rows), "",
                      table(["function (self time)", "share"], func_rows)])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("driver", choices=["null", "produce"])
    p.add_argument("rate", type=float)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    text = run(profile(a.driver, a.rate, a.seconds))
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
