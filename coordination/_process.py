"""Who a process is, in a way that survives pid reuse.

Why: a pid alone is not an identity.  After a worker dies the kernel may
hand its pid to an unrelated process, and a reclaim sweep that only asked
"is pid 4711 alive?" would then keep a dead worker's slot forever.  A pid
together with the process start time names exactly one process in the life
of the machine.

The start time is the kernel's start tick of the process, in seconds since
boot (field 22 of ``/proc/PID/stat``), never the wall-clock form that
``psutil.Process.create_time`` gives: that adds the boot time, which the
kernel derives from the wall clock, so a clock step (NTP, a VM restored or
re-synced) shifts it by whole seconds and every live process would suddenly
look like another one — a sweep would take a running worker's slot.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

# The start tick has the resolution of one clock tick (10 ms on Linux) and is
# computed identically by every observer, so anything beyond float noise
# means a different process.
START_TOLERANCE = 1e-3
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    cached = ProcessIdentity(pid, start_time_of(pid))
    _current = cached
    return cached


def _stat(pid: int) -> tuple[str, float]:
    """``/proc/PID/stat``: the state letter and the start tick in seconds since boot.

    Read here rather than through psutil, whose public ``create_time`` is the
    wall-clock form only.  The command name (field 2) may hold spaces and
    parentheses, so the fields are counted from its last ``)``.
    """
    with open(f"/proc/{pid}/stat", "rb") as fh:
        rest = fh.read().rsplit(b")", 1)[1].split()
    return rest[0].decode(), int(rest[19]) / _CLOCK_TICKS  # fields 3 (state) and 22 (starttime)


def start_time_of(pid: int) -> float:
    """The process's start, in seconds since boot: unaffected by wall-clock changes (see the module doc)."""
    try:
        return _stat(pid)[1]
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise psutil.NoSuchProcess(pid) from exc


def process_age() -> float:
    """Seconds this process has been running, on the same since-boot clock as its start tick (no wall clock)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) - current_identity().start_time


def is_alive(pid: int, start_time: float) -> bool:
    """True unless the process is provably gone: no such pid, a zombie, or the pid now names another process.

    Access denied (a process of another user) counts as alive: a sweep must
    never take something away from a process it could not prove dead.
    """
    if pid <= 0:
        return False
    try:
        state, started = _stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return abs(started - start_time) <= START_TOLERANCE and state != "Z"


__all__ = ["ProcessIdentity", "current_identity", "is_alive", "start_time_of", "START_TOLERANCE"]
