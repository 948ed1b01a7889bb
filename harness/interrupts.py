"""Two-stage Ctrl-C: the first stops the load and lets the results be written, the second aborts.

A user who presses Ctrl-C during a run wants what was measured so far, so the first press only
asks the run to stop (no new ops, drain, write); a second press is the way out of a hung drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable


class GracefulSigint:
    """Install on the running loop for the length of a run; `remove` when the run is over."""

    def __init__(self, message: str, on_first: Callable[[], None]) -> None:
        self.message = message
        self.on_first = on_first
        self.presses = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or no signals
            self._loop.add_signal_handler(signal.SIGINT, self._pressed)

    def remove(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.remove_signal_handler(signal.SIGINT)
            self._loop = None

    def _pressed(self) -> None:
        self.presses += 1
        if self.presses == 1:
            print(self.message, file=sys.stderr)
            self.on_first()
        else:
            self.remove()
            raise KeyboardInterrupt
