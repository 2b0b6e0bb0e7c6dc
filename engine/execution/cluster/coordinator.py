"""The cluster's single writer: leases with fencing epochs, and every results-store write of the workers.

One instance runs as a Ray actor on the driver's node (it owns the SQLite
connection there; the driver's supervisor has its own, as on one host).
Ray runs an actor's methods one at a time, so every grant, renewal,
reclaim and store write is serialised through it: a lease check and the
write it guards happen in the same call, and a reclaim raises the store's
fence before anything else can be written.

Workers call :meth:`start_attempt` / :meth:`finish_attempt` with their
slot lease; the store refuses (and counts) a write whose epoch is below the
fence — a worker that was paused or cut off long enough for its lease to
expire finds its outcome refused, and the job's one final outcome is the
new holder's.
"""
from __future__ import annotations

import os
from typing import Any

from coordination import WaitStats
from coordination.leases import Grant, LeaseLost, LeaseTable, Reclaimed
from engine.records.store import Lease, ResultsStore


class Coordinator:
    def __init__(self, store_path: str, run_id: str, epoch_floor: int, ttl: float) -> None:
        self.run_id = run_id
        self.store = ResultsStore(store_path)
        self.leases = LeaseTable(epoch_floor=epoch_floor, ttl=ttl)
        self._reclaimed: list[Reclaimed] = []  # not yet collected by the driver

    def ping(self) -> tuple[int, str]:
        return os.getpid(), os.uname().nodename

    # -- leases ------------------------------------------------------------------

    def _fence(self, reclaimed: list[Reclaimed]) -> None:
        for r in reclaimed:
            self.store.raise_fence(self.run_id, r.resource, r.new_epoch)
        self._reclaimed.extend(reclaimed)

    def _sweep(self) -> None:
        self._fence(self.leases.sweep())

    def acquire(self, resource: str, holder: str) -> Grant | None:
        self._sweep()
        return self.leases.acquire(resource, holder)

    def renew(self, resource: str, holder: str, epoch: int) -> Grant:
        self._sweep()
        return self.leases.renew(resource, holder, epoch)

    def release(self, resource: str, holder: str, epoch: int) -> bool:
        return self.leases.release(resource, holder, epoch)

    def sweep(self) -> list[Reclaimed]:
        """Reclaim expired leases; return every reclaim since the last call (the driver writes them off)."""
        self._sweep()
        out, self._reclaimed = self._reclaimed, []
        return out

    def reclaim_holder(self, holder: str, reason: str) -> list[Reclaimed]:
        self._fence(self.leases.reclaim_holder(holder, reason))
        return self.sweep()

    def stats(self) -> dict[str, Any]:
        s = self.leases.stats
        return {"grants": s.grants, "renewals": s.renewals, "reclaims": s.reclaims,
                "refused_renewals": s.refused_renewals, "waits": WaitStats.from_samples(s.waits),
                "holders": self.leases.holders()}

    # -- the results store, fenced -------------------------------------------------

    def next_attempt(self, run_id: str, job_id: str) -> int:
        return self.store.next_attempt(run_id, job_id)

    def start_attempt(self, run_id: str, job_id: str, attempt: int, worker: str, lease: Lease,
                      holder: str) -> None:
        self._sweep()
        self._check_lease(lease, holder)
        self.store.start_attempt(run_id, job_id, attempt, worker, lease=lease)

    def finish_attempt(self, run_id: str, job_id: str, attempt: int, lease: Lease, holder: str,
                       **kw: Any) -> None:
        self._sweep()  # an expired lease is reclaimed (fence raised) before its holder's write is looked at
        self.store.finish_attempt(run_id, job_id, attempt, lease, **kw)

    def _check_lease(self, lease: Lease, holder: str) -> None:
        if not self.leases.valid(lease.resource, holder, lease.epoch):
            raise LeaseLost(f"{holder} does not hold {lease.resource} at epoch {lease.epoch}",
                            resource=lease.resource, holder=holder, epoch=lease.epoch)

    def close(self) -> None:
        self.store.close()


__all__ = ["Coordinator"]
