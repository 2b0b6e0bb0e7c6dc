"""How the supervisor reaches its workers: a small interface, so a second backend can carry the same loop.

The supervisor's duties — hand out jobs, notice deaths and stalls, reap,
replace, drain — do not depend on *how* a worker exists.  It talks to a
:class:`WorkerBackend`: start worker N, send it a message, wait for the next
messages and deaths, kill it, ask how long ago it last beat.  The local
backend (:mod:`engine.execution.forked`) forks processes with pipes and a
shared heartbeat array; a cluster backend implements the same verbs with
remote actors.

Messages are tuples whose first item names them (``("ready", i)``,
``("done", i, report, ...)``, ``("job", job_id)``, ``("stop",)``); the
supervisor dispatches them to ``msg_<name>`` methods.

A worker is ``consumers`` consumers to the supervisor, each announcing
``("ready", i, n)`` and reporting ``("done", ..., n)``: the local backend's
sessions (jobs at once), or the Ray backend's queue (jobs sent ahead, run
one after another; ``("started", i, n)`` says when a queued one begins).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """One thing that happened to worker ``index``: a message arrived, or the worker is gone."""

    index: int
    message: tuple | None = None  # None: the worker died (or its channel closed)


@dataclass(frozen=True, slots=True)
class Reclaim:
    """A lease (session slot, credential) taken back from a dead holder, with the new epoch that fences it."""

    resource: str       # "slot:3", "cred:site/alice"
    holder: str         # who held it ("w3", "pid 1234")
    old_epoch: int
    new_epoch: int
    detail: dict[str, Any]  # backend-specific facts for the audit record


@dataclass(frozen=True, slots=True)
class SafetyTotals:
    unowned_uses: int
    invalid_transitions: int


class WorkerBackend(Protocol):
    consumers: int  # consumers per worker (see the module docstring); the supervisor keeps a book for each

    def open(self, run_dir: Path, epoch_floor: int) -> None:
        """Create the run's coordination state (leases/slots start at ``epoch_floor``) before any start()."""

    def reclaim(self) -> list[Reclaim]:
        """Take back every lease whose holder is dead, each with a new, higher epoch."""

    def totals(self) -> SafetyTotals:
        """Unowned session uses and invalid ownership transitions counted so far."""

    def contention(self) -> Any:
        """A :class:`coordination.ContentionSnapshot` of lock waits and retries per worker."""

    def start(self, index: int) -> int:
        """Start worker ``index`` (a replacement reuses the index); returns its pid (0 if it has none here)."""

    def send(self, index: int, message: tuple) -> bool:
        """Send a message; False when the worker's channel is already closed."""

    def poll(self, timeout: float) -> list[WorkerEvent]:
        """Wait up to ``timeout`` s for messages and deaths of the started workers."""

    def alive(self, index: int) -> bool: ...

    def pid(self, index: int) -> int: ...

    def exit_code(self, index: int) -> int | None: ...

    def heartbeat_age(self, index: int) -> float:
        """Seconds since worker ``index`` last showed it is alive."""

    def kill(self, index: int) -> None:
        """Stop it now (SIGKILL or the backend's equivalent)."""

    def terminate(self, index: int) -> None:
        """Ask it to stop after its current job."""

    def join(self, index: int, timeout: float) -> None:
        """Wait up to ``timeout`` s for worker ``index`` to exit."""

    def forget(self, index: int, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` s for a dead or stopped worker to be gone, then drop it."""

    def indices(self) -> list[int]: ...

    def close(self) -> None:
        """Kill whatever is left and release the backend's resources."""


Message = tuple[Any, ...]

__all__ = ["WorkerBackend", "WorkerEvent", "Reclaim", "SafetyTotals", "Message"]
