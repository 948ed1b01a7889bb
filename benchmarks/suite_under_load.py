"""The default suite, N times in a row, while two busy loops load the machine.

    python -m benchmarks.suite_under_load [--runs 5] [--busy 2] [--logs DIR] [-- PYTEST ARGS]

A test that fails on a busy machine is a defect: this is how to find one. The busy loops
(`python -c "while 1: pass"`) are started here and stopped by PID when the runs end, whatever
happens. Prints one line per run (exit code, duration, passed/failed counts, the load average at
its end) and exits 1 if any run failed. With --logs, each run's full pytest output is kept as
DIR/run-N.log, so a failure seen once can be read afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--busy", type=int, default=2)
    p.add_argument("--logs", help="keep each run's pytest output in this directory")
    p.add_argument("pytest_args", nargs="*")
    a = p.parse_args(argv)
    busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(a.busy)]
    failed = 0
    try:
        for i in range(1, a.runs + 1):
            t0 = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *a.pytest_args],
                                  capture_output=True, text=True)
            took = time.monotonic() - t0
            if a.logs:
                os.makedirs(a.logs, exist_ok=True)
                with open(os.path.join(a.logs, f"run-{i}.log"), "w") as log:
                    log.write(done.stdout + done.stderr)
            tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
            counts = re.sub(r"=+", "", tail).strip()
            print(f"run {i}: exit {done.returncode}, {took:.0f} s, {counts}, load average {os.getloadavg()[0]:.1f}",
                  flush=True)
            if done.returncode != 0:
                failed += 1
                for line in done.stdout.splitlines():
                    if line.startswith(("FAILED", "ERROR")):
                        print("   ", line, flush=True)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
