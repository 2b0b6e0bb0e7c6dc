"""Single-writer coordination between processes on one machine.

Knows nothing about browsers: ownership of numbered session slots (with
epochs as fencing tokens), credential locks, backoff profiles and the
contention counters that prove the rules held.

The supervisor creates the shared state in a run directory; workers
(forked, spawned, or started by hand) attach to it by the same directory::

    table = OwnershipTable.create(run_dir, slots=8)          # supervisor
    telemetry = ContentionTelemetry.create(run_dir, workers=8)

    table = OwnershipTable.attach(run_dir)                    # worker
    counters = ContentionTelemetry.attach(run_dir).writer(worker)
    table.bind_counters(counters)
    slot = table.claim(worker)
    table.check_owner(slot.index, worker, slot.epoch)         # before every CDP send
    with CredentialLocks(run_dir, worker=worker, counters=counters).acquire("site/alice", 30.0):
        ...

``coordination.simulate`` is the seeded contention simulation (run it with
``python -m coordination.simulate``); it is not imported here.

The root of every Drover error, :class:`DroverError`, lives on this floor
too, though it has nothing to do with coordination: every layer raises
errors rooted in it (coordination, navigation and engine) and imports
point down only, so the one module all of them may import is the lowest
one.  Putting the root anywhere higher would make coordination reach up
to raise its own errors.  Its rules (a category on every class, timeouts
that are builtin ``TimeoutError`` too, fields that survive pickling) are
in :mod:`coordination.errors`.
"""
from coordination._contention import (
    ContentionSnapshot,
    ContentionTelemetry,
    WaitStats,
    WorkerCounters,
    WorkerStats,
)
from coordination._credlocks import CredentialHold, CredentialLocks, HolderRecord
from coordination._process import ProcessIdentity, process_age
from coordination._segment import sweep_stale_segments
from coordination._table import (
    OwnershipTable,
    Reclaimed,
    Slot,
    SlotState,
    claim_in_turn,
    reclaim_dead,
)
from coordination.backoff import Backoff, BackoffProfile, cohort_seed
from coordination.errors import (
    CATEGORIES,
    DroverError,
    InvalidTransition,
    LockTimeout,
    UnownedUse,
)

__all__ = [
    "Backoff",
    "BackoffProfile",
    "cohort_seed",
    "CATEGORIES",
    "DroverError",
    "InvalidTransition",
    "UnownedUse",
    "LockTimeout",
    "OwnershipTable",
    "SlotState",
    "Slot",
    "Reclaimed",
    "reclaim_dead",
    "claim_in_turn",
    "sweep_stale_segments",
    "CredentialLocks",
    "CredentialHold",
    "HolderRecord",
    "ContentionTelemetry",
    "WorkerCounters",
    "ContentionSnapshot",
    "WorkerStats",
    "WaitStats",
    "ProcessIdentity",
    "process_age",
]
