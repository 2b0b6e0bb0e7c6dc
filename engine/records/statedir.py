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
from pathlib import Path

import filelock

from engine.errors import ResultsStoreError, StateBusy

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


SQLITE_HEADER = b"SQLite format 3\x00"


class StoreUnavailable(ResultsStoreError):
    """The state directory has no readable results store: a command that reads one cannot start.

    Bad input (exit 2 in the CLI), whichever command met it: the state
    directory named (``--state-dir``, ``DROVER_STATE_DIR``, the settings
    file or the default, said in ``origin``) is the wrong one, or the file
    is not a results store.  ``path`` is the store file, ``problem`` what
    is wrong with it; the message ends with the hint.
    """

    category = "input"

    def __init__(self, path: str, problem: str, origin: str = "") -> None:
        self.path, self.problem, self.origin = path, problem, origin
        whence = f" (state directory from {origin})" if origin else ""
        super().__init__(f"no results store at {path}{whence}: {problem}; give the state directory of a run with "
                         f"--state-dir DIR or DROVER_STATE_DIR (python -m engine config shows the one in use)")


def require_store(state_dir: str, *, origin: str = "") -> str:
    """The path of the state directory's results store, checked readable; :class:`StoreUnavailable` when it is
    missing, unreadable or not a SQLite database.  Commands that read a store call it before opening it, so
    none of them creates an empty store in a wrong directory."""
    path = store_path(state_dir)
    if not os.path.isdir(state_dir):
        raise StoreUnavailable(path, "the state directory does not exist", origin)
    if not os.path.isfile(path):
        raise StoreUnavailable(path, "no run has used this state directory", origin)
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreUnavailable(path, f"the file cannot be read: {exc.strerror}", origin) from exc
    if header != SQLITE_HEADER and (header or Path(path).stat().st_size):
        raise StoreUnavailable(path, "the file there is not a SQLite database", origin)
    return path


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
           "acquire_state", "require_store", "StoreUnavailable", "SQLITE_HEADER"]
