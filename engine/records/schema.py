"""The results store's schema: every table, the migrations, and the typed rows read from it.

One owner for the SQL shape (:mod:`engine.records.store` writes and
reads through it; :mod:`engine.records.reader` is the read-only view the
monitor uses).  Schema 2 added fencing (``fences``, ``generations``,
``refusals``) and ``outcomes.epoch``; schema 3 added ``outcomes.data``
(the job's extracted data, a JSON object, written with the outcome in
the same fenced transaction).  An older store is migrated on open.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 3
FINAL_OUTCOMES = ("passed", "failed")
ATTEMPT_OUTCOMES = ("passed", "failed", "retry", "interrupted", "lost")

SCHEMA = """
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
    epoch       INTEGER NOT NULL DEFAULT 0,
    data        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, job_id),
    FOREIGN KEY (run_id, job_id) REFERENCES jobs(run_id, job_id)
);
CREATE INDEX IF NOT EXISTS attempts_by_job ON attempts(run_id, job_id);
CREATE TABLE IF NOT EXISTS fences (
    run_id   TEXT NOT NULL,
    resource TEXT NOT NULL,
    epoch    INTEGER NOT NULL,
    PRIMARY KEY (run_id, resource)
);
CREATE TABLE IF NOT EXISTS generations (
    run_id      TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    epoch_floor INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    pid         INTEGER NOT NULL,
    PRIMARY KEY (run_id, generation)
);
CREATE TABLE IF NOT EXISTS refusals (
    run_id   TEXT NOT NULL,
    job_id   TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    resource TEXT NOT NULL,
    epoch    INTEGER NOT NULL,
    fence    INTEGER,
    write    TEXT NOT NULL,
    reason   TEXT NOT NULL,
    at       REAL NOT NULL
);
"""
# Columns added after schema 1 (epoch: 2, data: 3); an older store gets them on open, its rows kept.
MIGRATIONS = (("outcomes", "epoch", "INTEGER NOT NULL DEFAULT 0"),
              ("outcomes", "data", "TEXT NOT NULL DEFAULT '{}'"))


@dataclass(frozen=True, slots=True)
class Lease:
    """What a writer holds: a resource (``slot:3``, ``legacy``) at an epoch, the fencing token."""

    resource: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Generation:
    """One supervisor lifetime of a run: its number and the lowest epoch valid in it."""

    generation: int
    epoch_floor: int



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


__all__ = ["SCHEMA_VERSION", "FINAL_OUTCOMES", "ATTEMPT_OUTCOMES", "SCHEMA", "MIGRATIONS", "Lease", "Generation",
           "AttemptRecord", "OutcomeRecord", "RunRecord"]
