"""A forked worker: takes jobs from the supervisor, runs them, reports back.

The worker owns one browser and one session slot (slot index = worker
index).  Every CDP command it sends first passes the ownership guard
(``check_owner`` with the epoch of its current claim), so a worker the
supervisor has already written off — its slot reclaimed with a new epoch —
is refused at its very next send instead of racing its replacement.

Heartbeat: a daemon thread stamps ``heartbeats[index]`` twice a second, on
``time.monotonic()`` (one clock for every process of the machine on Linux):
a wall-clock step must not make every worker look stalled at once.

When the supervisor dies the worker dies with it, at once
(``PR_SET_PDEATHSIG`` = SIGKILL, and the heartbeat thread's parent-pid
check as a second line): an orphan that finished its job would record an
outcome nobody waits for, and a resumed run must not meet workers of the
dead one.  The job in flight runs again on resume (at-least-once
execution); its outcome is recorded exactly once (the store's schema and
fences).  Its reaper tears its browser down when it sees the worker gone.

Sessions (``sessions_per_worker = K > 1``): the worker runs K session
threads on one shared browser (:class:`~navigation.shared_browser.SharedBrowser`).
Each session is its own consumer of jobs and owns, in its own thread, all
that a one-session worker owns: a slot in the ownership table (slot
``index * K + s``, its own epoch; the guard on every send checks *that*
slot), a browser-level websocket (:class:`~navigation.shared_browser.SessionLifecycle`;
the synchronous client stays one connection per thread), a SQLite
connection, credential-lock handles and a :class:`JobExecutor` (context,
warm page, retries).  Why a websocket per session rather than flattened
page sessions on one shared connection: the client is synchronous and
single-owner; sharing one socket between K threads would need a reader
thread and a lock on the hot path, while a loopback websocket costs one
file descriptor.  Anonymous jobs share the browser, each in a browser
context of its own; a credential job runs on that credential's persistent
profile in a browser of the session's own (profile owner ``w{index}s{s}``),
so profile isolation and the credential lock are as with one session.

The pipe carries ``("ready", index, s)`` per free session, ``("job", id, s)``
back, and ``("done", index, report, ..., s)``; the session threads send
under one lock, the main thread reads and routes jobs to each session's
inbox.  ``("stop", s)`` stops one session, ``("stop",)`` all of them; ``("park", s)``
(autoscaled runs: the session is above the run's target) makes a waiting
session give back its warm page until its next job.
Heartbeats stay per worker; SIGTERM lets every session finish its job.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import queue
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
from navigation.lifecycle import BrowserLifecycle
from navigation.shared_browser import SessionLifecycle, SharedBrowser

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
    """Credential locks (filelock tickets) and the session slot (shared-memory table) for one worker session.

    ``slot``: the session's slot in the table (default: the worker index, one session per worker); the owner
    recorded in it is the worker ``index`` either way.
    """

    def __init__(self, index: int, table: OwnershipTable, locks: CredentialLocks, lock_timeout: float,
                 *, slot: int | None = None, session_id: str | None = None) -> None:
        self.index = index
        self.slot = index if slot is None else slot
        self.session_id = session_id or f"w{index}"
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
        slot = self.table.claim(self.index, slot=self.slot, session_id=self.session_id)
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
        self.table.check_owner(self.slot, self.index, self.epoch)


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
        beats[index] = time.monotonic()
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
    beats[spec.index] = time.monotonic()
    threading.Thread(target=_heartbeat, args=(beats, spec.index, parent, stop), daemon=True).start()
    s = spec.settings
    if s.session_slots > 1 or s.sessions_auto:
        _serve_sessions(spec, conn, batch, stop)
        return
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


class _Pipe:
    """The worker's end of its pipe, shared by its session threads: one message at a time."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: tuple) -> None:
        with self._lock:
            self.conn.send(message)


@dataclass(slots=True)
class _WorkerShared:
    """What a worker's session threads share: all of it thread-safe."""

    spec: WorkerSpec
    batch: Batch
    pipe: _Pipe
    browser: SharedBrowser | None  # None: remote endpoints (each session connects on its own)
    table: OwnershipTable
    counters: Any
    credentials: CredentialStore
    stop: threading.Event
    sessions: list["_Session"]

    def forced_reconnects(self) -> int:
        return sum(x.lifecycle.forced_reconnects for x in self.sessions if x.lifecycle is not None)


