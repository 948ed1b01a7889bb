"""`python -m harness.locust.afterrun RUN_DIR`: the CLI's after-run steps (the HTML report and
summary.md, by the `edabench.after_run` entry points) for a run a Locust master wrote.

A process of its own: the master runs on gevent and must keep answering its workers'
heartbeats while a report is built. Prints each file made, one per line.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    from harness.plugins import after_run

    for path in after_run(Path(sys.argv[1])):
        print(path)


if __name__ == "__main__":
    main()
