"""Who a process is, in a way that survives pid reuse.

Why: a pid alone is not an identity.  After a worker dies the kernel may
hand its pid to an unrelated process, and a reclaim sweep that only asked
"is pid 4711 alive?" would then keep a dead worker's slot forever.  A pid
together with the process start time (``psutil.Process.create_time``,
derived from the kernel's boot time and the process's start tick, so every
observer computes the same value) names exactly one process in the life of
the machine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

# create_time has the resolution of one clock tick (10 ms on Linux) and is
# computed identically by every observer, so anything beyond float noise
# means a different process.
START_TOLERANCE = 1e-3


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as (pid, start time): what the ownership table and the lock records store."""

    pid: int
    start_time: float

    def alive(self) -> bool:
        return is_alive(self.pid, self.start_time)


_current: ProcessIdentity | None = None


def current_identity() -> ProcessIdentity:
    """This process's identity (cached; recomputed after a fork because the pid changes)."""
    global _current
    pid = os.getpid()
    cached = _current
    if cached is not None and cached.pid == pid:
        return cached
    cached = ProcessIdentity(pid, psutil.Process(pid).create_time())
    _current = cached
    return cached


def is_alive(pid: int, start_time: float) -> bool:
    """True unless the process is provably gone: no such pid, a zombie, or the pid now names another process.

    Access denied (a process of another user) counts as alive: a sweep must
    never take something away from a process it could not prove dead.
    """
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - start_time) > START_TOLERANCE:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # includes ZombieProcess
        return False
    except psutil.AccessDenied:
        return True


__all__ = ["ProcessIdentity", "current_identity", "is_alive", "START_TOLERANCE"]