class _Session:
    """One session thread of a worker: its slot, websocket, store connection and executor, all its own."""

    def __init__(self, number: int, shared: _WorkerShared) -> None:
        spec = shared.spec
        self.number = number
        self.shared = shared
        self.slot = spec.index * spec.settings.session_slots + number
        self.name = f"w{spec.index}s{number}"
        self.inbox: "queue.Queue[tuple]" = queue.Queue()
        self.lifecycle: BrowserLifecycle | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name=f"drover-{self.name}", daemon=True)

    def _main(self) -> None:
        spec = self.shared.spec
        with bind(run_id=spec.run_id, correlation_id=spec.run_id, worker=f"w{spec.index}",
                  session=f"s{self.slot}"):
            try:
                self._serve()
            except (BrokenPipeError, EOFError, ConnectionResetError):
                ops.warning("supervisor connection lost; session stops", extra={"event": "worker_orphaned"})
                self.shared.stop.set()
            except StaleLease as exc:  # written off (its lease fenced): this worker must not go on
                ops.error("lease fenced off by the store; worker stops", extra={
                    "event": "worker_fenced", "resource": exc.resource, "epoch": exc.epoch, "fence": exc.fence})
                self.shared.stop.set()
            except BaseException as exc:  # a bug: the worker exits non-zero (re-raised by its main thread)
                self.error = exc
                ops.exception("session failed; worker stops", extra={"event": "session_failed",
                                                                     "error": f"{type(exc).__name__}: {exc}"})
                self.shared.stop.set()

    def _serve(self) -> None:
        sh = self.shared
        spec, s = sh.spec, sh.spec.settings
        locks = CredentialLocks(spec.run_dir, worker=spec.index, counters=sh.counters)  # descriptors of its own
        coord = WorkerCoordination(spec.index, sh.table, locks, s.lock_timeout, slot=self.slot, session_id=self.name)
        store = ResultsStore(spec.store_path)  # SQLite: one connection per thread
        if sh.browser is None:  # remote browsers: a websocket of its own, never a browser to restart or share
            lifecycle: BrowserLifecycle = assembly.open_lifecycle(s, cohort=self.name, seed=spec.seed,
                                                                  before_send=coord.guard, index=spec.index)
        else:
            lifecycle = SessionLifecycle(sh.browser, cohort=self.name, seed=spec.seed, before_send=coord.guard)
        self.lifecycle = lifecycle
        place = assembly.ExecutorPlace(spec.run_id, Path(spec.run_dir), spec.state_dir, sh.batch, spec.seed)
        executor = assembly.build_executor(s, place, store=store, lifecycle=lifecycle, credentials=sh.credentials,
                                           coordination=coord, worker_name=self.name, profile_owner=self.name)
        try:
            if not s.sessions_auto:  # "auto": most sessions wait parked at first; each warms on its first job
                executor.warm()
            while not sh.stop.is_set():
                sh.pipe.send(("ready", spec.index, self.number))
                msg = self._next()
                while msg is not None and msg[0] == "park":  # above the run's target: give back the warm page
                    executor.cool()
                    msg = self._next()
                if msg is None or msg[0] != "job":
                    break
                job = sh.batch.job(msg[1])
                t0 = time.monotonic()
                # no recycle of the shared browser while this job runs
                with sh.browser.job() if sh.browser is not None else contextlib.nullcontext():
                    report = executor.run(job)
                sh.pipe.send(("done", spec.index, report, sh.forced_reconnects(), time.monotonic() - t0,
                              telemetry_streams.local_losses(), self.number))
        finally:
            lifecycle.close()
            store.close()
            locks.close()

    def _next(self) -> tuple | None:
        """The supervisor's answer to this session's "ready" (None: the worker is stopping)."""
        while True:
            try:
                return self.inbox.get(timeout=0.5)
            except queue.Empty:
                if self.shared.stop.is_set():
                    return None


def _serve_sessions(spec: WorkerSpec, conn: Connection, batch: Batch, stop: threading.Event) -> None:
    """K session threads on one shared browser; this (main) thread routes the supervisor's messages."""
    s = spec.settings
    with bind(run_id=spec.run_id, correlation_id=spec.run_id, worker=f"w{spec.index}", session=None):
        table = OwnershipTable.attach(spec.run_dir)
        telemetry = ContentionTelemetry.attach(spec.run_dir)
        counters = telemetry.writer(spec.index)
        table.bind_counters(counters)
        browser = None if s.browser_endpoints else SharedBrowser(assembly.lifecycle_settings(s),
                                                                 cohort=f"w{spec.index}")
        shared = _WorkerShared(spec, batch, _Pipe(conn), browser, table, counters,
                               CredentialStore.load(spec.credentials_path or None), stop, [])
        shared.sessions.extend(_Session(n, shared) for n in range(s.session_slots))
        ops.info("worker started", extra={"event": "worker_started", "pid": os.getpid(),
                                          "sessions": s.session_slots, "autoscaled": s.sessions_auto})
        try:
            for session in shared.sessions:
                session.thread.start()
            _route(conn, shared)
            for session in shared.sessions:
                session.thread.join(timeout=60)  # each ends after its job; jobs are bounded by their timeouts
            failed = [x.error for x in shared.sessions if x.error is not None]
            if failed:
                raise failed[0]
        finally:
            alive = [x.name for x in shared.sessions if x.thread.is_alive()]
            if alive:
                ops.error("sessions still running at worker exit", extra={"event": "sessions_left", "sessions": alive})
            if browser is not None:
                browser.close()
            ops.info("worker stopped", extra={"event": "worker_stopped", "pid": os.getpid()})
            table.close()
            telemetry.close()


def _route(conn: Connection, shared: _WorkerShared) -> None:
    """Hand each "job" / "stop" to its session until every session has ended (or the supervisor is gone)."""
    sessions = shared.sessions
    while any(x.thread.is_alive() for x in sessions):
        try:
            if not conn.poll(0.25):
                continue
            msg = conn.recv()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            ops.warning("supervisor connection lost; worker stops", extra={"event": "worker_orphaned"})
            shared.stop.set()
            return
        if (msg[0] == "job" and len(msg) == 3) or (msg[0] in ("stop", "park") and len(msg) == 2):
            sessions[msg[-1]].inbox.put(msg)  # ("job", job_id, s) / ("stop", s) / ("park", s): one session
        else:  # ("stop",): every session
            for x in sessions:
                x.inbox.put(("stop",))


__all__ = ["WorkerSpec", "WorkerCoordination", "worker_main"]
