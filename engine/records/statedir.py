"""The state directory: where the results store, run directories and credential profiles live, and its lock.

One owner for the layout, so no other module spells these names::

    STATE/
      results.sqlite   the results store (every run)
      drover.lock      held by the one run or soak using this directory
      runs/RUN_ID/     one run directory each (see engine.records.rundir)
      profiles/...     persistent browser profiles per credential and worker

Why one run at a time per state directory: credential profiles
(``profiles/<credential>/w<N>``) are per worker index, not per run, and
Chromium refuses a profile another live browser has open — so two runs on
one directory made each other's browser launches fail, while each run's
credential locks (per run) could not see the other run's holders.  The
lock is a filelock (``flock``): the forked workers inherit it, so it is
held until the last process of the run has gone, even after a supervisor
SIGKILL; a resume waits a little for those to finish dying.
"""
from __future__ import annotations

import os

import filelock

from engine.errors import StateBusy

STORE_FILE = "results.sqlite"
LOCK_FILE = "drover.lock"
RUNS_DIR = "runs"
PROFILES_DIR = "profiles"


def store_path(state_dir: str) -> str:
    return os.path.join(state_dir, STORE_FILE)


def runs_dir(state_dir: str) -> str:
    return os.path.join(state_dir, RUNS_DIR)


def profiles_dir(state_dir: str) -> str:
    return os.path.join(state_dir, PROFILES_DIR)


def acquire_state(state_dir: str, *, wait: float = 0.0, what: str = "run") -> filelock.BaseFileLock:
    """Take the state directory for one run or soak; :class:`StateBusy` when another holds it.

    The caller releases the returned lock when its run is over.
    """
    os.makedirs(state_dir, exist_ok=True)
    lock = filelock.FileLock(os.path.join(state_dir, LOCK_FILE), thread_local=False)
    try:
        lock.acquire(timeout=wait)
    except filelock.Timeout as exc:
        raise StateBusy(f"another soak or run is using the state directory {state_dir} ({LOCK_FILE} is held); "
                        f"wait for it to finish, or give this {what} its own --state-dir") from exc
    return lock


__all__ = ["STORE_FILE", "LOCK_FILE", "RUNS_DIR", "PROFILES_DIR", "store_path", "runs_dir", "profiles_dir",
           "acquire_state"]
