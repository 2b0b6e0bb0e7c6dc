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
from typing import Any, Iterator

import orjson

from engine.errors import ResultsStoreError, StaleLease
from engine.records._fencing import FencingMixin
from engine.records.schema import (ATTEMPT_OUTCOMES, FINAL_OUTCOMES, MIGRATIONS, SCHEMA, SCHEMA_VERSION, AttemptRecord,
                                   Generation, Lease, OutcomeRecord, RunRecord)

class DuplicateOutcome(ResultsStoreError):
    """A second final outcome for the same job in the same run was refused."""


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


class ResultsStore(FencingMixin):
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
            db.executescript(SCHEMA)
            for table, column, decl in MIGRATIONS:
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

    def finish_attempt(self, run_id: str, job_id: str, attempt: int, lease: Lease, *, outcome: str,
                       final: bool, worker: str, category: str | None = None, error: str | None = None,
                       duration_ms: float | None = None, job_duration_ms: float | None = None,
                       matched: dict[str, str] | None = None, steps: list[dict[str, Any]] | None = None,
                       artifacts: list[str] | None = None, data: dict[str, Any] | None = None) -> None:
        """End an attempt and, when ``final``, record the job's outcome — in one transaction, fenced.

        ``data`` is the job's extracted data (name -> JSON value, already
        masked and capped by the worker); it is stored with the final
        outcome only, so a refused or duplicate writer stores none and a
        job's data is that of its one final attempt.

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
                            "worker, recorded_at, epoch, data) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            (run_id, job_id, outcome, attempt, category, error, job_duration_ms, worker,
                             time.time(), lease.epoch, orjson.dumps(data or {}).decode()))
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

    def outcome_of(self, run_id: str, job_id: str) -> OutcomeRecord | None:
        """The job's final outcome, or None while it has none."""
        row = self._db.execute(
            "SELECT run_id, job_id, outcome, attempts, category, error, duration_ms, worker, recorded_at "
            "FROM outcomes WHERE run_id = ? AND job_id = ?", (run_id, job_id)).fetchone()
        return None if row is None else OutcomeRecord(*row)

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
        """One row per job: its final outcome (or ``pending``), attempt count and extracted ``data`` (an object)."""
        rows = self._db.execute(
            "SELECT j.job_id, j.line, j.flow, COALESCE(o.outcome, 'pending'), "
            "(SELECT COUNT(*) FROM attempts a WHERE a.run_id = j.run_id AND a.job_id = j.job_id), "
            "o.category, o.error, o.duration_ms, o.worker, COALESCE(o.data, '{}') FROM jobs j LEFT JOIN outcomes o "
            "ON o.run_id = j.run_id AND o.job_id = j.job_id WHERE j.run_id = ? ORDER BY j.line", (run_id,)).fetchall()
        keys = ("job_id", "line", "flow", "outcome", "attempts", "category", "error", "duration_ms", "worker")
        return [{**dict(zip(keys, r[:9])), "data": orjson.loads(r[9])} for r in rows]

    def export_csv(self, run_id: str) -> str:
        """The rows as CSV: the fixed columns, then one ``data.NAME`` column per extracted name (JSON-encoded
        values, empty where a job has none), in first-seen order."""
        rows = self.export_rows(run_id)
        names = list(dict.fromkeys(name for r in rows for name in r["data"]))
        flat = [{**{k: v for k, v in r.items() if k != "data"},
                 **{f"data.{n}": orjson.dumps(r["data"][n]).decode() for n in names if n in r["data"]}}
                for r in rows]
        fields = [k for k in rows[0] if k != "data"] + [f"data.{n}" for n in names] if rows else ["job_id"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)
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


__all__ = ["ResultsStore", "DuplicateOutcome", "StaleLease", "Lease", "Generation", "AttemptRecord", "OutcomeRecord",
           "RunRecord", "FINAL_OUTCOMES", "ATTEMPT_OUTCOMES", "SCHEMA_VERSION"]
