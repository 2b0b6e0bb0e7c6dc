"""A forked worker: takes jobs from the supervisor, runs them, reports back.

The worker owns one browser and one session slot (slot index = worker
index).  Every CDP command it sends first passes the ownership guard
(``check_owner`` with the epoch of its current claim), so a worker the
supervisor has already written off — its slot reclaimed with a new epoch —
is refused at its very next send instead of racing its replacement.

Heartbeat: a daemon thread stamps ``heartbeats[index]`` twice a second.

When the supervisor dies the worker dies with it, at once
(``PR_SET_PDEATHSIG`` = SIGKILL, and the heartbeat thread's parent-pid
check as a second line): an orphan that finished its job would record an
outcome nobody waits for, and a resumed run must not meet workers of the
dead one.  The job in flight runs again on resume (at-least-once
execution); its outcome is recorded exactly once (the store's schema and
fences).  Its reaper tears its browser down when it sees the worker gone.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Iterator

from coordination import ContentionTelemetry, CredentialLocks, OwnershipTable
from coordination.telemetry_context import bind, stream_logger
from engine.records.batch import Batch
from engine.config import Settings
from engine.execution import assembly
from engine.execution.executor import Coordination
from engine.records import streams as telemetry_streams
from engine.errors import StaleLease
from engine.records.store import Lease, ResultsStore
from navigation.credentials import CredentialStore

ops = stream_logger("operational", __name__)
audit = stream_logger("audit", __name__)


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    run_id: str
    run_dir: str
    state_dir: str
    store_path: str
    settings: Settings
    seed: int
    credentials_path: str | None


class WorkerCoordination(Coordination):
    """Credential locks (filelock tickets) and the session slot (shared-memory table) for one worker."""

    def __init__(self, index: int, table: OwnershipTable, locks: CredentialLocks, lock_timeout: float) -> None:
        self.index = index
        self.table = table
        self.locks = locks
        self.lock_timeout = lock_timeout
        self.epoch = 0

    @contextlib.contextmanager
    def credential(self, scope: str | None) -> Iterator[float]:
        if scope is None:
            yield 0.0
            return
        hold = self.locks.acquire(scope, self.lock_timeout)
        audit.info("credential lock acquired", extra={"event": "lock_acquired", "scope": scope,
                                                      "lock_epoch": hold.epoch,
                                                      "waited_s": round(hold.waited, 6)})
        try:
            yield hold.waited
        finally:
            # Recorded before the lock is let go (see LeaseCoordination.credential): the witness of a use ends
            # when the use does, not after the next holder may already have logged its own start.
            audit.info("credential lock released", extra={"event": "lock_released", "scope": scope})
            hold.release()

    @contextlib.contextmanager
    def session(self) -> Iterator[Lease]:
        slot = self.table.claim(self.index, slot=self.index, session_id=f"w{self.index}")
        self.table.activate(slot.index, self.index, slot.epoch)
        self.epoch = slot.epoch
        audit.info("session slot owned", extra={"event": "slot_owned", "slot": slot.index, "epoch": slot.epoch})
        try:
            yield Lease(f"slot:{slot.index}", slot.epoch)
        finally:
            self.table.begin_release(slot.index, self.index, slot.epoch)
            self.table.finish_release(slot.index, self.index, slot.epoch)
            audit.info("session slot released", extra={"event": "slot_released", "slot": slot.index,
                                                       "epoch": slot.epoch})

    def guard(self) -> None:
        """The ownership check run before every CDP command."""
        self.table.check_owner(self.index, self.index, self.epoch)


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies; exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            ops.warning("PR_SET_PDEATHSIG refused; the heartbeat thread watches the parent instead",
                        extra={"event": "pdeathsig_refused", "errno": ctypes.get_errno()})
    except (OSError, AttributeError) as exc:  # no prctl on this platform: the heartbeat check remains
        ops.warning("PR_SET_PDEATHSIG unavailable", extra={"event": "pdeathsig_unavailable", "error": str(exc)})
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _heartbeat(beats: Any, index: int, parent: int, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        beats[index] = time.time()
        if os.getppid() != parent:
            ops.error("supervisor gone; worker exits now", extra={"event": "worker_orphaned"})
            os._exit(1)  # its job in flight is re-run on resume; nothing half-recorded (one transaction)


def worker_main(spec: WorkerSpec, conn: Connection, beats: Any, batch: Batch,
                inherited: tuple[Connection, ...] = (), parent: int | None = None) -> None:
    """Entry point in the forked child.

    ``inherited`` are the supervisor's ends of the *other* workers' pipes,
    copied into this child by fork: closed at once, or those workers would
    never see EOF when the supervisor dies.
    """
    for other in inherited:
        other.close()
    parent = os.getppid() if parent is None else parent
    die_with_parent(parent)
    telemetry_streams.reset_local_losses()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the supervisor, which drains
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    beats[spec.index] = time.time()
    threading.Thread(target=_heartbeat, args=(beats, spec.index, parent, stop), daemon=True).start()
    s = spec.settings
    name = f"w{spec.index}"
    with bind(run_id=spec.run_id, correlation_id=spec.run_id, worker=name, session=f"s{spec.index}"):
        table = OwnershipTable.attach(spec.run_dir)
        telemetry = ContentionTelemetry.attach(spec.run_dir)
        counters = telemetry.writer(spec.index)
        table.bind_counters(counters)
        locks = CredentialLocks(spec.run_dir, worker=spec.index, counters=counters)
        coord = WorkerCoordination(spec.index, table, locks, s.lock_timeout)
        store = ResultsStore(spec.store_path)
        credentials = CredentialStore.load(spec.credentials_path or None)
        lifecycle = assembly.open_lifecycle(s, cohort=name, seed=spec.seed, before_send=coord.guard, index=spec.index)
        place = assembly.ExecutorPlace(spec.run_id, Path(spec.run_dir), spec.state_dir, batch, spec.seed)
        executor = assembly.build_executor(s, place, store=store, lifecycle=lifecycle, credentials=credentials,
                                           coordination=coord, worker_name=name)
        ops.info("worker started", extra={"event": "worker_started", "pid": os.getpid()})
        try:
            executor.warm()  # browser, context and page ready before the first "ready"
            while not stop.is_set():
                conn.send(("ready", spec.index))
                try:
                    msg = conn.recv()
                except EOFError:
                    break  # the supervisor is gone
                if msg[0] != "job":
                    break
                job = batch.job(msg[1])
                t0 = time.monotonic()
                report = executor.run(job)
                conn.send(("done", spec.index, report, lifecycle.stats.forced_reconnects,
                           time.monotonic() - t0, telemetry_streams.local_losses()))
        except (BrokenPipeError, EOFError, ConnectionResetError):
            ops.warning("supervisor connection lost; worker stops", extra={"event": "worker_orphaned"})
        except StaleLease as exc:  # this worker was written off (its lease fenced): it must not go on
            ops.error("lease fenced off by the store; worker stops", extra={
                "event": "worker_fenced", "resource": exc.resource, "epoch": exc.epoch, "fence": exc.fence})
        finally:
            lifecycle.close()
            store.close()
            ops.info("worker stopped", extra={"event": "worker_stopped", "pid": os.getpid()})
            table.close()
            telemetry.close()


__all__ = ["WorkerSpec", "WorkerCoordination", "worker_main"]
