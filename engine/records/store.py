"""The results store: runs, jobs, attempts and exactly one final outcome per job, in SQLite.

Why SQLite with WAL: every worker process writes its own attempts and
outcomes directly (no round trip through the supervisor), readers (the
monitor, ``results``, the supervisor) never block writers, and the file
survives any process being killed.  Durability is ``synchronous=FULL``: an
outcome is on disk before the worker releases its credential lock and
session slot.

Exactly-once is enforced by the schema, not by care: ``outcomes`` has the
primary key ``(run_id, job_id)``, so a second final outcome for a job —
say from a worker the supervisor wrongly presumed dead — is refused with
:class:`DuplicateOutcome` and counted, never stored.  ``interrupted`` is an
attempt outcome, not a final one, so ``--resume`` runs those jobs again and
nothing else.
"""
from __future__ import annotations

import csv
import io
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import orjson

from engine.errors import ResultsStoreError

SCHEMA_VERSION = 1
FINAL_OUTCOMES = ("passed", "failed")
ATTEMPT_OUTCOMES = ("passed", "failed", "retry", "interrupted", "lost")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    batch       TEXT NOT NULL,
    mode        TEXT NOT NULL,
    workers     INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    status      TEXT NOT NULL DEFAULT 'running',
    run_dir     TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id  TEXT NOT NULL REFERENCES runs(run_id),
    job_id  TEXT NOT NULL,
    line    INTEGER NOT NULL,
    flow    TEXT NOT NULL,
    spec    TEXT NOT NULL,
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id      TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    epoch       INTEGER NOT NULL DEFAULT 0,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    outcome     TEXT CHECK (outcome IN ('passed','failed','retry','interrupted','lost')),
    category    TEXT,
    error       TEXT,
    duration_ms REAL,
    matched     TEXT NOT NULL DEFAULT '{}',
    steps       TEXT NOT NULL DEFAULT '[]',
    artifacts   TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, job_id, attempt),
    FOREIGN KEY (run_id, job_id) REFERENCES jobs(run_id, job_id)
);
CREATE TABLE IF NOT EXISTS outcomes (
    run_id      TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('passed','failed')),
    attempts    INTEGER NOT NULL,
    category    TEXT,
    error       TEXT,
    duration_ms REAL,
    worker      TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (run_id, job_id),
    FOREIGN KEY (run_id, job_id) REFERENCES jobs(run_id, job_id)
);
CREATE INDEX IF NOT EXISTS attempts_by_job ON attempts(run_id, job_id);
"""


class DuplicateOutcome(ResultsStoreError):
    """A second final outcome for the same job in the same run was refused."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    run_id: str
    job_id: str
    attempt: int
    worker: str
    epoch: int
    started_at: float
    ended_at: float | None
    outcome: str | None
    category: str | None
    error: str | None
    duration_ms: float | None
    matched: dict[str, str]
    steps: list[dict[str, Any]]
    artifacts: list[str]


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    run_id: str
    job_id: str
    outcome: str
    attempts: int
    category: str | None
    error: str | None
    duration_ms: float | None
    worker: str
    recorded_at: float


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    batch: str
    mode: str
    workers: int
    started_at: float
    finished_at: float | None
    status: str
    run_dir: str
    settings: dict[str, Any]


