"""One error type for everything infra raises, so callers catch a single thing."""

from __future__ import annotations


class StackError(RuntimeError):
    """A service could not be started, reached or stopped; the message says which and why."""
