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

The coordinator also keeps a bounded **grant log** (:meth:`grant_log`):
every lease granted, with its epoch, holder, how long the holder waited
for it, and when and how it ended (released, reclaimed), on this actor's
one monotonic clock — so "never two holders of one credential at once" is
checked from the grants themselves, not from the workers' clocks.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterator

from coordination import WaitStats
from coordination.leases import Grant, LeaseLost, LeaseTable, Reclaimed
from engine.records.store import Lease, ResultsStore


GRANT_LOG_MAX = 50_000


class Coordinator:
    def __init__(self, store_path: str, run_id: str, epoch_floor: int, ttl: float) -> None:
        self.run_id = run_id
        self.store = ResultsStore(store_path)
        # One instant per call: the table sweeps again inside acquire/renew/valid, and a lease expiring between
        # our sweep and that one would be reclaimed without its fence raised or the driver told.
        self._now = time.monotonic()
        self.leases = LeaseTable(epoch_floor=epoch_floor, ttl=ttl, clock=lambda: self._now)
        self._reclaimed: list[Reclaimed] = []  # not yet collected by the driver
        self._spans: dict[tuple[str, int], dict[str, Any]] = {}  # (resource, epoch) -> its grant, newest last
        self.service = {"calls": 0, "seconds": 0.0}  # time spent serving workers' calls (a round trip's own work)

    def ping(self) -> tuple[int, str]:
        return os.getpid(), os.uname().nodename

    # -- leases ------------------------------------------------------------------

    def _fence(self, reclaimed: list[Reclaimed]) -> None:
        for r in reclaimed:
            self.store.raise_fence(self.run_id, r.resource, r.new_epoch)
            self._ended(r.resource, r.old_epoch, f"reclaimed: {r.reason}")
        self._reclaimed.extend(reclaimed)

    def _granted(self, grant: Grant) -> None:
        key = (grant.resource, grant.epoch)
        if key in self._spans:
            return  # the holder asked again for what it holds: a renewal, not a grant
        waits = self.leases.stats.waits
        self._spans[key] = {"resource": grant.resource, "epoch": grant.epoch, "holder": grant.holder,
                            "granted": time.monotonic(), "waited_s": waits[-1] if waits else 0.0,
                            "ended": None, "end": None}
        while len(self._spans) > GRANT_LOG_MAX:
            del self._spans[next(iter(self._spans))]

    def _ended(self, resource: str, epoch: int, how: str) -> None:
        span = self._spans.get((resource, epoch))
        if span is not None and span["ended"] is None:
            span["ended"], span["end"] = time.monotonic(), how

    @contextlib.contextmanager
    def _served(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.service["calls"] += 1
            self.service["seconds"] += time.perf_counter() - t0

    def _sweep(self) -> None:
        self._now = time.monotonic()
        self._fence(self.leases.sweep())

    def acquire(self, resource: str, holder: str) -> Grant | None:
        with self._served():
            self._sweep()
            grant = self.leases.acquire(resource, holder)
            if grant is not None:
                self._granted(grant)
            return grant

    def renew(self, resource: str, holder: str, epoch: int) -> Grant:
        self._sweep()
        return self.leases.renew(resource, holder, epoch)

    def release(self, resource: str, holder: str, epoch: int) -> bool:
        with self._served():
            released = self.leases.release(resource, holder, epoch)
            if released:
                self._ended(resource, epoch, "released")
            return released

    def sweep(self) -> list[Reclaimed]:
        """Reclaim expired leases; return every reclaim since the last call (the driver writes them off)."""
        self._sweep()
        out, self._reclaimed = self._reclaimed, []
        return out

    def reclaim_holder(self, holder: str, reason: str) -> list[Reclaimed]:
        self._fence(self.leases.reclaim_holder(holder, reason))
        return self.sweep()

    def grant_log(self) -> list[dict[str, Any]]:
        """Every grant still in the log (the last ``GRANT_LOG_MAX``), in grant order; times are this actor's
        monotonic clock, ``ended`` is None while the lease is held."""
        return [dict(span) for span in self._spans.values()]

    def stats(self) -> dict[str, Any]:
        s = self.leases.stats
        return {"grants": s.grants, "renewals": s.renewals, "reclaims": s.reclaims,
                "refused_renewals": s.refused_renewals, "waits": WaitStats.from_samples(s.waits),
                "holders": self.leases.holders(), "service": dict(self.service)}

    # -- the results store, fenced -------------------------------------------------

    def next_attempt(self, run_id: str, job_id: str) -> int:
        with self._served():
            return self.store.next_attempt(run_id, job_id)

    def start_attempt(self, run_id: str, job_id: str, attempt: int, worker: str, lease: Lease,
                      holder: str) -> None:
        with self._served():
            self._sweep()
            self._check_lease(lease, holder)
            self.store.start_attempt(run_id, job_id, attempt, worker, lease=lease)

    def finish_attempt(self, run_id: str, job_id: str, attempt: int, lease: Lease, holder: str,
                       **kw: Any) -> None:
        with self._served():
            self._sweep()  # an expired lease is reclaimed (fence raised) before its holder's write is looked at
            self.store.finish_attempt(run_id, job_id, attempt, lease, **kw)

    def _check_lease(self, lease: Lease, holder: str) -> None:
        if not self.leases.valid(lease.resource, holder, lease.epoch):
            raise LeaseLost(f"{holder} does not hold {lease.resource} at epoch {lease.epoch}",
                            resource=lease.resource, holder=holder, epoch=lease.epoch)

    def close(self) -> None:
        self.store.close()


__all__ = ["Coordinator", "GRANT_LOG_MAX"]
