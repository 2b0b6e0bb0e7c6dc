"""Polling for a condition in tests that watch another process (a run, a drain, a monitor).

Why polling: the condition lives in another process's files (SQLite rows,
log lines), so there is no event to wait on; a short poll with a deadline
and a message naming what was awaited is the honest substitute for a sleep.
"""
from __future__ import annotations

import time
from typing import Callable

POLL_S = 0.1


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> None:
    """Return as soon as ``cond()`` is true; raise ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


__all__ = ["wait_for"]