class ResultsStore:
    """One connection to the results database; open one per process (connections are not fork-safe)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"cannot open results store {self.path}: {exc}") from exc
        self.duplicates_refused = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: tuple) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:  # constraint violations too: a store failure is a ResultsStoreError
            raise ResultsStoreError(f"results store {self.path}: {exc} (while: {sql.split('(')[0].strip()})") \
                from exc

    # -- runs and jobs -------------------------------------------------------

    def create_run(self, run_id: str, *, batch: str, mode: str, workers: int, run_dir: str,
                   jobs: list[tuple[str, int, str, dict[str, Any]]], settings: dict[str, Any] | None = None) -> None:
        """Record a run and its job list in one transaction."""
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO runs(run_id, batch, mode, workers, started_at, run_dir, settings) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (run_id, batch, mode, workers, time.time(), run_dir, orjson.dumps(settings or {}).decode()))
                self._db.executemany(
                    "INSERT INTO jobs(run_id, job_id, line, flow, spec) VALUES (?,?,?,?,?)",
                    [(run_id, job_id, line, flow, orjson.dumps(spec).decode()) for job_id, line, flow, spec in jobs])
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"cannot record run {run_id} in {self.path}: {exc}") from exc

    def add_jobs(self, run_id: str, jobs: list[tuple[str, int, str, dict[str, Any]]]) -> None:
        """Add jobs to an existing run (a soak adds each cycle's jobs as it starts)."""
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO jobs(run_id, job_id, line, flow, spec) VALUES (?,?,?,?,?)",
                    [(run_id, job_id, line, flow, orjson.dumps(spec).decode()) for job_id, line, flow, spec in jobs])
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"cannot add jobs to run {run_id} in {self.path}: {exc}") from exc

    def finish_run(self, run_id: str, status: str) -> None:
        self._write("UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?", (time.time(), status, run_id))

    def set_run_status(self, run_id: str, status: str) -> None:
        self._write("UPDATE runs SET status = ? WHERE run_id = ?", (status, run_id))

    def run(self, run_id: str) -> RunRecord:
        row = self._db.execute("SELECT run_id, batch, mode, workers, started_at, finished_at, status, run_dir, "
                               "settings FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise ResultsStoreError(f"no run {run_id!r} in {self.path}")
        return RunRecord(*row[:8], orjson.loads(row[8]))

    def latest_run_id(self) -> str | None:
        row = self._db.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def runs(self) -> list[RunRecord]:
        rows = self._db.execute("SELECT run_id, batch, mode, workers, started_at, finished_at, status, run_dir, "
                                "settings FROM runs ORDER BY started_at").fetchall()
        return [RunRecord(*r[:8], orjson.loads(r[8])) for r in rows]

    def job_ids(self, run_id: str) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT job_id FROM jobs WHERE run_id = ? ORDER BY line", (run_id,))]

    def pending_job_ids(self, run_id: str) -> list[str]:
        """Jobs of the run that have no final outcome yet (what a resume must run)."""
        return [r[0] for r in self._db.execute(
            "SELECT j.job_id FROM jobs j LEFT JOIN outcomes o ON o.run_id = j.run_id AND o.job_id = j.job_id "
            "WHERE j.run_id = ? AND o.job_id IS NULL ORDER BY j.line", (run_id,))]

    # -- attempts and outcomes -------------------------------------------------

    def next_attempt(self, run_id: str, job_id: str) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE run_id = ? AND job_id = ?",
                               (run_id, job_id)).fetchone()
        return int(row[0]) + 1

    def start_attempt(self, run_id: str, job_id: str, attempt: int, worker: str, epoch: int = 0) -> None:
        self._write("INSERT INTO attempts(run_id, job_id, attempt, worker, epoch, started_at) VALUES (?,?,?,?,?,?)",
                    (run_id, job_id, attempt, worker, epoch, time.time()))

    def end_attempt(self, run_id: str, job_id: str, attempt: int, *, outcome: str, category: str | None = None,
                    error: str | None = None, duration_ms: float | None = None,
                    matched: dict[str, str] | None = None, steps: list[dict[str, Any]] | None = None,
                    artifacts: list[str] | None = None) -> None:
        self._write(
            "UPDATE attempts SET ended_at = ?, outcome = ?, category = ?, error = ?, duration_ms = ?, matched = ?, "
            "steps = ?, artifacts = ? WHERE run_id = ? AND job_id = ? AND attempt = ? AND ended_at IS NULL",
            (time.time(), outcome, category, error, duration_ms, orjson.dumps(matched or {}).decode(),
             orjson.dumps(steps or []).decode(), orjson.dumps(artifacts or []).decode(), run_id, job_id, attempt))

    def close_open_attempts(self, run_id: str, job_id: str | None, *, outcome: str, error: str) -> int:
        """End attempts that never ended (their worker or supervisor died): ``lost`` or ``interrupted``."""
        sql = ("UPDATE attempts SET ended_at = ?, outcome = ?, error = ? "
               "WHERE run_id = ? AND ended_at IS NULL")
        params: tuple = (time.time(), outcome, error, run_id)
        if job_id is not None:
            sql += " AND job_id = ?"
            params += (job_id,)
        return self._write(sql, params).rowcount

    def record_outcome(self, run_id: str, job_id: str, *, outcome: str, attempts: int, worker: str,
                       category: str | None = None, error: str | None = None,
                       duration_ms: float | None = None) -> None:
        """Store the job's final outcome; a second one raises :class:`DuplicateOutcome`."""
        if outcome not in FINAL_OUTCOMES:
            raise ValueError(f"final outcome must be one of {FINAL_OUTCOMES}, got {outcome!r}")
        try:
            self._db.execute(
                "INSERT INTO outcomes(run_id, job_id, outcome, attempts, category, error, duration_ms, worker, "
                "recorded_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, job_id, outcome, attempts, category, error, duration_ms, worker, time.time()))
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname != "SQLITE_CONSTRAINT_PRIMARYKEY":  # e.g. a job the run does not have
                raise ResultsStoreError(f"cannot record outcome of {job_id!r} in {self.path}: {exc}") from exc
            self.duplicates_refused += 1
            raise DuplicateOutcome(f"job {job_id!r} of run {run_id} already has a final outcome "
                                   f"(refused the one from {worker})") from exc
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"cannot record outcome of {job_id!r} in {self.path}: {exc}") from exc

    def outcomes(self, run_id: str) -> list[OutcomeRecord]:
        return [OutcomeRecord(*r) for r in self._db.execute(
            "SELECT o.run_id, o.job_id, o.outcome, o.attempts, o.category, o.error, o.duration_ms, o.worker, "
            "o.recorded_at FROM outcomes o JOIN jobs j ON j.run_id = o.run_id AND j.job_id = o.job_id "
            "WHERE o.run_id = ? ORDER BY j.line", (run_id,))]

    def attempts(self, run_id: str, job_id: str | None = None) -> list[AttemptRecord]:
        sql = ("SELECT run_id, job_id, attempt, worker, epoch, started_at, ended_at, outcome, category, error, "
               "duration_ms, matched, steps, artifacts FROM attempts WHERE run_id = ?")
        params: tuple = (run_id,)
        if job_id is not None:
            sql += " AND job_id = ?"
            params += (job_id,)
        rows = self._db.execute(sql + " ORDER BY started_at, job_id, attempt", params).fetchall()
        return [AttemptRecord(*r[:11], orjson.loads(r[11]), orjson.loads(r[12]), orjson.loads(r[13])) for r in rows]

    def counts(self, run_id: str) -> dict[str, int]:
        out = dict.fromkeys(("jobs", "passed", "failed", "pending", "attempts"), 0)
        out["jobs"] = self._db.execute("SELECT COUNT(*) FROM jobs WHERE run_id = ?", (run_id,)).fetchone()[0]
        for outcome, n in self._db.execute("SELECT outcome, COUNT(*) FROM outcomes WHERE run_id = ? GROUP BY outcome",
                                           (run_id,)):
            out[outcome] = n
        out["pending"] = out["jobs"] - out["passed"] - out["failed"]
        out["attempts"] = self._db.execute("SELECT COUNT(*) FROM attempts WHERE run_id = ?", (run_id,)).fetchone()[0]
        return out

    def job_spans(self, run_id: str) -> list[tuple[str, float | None, float | None]]:
        """Per job: (job_id, first attempt start, final outcome time); None where there is none yet.

        One row per job and no step JSON, so a day-long soak's accounting
        stays cheap (``attempts()`` loads every step of every attempt).
        """
        return [(r[0], r[1], r[2]) for r in self._db.execute(
            "SELECT j.job_id, (SELECT MIN(a.started_at) FROM attempts a WHERE a.run_id = j.run_id "
            "AND a.job_id = j.job_id), o.recorded_at FROM jobs j LEFT JOIN outcomes o "
            "ON o.run_id = j.run_id AND o.job_id = j.job_id WHERE j.run_id = ?", (run_id,))]

    def outcome_counts_since(self, run_id: str, since: float) -> dict[str, int]:
        """Final outcomes recorded at or after ``since`` (epoch seconds), by outcome."""
        out = dict.fromkeys(FINAL_OUTCOMES, 0)
        for outcome, n in self._db.execute("SELECT outcome, COUNT(*) FROM outcomes WHERE run_id = ? AND "
                                           "recorded_at >= ? GROUP BY outcome", (run_id, since)):
            out[outcome] = n
        return out

    def discard_unstarted(self, run_id: str) -> int:
        """Remove jobs that never got an attempt (a soak's queued tail when its time ran out); their count.

        Why remove rather than leave pending: they were never handed to a
        worker, so nothing about them is lost, and a pending job is what
        ``--resume`` and the readiness check read as work left undone.
        """
        try:
            with self._transaction():
                cur = self._db.execute(
                    "DELETE FROM jobs WHERE run_id = ? AND NOT EXISTS (SELECT 1 FROM attempts a WHERE "
                    "a.run_id = jobs.run_id AND a.job_id = jobs.job_id) AND NOT EXISTS (SELECT 1 FROM outcomes o "
                    "WHERE o.run_id = jobs.run_id AND o.job_id = jobs.job_id)", (run_id,))
                return cur.rowcount
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"cannot discard unstarted jobs of run {run_id} in {self.path}: {exc}") from exc

    # -- export ------------------------------------------------------------------

    def export_rows(self, run_id: str) -> list[dict[str, Any]]:
        """One row per job: its final outcome (or ``pending``) and attempt count."""
        rows = self._db.execute(
            "SELECT j.job_id, j.line, j.flow, COALESCE(o.outcome, 'pending'), "
            "(SELECT COUNT(*) FROM attempts a WHERE a.run_id = j.run_id AND a.job_id = j.job_id), "
            "o.category, o.error, o.duration_ms, o.worker FROM jobs j LEFT JOIN outcomes o "
            "ON o.run_id = j.run_id AND o.job_id = j.job_id WHERE j.run_id = ? ORDER BY j.line", (run_id,)).fetchall()
        keys = ("job_id", "line", "flow", "outcome", "attempts", "category", "error", "duration_ms", "worker")
        return [dict(zip(keys, r)) for r in rows]

    def export_csv(self, run_id: str) -> str:
        rows = self.export_rows(run_id)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["job_id"])
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def _transaction(self) -> "_Tx":
        return _Tx(self._db)


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK for autocommit connections."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


__all__ = ["ResultsStore", "DuplicateOutcome", "AttemptRecord", "OutcomeRecord", "RunRecord", "FINAL_OUTCOMES",
           "ATTEMPT_OUTCOMES", "SCHEMA_VERSION"]
