"""Read-only views of the results store for a live monitor: one consistent read transaction per look.

Why a second connection type: ``monitor`` must never write (it runs
beside a live batch, often as another user), so it opens the database
read-only (``mode=ro``); the SQL it needs lives here, beside the schema
(:mod:`engine.records.schema`), not in the command.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import orjson

from engine.errors import ResultsStoreError
from engine.records.schema import RunRecord


@dataclass(frozen=True, slots=True)
class CurrentJob:
    """An attempt that has started and not ended: what a worker is doing now."""

    worker: str
    job_id: str
    attempt: int
    started_at: float


@dataclass(frozen=True, slots=True)
class StoreView:
    run: RunRecord
    jobs: int
    passed: int
    failed: int
    attempts: int
    retries: int
    interrupted: int
    lost: int
    recent: int  # final outcomes recorded within the window
    done_by_worker: dict[str, int]
    current: tuple[CurrentJob, ...]

    @property
    def done(self) -> int:
        return self.passed + self.failed

    @property
    def pending(self) -> int:
        return self.jobs - self.done


class StateReader:
    """Read-only queries on the results store (one consistent read transaction per look)."""

    def __init__(self, path: str) -> None:
        self.path = path
        if not os.path.isfile(path):
            raise ResultsStoreError(f"no results store at {path} (wrong --state-dir?)")
        try:
            self._db = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=10.0,
                                       isolation_level=None)
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"cannot open results store {path} to read: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "StateReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resolve(self, run_id: str) -> str:
        try:
            if run_id == "last":
                row = self._db.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
                if row is None:
                    raise ResultsStoreError(f"no runs in {self.path}")
                return row[0]
            if self._db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise ResultsStoreError(f"no run {run_id!r} in {self.path}")
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"results store {self.path}: {exc}") from exc
        return run_id

    def next_attempt(self, run_id: str, job_id: str) -> int:
        """The job's next attempt number (as :meth:`ResultsStore.next_attempt`, read-only)."""
        try:
            row = self._db.execute("SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE run_id = ? AND job_id = ?",
                                   (run_id, job_id)).fetchone()
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"results store {self.path}: {exc}") from exc
        return int(row[0]) + 1

    def look(self, run_id: str, window: float, now: float) -> StoreView:
        db = self._db
        try:
            db.execute("BEGIN")
            try:
                row = db.execute("SELECT run_id, batch, mode, workers, started_at, finished_at, status, run_dir, "
                                 "settings FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if row is None:
                    raise ResultsStoreError(f"no run {run_id!r} in {self.path}")
                run = RunRecord(*row[:8], orjson.loads(row[8]))
                jobs = db.execute("SELECT COUNT(*) FROM jobs WHERE run_id = ?", (run_id,)).fetchone()[0]
                finals = dict(db.execute("SELECT outcome, COUNT(*) FROM outcomes WHERE run_id = ? GROUP BY outcome",
                                         (run_id,)).fetchall())
                by_attempt = dict(db.execute("SELECT COALESCE(outcome, 'open'), COUNT(*) FROM attempts "
                                             "WHERE run_id = ? GROUP BY 1", (run_id,)).fetchall())
                until = run.finished_at or now  # a finished run: its last window, not the one before now
                recent = db.execute("SELECT COUNT(*) FROM outcomes WHERE run_id = ? AND recorded_at >= ?",
                                    (run_id, until - window)).fetchone()[0]
                done_by = dict(db.execute("SELECT worker, COUNT(*) FROM outcomes WHERE run_id = ? GROUP BY worker",
                                          (run_id,)).fetchall())
                current = tuple(CurrentJob(*r) for r in db.execute(
                    "SELECT worker, job_id, attempt, started_at FROM attempts WHERE run_id = ? AND ended_at IS NULL "
                    "ORDER BY started_at", (run_id,)))
            finally:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"results store {self.path}: {exc}") from exc
        return StoreView(run=run, jobs=jobs, passed=finals.get("passed", 0), failed=finals.get("failed", 0),
                         attempts=sum(by_attempt.values()), retries=by_attempt.get("retry", 0),
                         interrupted=by_attempt.get("interrupted", 0), lost=by_attempt.get("lost", 0),
                         recent=recent, done_by_worker=done_by, current=current)


__all__ = ["StateReader", "StoreView", "CurrentJob"]
