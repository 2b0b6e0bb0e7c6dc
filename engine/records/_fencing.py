"""Fencing tokens in the results store: generations, fences, refused stale writes.

Why a mixin of :class:`~engine.records.store.ResultsStore` rather than its
own connection: the fence check must run inside the very transaction that
writes (a check in another transaction could pass and then be overtaken).
See the store's module docstring for the argument.
"""
from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from engine.errors import ResultsStoreError, StaleLease
from engine.records.schema import Generation, Lease


class FencingMixin:
    """Needs ``self._db`` (autocommit connection), ``self.path``, ``self._write`` and ``self._transaction``."""

    _db: sqlite3.Connection
    path: str
    stale_refused: int

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


__all__ = ["FencingMixin"]
