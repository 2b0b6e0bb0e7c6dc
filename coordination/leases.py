"""Leases with fencing epochs: single-writer coordination when the writers are on different hosts.

On one host the ownership table in shared memory and file locks give
single-writer semantics; across hosts there is no shared memory and no
shared lock file.  A :class:`LeaseTable`, held by one coordinator process
(on Ray: an actor owned by the driver), takes their place:

* ``acquire(resource, holder)`` grants a resource (``slot:3``,
  ``cred:site/alice``) to one holder for ``ttl`` seconds, with an epoch
  above every epoch granted before — the fencing token the results store
  checks;
* the holder ``renew``s it from its heartbeat; a holder that stops renewing
  (dead, paused, partitioned) loses it at expiry: the next sweep reclaims
  it and the next grant gets a higher epoch, so whatever the old holder
  still writes is refused downstream;
* waiting is FIFO per resource: a holder that asked first is served first;
  a waiter that stops asking (dead) drops out after ``ttl``.

Pure logic on an injectable clock (``now``), so the rules are tested
deterministically, without processes; no double ownership is a property
test.  Times are the coordinator's monotonic clock only: holders never
compare their clocks with it, they renew well inside the ttl.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Callable

from coordination.errors import CoordinationError


class LeaseLost(CoordinationError):
    """The lease is no longer the holder's: expired and reclaimed, or granted to another with a new epoch."""

    category = "persistence"

    def __init__(self, message: str = "", *, resource: str | None = None, holder: str | None = None,
                 epoch: int | None = None) -> None:
        super().__init__(message)
        self.resource, self.holder, self.epoch = resource, holder, epoch

    def __reduce__(self):  # type: ignore[override]  # it crosses from the coordinator actor to a worker
        return (_lease_lost, (str(self), self.resource, self.holder, self.epoch))


def _lease_lost(message: str, resource: str | None, holder: str | None, epoch: int | None) -> LeaseLost:
    return LeaseLost(message, resource=resource, holder=holder, epoch=epoch)


@dataclass(frozen=True, slots=True)
class Grant:
    """A granted lease: who holds which resource at which epoch, and for how long (seconds from the grant)."""

    resource: str
    holder: str
    epoch: int
    ttl: float


@dataclass(frozen=True, slots=True)
class Reclaimed:
    resource: str
    holder: str
    old_epoch: int
    new_epoch: int
    reason: str


@dataclass(slots=True)
class _Held:
    holder: str
    epoch: int
    expires: float


@dataclass(slots=True)
class _Waiter:
    holder: str
    asked: float  # last time it asked: a waiter that stops asking is dropped after a ttl


@dataclass(slots=True)
class LeaseStats:
    grants: int = 0
    renewals: int = 0
    reclaims: int = 0
    refused_renewals: int = 0
    waits: list[float] = field(default_factory=list)  # seconds from first ask to grant, bounded (last 10,000)


