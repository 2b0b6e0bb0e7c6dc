"""The supervisor's books: what it knows of each worker and session, the run's progress and its outcome.

Split from :mod:`engine.execution.supervisor` so the loop reads as duties
and messages; these are plain records the progress bar, the run summary
and the soak read too.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.execution.executor import JobReport
from engine.execution.scheduling import WorkerView


@dataclass(slots=True)
class SessionBook:
    """The supervisor's book on one session of a worker: the job it runs, and the profile it has open."""

    number: int
    job: str | None = None
    job_started: float = 0.0
    credential: str | None = None  # of its last job: that profile is what the session's browser has open


@dataclass(slots=True)
class WorkerHandle:
    """The supervisor's book on one worker (how the worker exists is the backend's business)."""

    index: int
    pid: int = 0
    jobs_done: int = 0
    busy_seconds: float = 0.0
    forced_reconnects: int = 0
    sessions: list[SessionBook] = field(default_factory=lambda: [SessionBook(0)])

    @property
    def job(self) -> str | None:
        """A job the worker runs (its first busy session's), None when every session is idle."""
        return next((b.job for b in self.sessions if b.job is not None), None)

    @property
    def job_started(self) -> float:
        return next((b.job_started for b in self.sessions if b.job is not None), 0.0)

    def running(self) -> list[SessionBook]:
        return [b for b in self.sessions if b.job is not None]

    def view(self, number: int = 0) -> WorkerView:
        """What the scheduler sees of one session: a consumer with an index of its own (its table slot)."""
        book = self.sessions[number]
        return WorkerView(self.index * len(self.sessions) + number, book.credential, book.job is not None)


@dataclass(slots=True)
class Progress:
    total: int
    done: int = 0
    passed: int = 0
    failed: int = 0
    retries: int = 0
    running: int = 0
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(slots=True)
class RunOutcome:
    run_id: str
    status: str  # completed | interrupted
    progress: Progress
    reports: list[JobReport]
    per_worker: dict[str, dict[str, float]]
    lost_attempts: int
    reclaimed_slots: int
    duplicates: int
    contention: Any
    table_totals: Any
    telemetry_lost: dict[str, int]


__all__ = ["SessionBook", "WorkerHandle", "Progress", "RunOutcome"]
