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

An attempt's end and the job's final outcome are **one transaction**
(:meth:`ResultsStore.finish_attempt`): a worker killed between the two
commits used to leave a passed attempt without an outcome, and the job ran
— and passed — again.

Fencing (Kleppmann's argument, checked by the store itself): every write
of a worker carries its :class:`Lease` — the resource it holds (``slot:N``,
``legacy``) and the epoch it was granted.  ``fences`` keeps, per run and
resource, the lowest epoch still valid; a write below it is refused with
:class:`StaleLease` and recorded in ``refusals``.  Each supervisor start or
resume opens a new *generation* (:meth:`ResultsStore.begin_generation`):
its epochs start above every epoch the run has ever used and every fence of
the run is raised to that floor, so a holder from before a supervisor crash
can never record anything again, however long it lives.

Connections never cross ``fork()`` (SQLite's rule: POSIX locks belong to a
process, and a child that inherits a connection's in-memory lock state
believes it holds locks it does not): :meth:`ResultsStore.closed_for_fork`
closes every store of this process around a fork and checks, from
``/proc/self/fd``, that no descriptor of the database is left open.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import sqlite3
import time
import weakref
from dataclasses import dataclass
from typing import Any, Iterator

import orjson

from engine.errors import ResultsStoreError, StaleLease

SCHEMA_VERSION = 2
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
    epoch       INTEGER NOT NULL DEFAULT 0,
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
# Columns added after schema 1; an older store gets them on open.
_MIGRATIONS = (("outcomes", "epoch", "INTEGER NOT NULL DEFAULT 0"),)


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


_OPEN: "weakref.WeakSet[ResultsStore]" = weakref.WeakSet()


def _store_fds(path: str) -> list[str]:
    """Descriptors of this process that point at the database or its -wal/-shm files."""
    real = os.path.realpath(path)
    names = {real, real + "-wal", real + "-shm", real + "-journal"}
    found = []
    try:
        fds = os.listdir("/proc/self/fd")
    except FileNotFoundError:  # no procfs: nothing to check with
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, closed by now
            continue
        if target in names:
            found.append(f"fd {fd} -> {target}")
    return found


class ResultsStore:
    """One connection to the results database; open one per process (connections are not fork-safe)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._db = self._connect()
        self.duplicates_refused = 0
        self.stale_refused = 0
        _OPEN.add(self)

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
            for table, column, decl in _MIGRATIONS:
                have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                       (str(SCHEMA_VERSION),))
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?",
                       (str(SCHEMA_VERSION), SCHEMA_VERSION))
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"cannot open results store {self.path}: {exc}") from exc
        return db

    def close(self) -> None:
        self._db.close()
        _OPEN.discard(self)

    @staticmethod
    @contextlib.contextmanager
    def closed_for_fork(*paths: str) -> Iterator[None]:
        """Close every open store of this process for the duration of a fork, then reopen them.

        Raises :class:`ResultsStoreError` before the fork when a descriptor
        of one of ``paths`` (or of an open store) is still open — a
        connection this registry does not know would cross the fork.
        """
        stores = [s for s in list(_OPEN)]
        for s in stores:
            s._db.close()
        try:
            for path in {*paths, *(s.path for s in stores)}:
                left = _store_fds(path)
                if left:
                    raise ResultsStoreError(f"a connection to {path} would cross fork(): {', '.join(left)}")
            yield
        finally:
            for s in stores:
                s._db = s._connect()

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

    def start_attempt(self, run_id: str, job_id: str, attempt: int, worker: str, epoch: int = 0, *,
                      lease: Lease | None = None) -> None:
        """Record an attempt's start; with a ``lease``, fenced (and the fence raised to the lease's epoch)."""
        sql = "INSERT INTO attempts(run_id, job_id, attempt, worker, epoch, started_at) VALUES (?,?,?,?,?,?)"
        if lease is None:
            self._write(sql, (run_id, job_id, attempt, worker, epoch, time.time()))
            return
        try:
            with self._transaction():
                self._check_fence(run_id, job_id, attempt, lease, "start")
                self._db.execute("INSERT INTO fences(run_id, resource, epoch) VALUES (?,?,?) "
                                 "ON CONFLICT(run_id, resource) DO UPDATE SET epoch = MAX(epoch, excluded.epoch)",
                                 (run_id, lease.resource, lease.epoch))
                self._db.execute(sql, (run_id, job_id, attempt, worker, lease.epoch, time.time()))
        except StaleLease as exc:
            self._refuse(run_id, exc)
            raise
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"results store {self.path}: {exc} (while: start attempt {attempt} of "
                                    f"{job_id!r})") from exc

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

    # -- fencing ---------------------------------------------------------------

    def max_epoch(self, run_id: str) -> int:
        """The highest epoch the run has ever used (fences, attempts, outcomes, generation floors)."""
        row = self._db.execute(
            "SELECT MAX(e) FROM (SELECT MAX(epoch) AS e FROM fences WHERE run_id = ? "
            "UNION ALL SELECT MAX(epoch) FROM attempts WHERE run_id = ? "
            "UNION ALL SELECT MAX(epoch) FROM outcomes WHERE run_id = ? "
            "UNION ALL SELECT MAX(epoch_floor) FROM generations WHERE run_id = ?)",
            (run_id, run_id, run_id, run_id)).fetchone()
        return int(row[0] or 0)

    def begin_generation(self, run_id: str, resources: list[str] | tuple[str, ...] = ()) -> Generation:
        """Start a supervisor lifetime: a floor above every epoch used so far, every fence raised to it.

        Epochs the new lifetime hands out must be ``>= epoch_floor``; every
        lease granted before (a worker that outlived a killed supervisor,
        any number of resumes ago) is below every fence from now on.
        """
        try:
            with self._transaction():
                floor = self.max_epoch(run_id) + 1
                gen = int(self._db.execute("SELECT COALESCE(MAX(generation), 0) + 1 FROM generations "
                                           "WHERE run_id = ?", (run_id,)).fetchone()[0])
                self._db.execute("INSERT INTO generations(run_id, generation, epoch_floor, started_at, pid) "
                                 "VALUES (?,?,?,?,?)", (run_id, gen, floor, time.time(), os.getpid()))
                self._db.execute("UPDATE fences SET epoch = ? WHERE run_id = ?", (floor, run_id))
                self._db.executemany("INSERT OR IGNORE INTO fences(run_id, resource, epoch) VALUES (?,?,?)",
                                     [(run_id, r, floor) for r in resources])
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"cannot start a generation of run {run_id} in {self.path}: {exc}") from exc
        return Generation(gen, floor)

    def raise_fence(self, run_id: str, resource: str, epoch: int) -> None:
        """Make ``epoch`` the lowest valid one for ``resource`` (never lowers it): a reclaimed slot."""
        self._write("INSERT INTO fences(run_id, resource, epoch) VALUES (?,?,?) ON CONFLICT(run_id, resource) "
                    "DO UPDATE SET epoch = MAX(epoch, excluded.epoch)", (run_id, resource, epoch))

    def fence(self, run_id: str, resource: str) -> int | None:
        row = self._db.execute("SELECT epoch FROM fences WHERE run_id = ? AND resource = ?",
                               (run_id, resource)).fetchone()
        return None if row is None else int(row[0])

    def generations(self, run_id: str) -> list[tuple[int, int, float, int]]:
        """(generation, epoch_floor, started_at, pid) of every supervisor lifetime of the run."""
        return [tuple(r) for r in self._db.execute(
            "SELECT generation, epoch_floor, started_at, pid FROM generations WHERE run_id = ? "
            "ORDER BY generation", (run_id,))]

    def refusals(self, run_id: str) -> list[dict[str, Any]]:
        keys = ("job_id", "attempt", "resource", "epoch", "fence", "write", "reason", "at")
        return [dict(zip(keys, r)) for r in self._db.execute(
            "SELECT job_id, attempt, resource, epoch, fence, write, reason, at FROM refusals WHERE run_id = ? "
            "ORDER BY at", (run_id,))]

    def refused_count(self, run_id: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM refusals WHERE run_id = ?", (run_id,)).fetchone()[0])

    def _check_fence(self, run_id: str, job_id: str, attempt: int, lease: Lease, write: str) -> None:
        """Inside a write transaction: raise :class:`StaleLease` when ``lease`` is below its fence."""
        fence = self.fence(run_id, lease.resource)
        if fence is not None and lease.epoch < fence:
            raise StaleLease(job_id=job_id, attempt=attempt, resource=lease.resource, epoch=lease.epoch,
                             fence=fence, write=write)

    def _refuse(self, run_id: str, exc: StaleLease) -> None:
        """Record a refused write (its own small transaction, after the refused one rolled back)."""
        self.stale_refused += 1
        self._write("INSERT INTO refusals(run_id, job_id, attempt, resource, epoch, fence, write, reason, at) "
                    "VALUES (?,?,?,?,?,?,?,?,?)", (run_id, exc.job_id, exc.attempt, exc.resource, exc.epoch,
                                                   exc.fence, exc.write, exc.reason, time.time()))

    def finish_attempt(self, run_id: str, job_id: str, attempt: int, lease: Lease, *, outcome: str,
                       final: bool, worker: str, category: str | None = None, error: str | None = None,
                       duration_ms: float | None = None, job_duration_ms: float | None = None,
                       matched: dict[str, str] | None = None, steps: list[dict[str, Any]] | None = None,
                       artifacts: list[str] | None = None) -> None:
        """End an attempt and, when ``final``, record the job's outcome — in one transaction, fenced.

        Raises :class:`StaleLease` (and records the refusal) when the lease
        is below its fence or the attempt was already closed by someone
        else (a supervisor that wrote it off); :class:`DuplicateOutcome`
        when the job already has a final outcome (the attempt's end is
        still recorded then, so its history is whole).
        """
        if final and outcome not in FINAL_OUTCOMES:
            raise ValueError(f"final outcome must be one of {FINAL_OUTCOMES}, got {outcome!r}")
        end = ("UPDATE attempts SET ended_at = ?, outcome = ?, category = ?, error = ?, duration_ms = ?, "
               "matched = ?, steps = ?, artifacts = ? WHERE run_id = ? AND job_id = ? AND attempt = ? "
               "AND ended_at IS NULL")
        end_params = (time.time(), outcome, category, error, duration_ms, orjson.dumps(matched or {}).decode(),
                      orjson.dumps(steps or []).decode(), orjson.dumps(artifacts or []).decode(),
                      run_id, job_id, attempt)
        duplicate: sqlite3.IntegrityError | None = None
        try:
            with self._transaction():
                self._check_fence(run_id, job_id, attempt, lease, "finish")
                if self._db.execute(end, end_params).rowcount != 1:
                    raise StaleLease(job_id=job_id, attempt=attempt, resource=lease.resource, epoch=lease.epoch,
                                     fence=self.fence(run_id, lease.resource), write="finish",
                                     reason="attempt already closed by the supervisor")
                if final:
                    try:
                        self._db.execute(
                            "INSERT INTO outcomes(run_id, job_id, outcome, attempts, category, error, duration_ms, "
                            "worker, recorded_at, epoch) VALUES (?,?,?,?,?,?,?,?,?,?)",
                            (run_id, job_id, outcome, attempt, category, error, job_duration_ms, worker,
                             time.time(), lease.epoch))
                    except sqlite3.IntegrityError as exc:
                        if exc.sqlite_errorname != "SQLITE_CONSTRAINT_PRIMARYKEY":
                            raise
                        duplicate = exc
        except StaleLease as exc:
            self._refuse(run_id, exc)
            raise
        except sqlite3.Error as exc:
            raise ResultsStoreError(f"cannot finish attempt {attempt} of {job_id!r} in {self.path}: {exc}") \
                from exc
        if duplicate is not None:  # the attempt's end is committed; the second outcome is not
            self.duplicates_refused += 1
            raise DuplicateOutcome(f"job {job_id!r} of run {run_id} already has a final outcome "
                                   f"(refused the one from {worker})") from duplicate

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


__all__ = ["ResultsStore", "DuplicateOutcome", "StaleLease", "Lease", "Generation", "AttemptRecord", "OutcomeRecord", "RunRecord", "FINAL_OUTCOMES",
           "ATTEMPT_OUTCOMES", "SCHEMA_VERSION"]