class LeaseTable:
    def __init__(self, *, epoch_floor: int = 1, ttl: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, got {ttl}")
        self._next_epoch = max(1, epoch_floor)
        self.ttl = ttl
        self.clock = clock
        self._held: dict[str, _Held] = {}
        self._fence: dict[str, int] = {}  # resource -> epoch of its latest grant or reclaim
        self._waiting: dict[str, collections.deque[_Waiter]] = collections.defaultdict(collections.deque)
        self._first_ask: dict[tuple[str, str], float] = {}
        self.stats = LeaseStats()

    # -- epochs ------------------------------------------------------------------

    def _epoch(self, resource: str) -> int:
        epoch = self._next_epoch
        self._next_epoch += 1
        self._fence[resource] = epoch
        return epoch

    def fence(self, resource: str) -> int | None:
        """The lowest epoch still valid for ``resource`` (the one of its latest grant or reclaim)."""
        return self._fence.get(resource)

    # -- holder calls --------------------------------------------------------------

    def acquire(self, resource: str, holder: str, *, ttl: float | None = None) -> Grant | None:
        """Grant ``resource`` to ``holder`` if it is free and ``holder`` is first in line; else queue and None.

        A holder that already holds it gets its current grant back (renewed).
        """
        now = self.clock()
        ttl = self.ttl if ttl is None else ttl
        self.sweep(now)
        held = self._held.get(resource)
        if held is not None and held.holder == holder:
            held.expires = now + ttl
            return Grant(resource, holder, held.epoch, ttl)
        queue = self._waiting[resource]
        self._drop_stale_waiters(resource, queue, now)
        me = next((w for w in queue if w.holder == holder), None)
        if me is None:
            me = _Waiter(holder, now)
            queue.append(me)
            self._first_ask.setdefault((resource, holder), now)
        me.asked = now
        if held is not None or queue[0] is not me:
            return None
        queue.popleft()
        epoch = self._epoch(resource)
        self._held[resource] = _Held(holder, epoch, now + ttl)
        self.stats.grants += 1
        waited = now - self._first_ask.pop((resource, holder), now)
        self.stats.waits.append(waited)
        if len(self.stats.waits) > 10_000:
            del self.stats.waits[:5_000]
        return Grant(resource, holder, epoch, ttl)

    def renew(self, resource: str, holder: str, epoch: int, *, ttl: float | None = None) -> Grant:
        """Extend the holder's lease; :class:`LeaseLost` if it is not theirs at that epoch any more."""
        now = self.clock()
        ttl = self.ttl if ttl is None else ttl
        self.sweep(now)
        held = self._held.get(resource)
        if held is None or held.holder != holder or held.epoch != epoch:
            self.stats.refused_renewals += 1
            raise LeaseLost(f"{holder} no longer holds {resource} at epoch {epoch} (fence {self.fence(resource)})",
                            resource=resource, holder=holder, epoch=epoch)
        held.expires = now + ttl
        self.stats.renewals += 1
        return Grant(resource, holder, epoch, ttl)

    def release(self, resource: str, holder: str, epoch: int) -> bool:
        """Give the lease back; False (nothing changes) when it was not the holder's at that epoch."""
        held = self._held.get(resource)
        if held is None or held.holder != holder or held.epoch != epoch:
            return False
        del self._held[resource]
        return True

    def valid(self, resource: str, holder: str, epoch: int) -> bool:
        """Whether ``holder`` holds ``resource`` at ``epoch`` right now (after a sweep)."""
        self.sweep(self.clock())
        held = self._held.get(resource)
        return held is not None and held.holder == holder and held.epoch == epoch

    # -- coordinator duties ------------------------------------------------------

    def sweep(self, now: float | None = None) -> list[Reclaimed]:
        """Reclaim every expired lease with a new epoch (the old holder's token is void from now on)."""
        now = self.clock() if now is None else now
        out = []
        for resource, held in list(self._held.items()):
            if held.expires <= now:
                out.append(self._reclaim(resource, held, "expired"))
        return out

    def reclaim_holder(self, holder: str, reason: str = "holder died") -> list[Reclaimed]:
        """Take back everything ``holder`` holds (its process or node is gone), and drop it from every queue."""
        out = [self._reclaim(r, h, reason) for r, h in list(self._held.items()) if h.holder == holder]
        for queue in self._waiting.values():
            for w in [w for w in queue if w.holder == holder]:
                queue.remove(w)
        return out

    def _reclaim(self, resource: str, held: _Held, reason: str) -> Reclaimed:
        del self._held[resource]
        new = self._epoch(resource)
        self.stats.reclaims += 1
        return Reclaimed(resource, held.holder, held.epoch, new, reason)

    def _drop_stale_waiters(self, resource: str, queue: "collections.deque[_Waiter]", now: float) -> None:
        for gone in [w for w in queue if now - w.asked > self.ttl]:
            queue.remove(gone)
            self._first_ask.pop((resource, gone.holder), None)

    def holders(self) -> dict[str, tuple[str, int]]:
        """resource -> (holder, epoch) of every lease held now."""
        return {r: (h.holder, h.epoch) for r, h in self._held.items()}

    @property
    def next_epoch(self) -> int:
        return self._next_epoch


__all__ = ["LeaseTable", "Grant", "Reclaimed", "LeaseLost", "LeaseStats"]
