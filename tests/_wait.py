"""Polling for a condition in tests that watch another process (a run, a drain, a monitor).

Why polling: the condition lives in another process's files (SQLite rows,
log lines), so there is no event to wait on; a short poll with a deadline
and a message naming what was awaited is the honest substitute for a sleep.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

POLL_S = 0.1
T = TypeVar("T")


def wait_for(cond: Callable[[], T], timeout: float, what: str) -> T:
    """Return ``cond()``'s first true value as soon as there is one; raise ``AssertionError`` naming ``what``
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


__all__ = ["wait_for"]
