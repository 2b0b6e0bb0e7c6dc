"""The supervisor: starts workers, hands out jobs, watches them, drains on a signal.

Shaped like gunicorn's arbiter: one loop (:meth:`Supervisor.loop_once`),
signal handlers that only set a flag, and named methods for each duty —
``spawn_worker``, ``reap_worker`` (a worker died), ``murder_stalled``
(heartbeat or job deadline missed).  Messages from workers are dispatched
by name to ``msg_<name>`` methods, pytest-xdist style.  Which job goes to
which idle worker is the :class:`~engine.execution.scheduling.Scheduler`'s
business (the whole dispatch policy lives there); how a worker exists —
a forked process with a pipe, or something else — is the
:class:`~engine.execution.backend.WorkerBackend`'s.

Every supervisor start (new run or resume) begins a new generation in the
store: slot epochs start above every epoch the run has used, so the fencing
token only rises over the life of a run.

Recovery rules: a dead worker's open attempt is closed as ``lost``, its
session slot is reclaimed with a new epoch (audit record; the store's fence
for the slot is raised to it), its job goes back to the front of the queue
(at most ``MAX_LOST`` times, then it fails), and a replacement worker is
started.  SIGTERM/SIGINT start a drain: no new jobs, in-flight jobs get
``drain_grace`` seconds, then their workers are stopped and their attempts
recorded as ``interrupted`` (no final outcome, so ``--resume`` runs them
again).

Sessions (``sessions_per_worker = K``): each session of a worker is a
consumer of its own — it announces ``("ready", worker, s)``, is offered a
job by the scheduler as a :class:`WorkerView` of its own (index
``worker * K + s``, the slot it owns) and reports ``("done", ..., s)``.
The book per session is a :class:`SessionBook`; heartbeats, deaths, kills
and restarts stay per worker, so a dead worker's jobs — one per busy
session — are all closed as ``lost`` and re-queued, and its K slots
reclaimed.  A drain waits for every session's job.  A Ray actor's
consumers are its queue (``engine.ray_queue_depth``): the jobs sent ahead
to it run one after another, and a queued job's deadline counts from its
``("started", ...)``, not from its send.
"""
from __future__ import annotations

import collections
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

from coordination.telemetry_context import bind, stream_logger
from engine.config import Settings
from engine.execution.autoscale import AutoscaleSettings, ConcurrencyGate
from engine.execution.backend import WorkerBackend
from engine.execution.books import Progress, RunOutcome, SessionBook, WorkerHandle
from engine.execution.executor import JobReport
from engine.execution.forked import ForkedWorkers
from engine.execution.scheduling import Action, FifoScheduler, Scheduler
from engine.execution.worker import WorkerSpec, worker_main
from engine.records.batch import Batch
from engine.records.store import Generation, ResultsStore

ops = stream_logger("operational", __name__)
audit = stream_logger("audit", __name__)
domain = stream_logger("domain", __name__)

MAX_LOST = 3
MAX_RESTARTS = 50
JOB_DEADLINE_GRACE = 30.0


class SupervisorHooks:
    """Callbacks a caller (the soak) plugs into the loop; the defaults do nothing."""

    def on_report(self, sup: "Supervisor", report: JobReport, worker: str, seconds: float) -> None:
        return

    def on_tick(self, sup: "Supervisor") -> None:
        return

    def on_finish(self, sup: "Supervisor") -> None:
        """Called once the loop is over, before workers are stopped and shared memory is unlinked."""
        return


class Supervisor:
    def __init__(self, *, settings: Settings, batch: Batch, run_id: str, run_dir: Path, state_dir: str,
                 store_path: str, job_ids: list[str], seed: int, credentials_path: str | None,
                 on_progress: Callable[[Progress], None] | None = None, scheduler: Scheduler | None = None,
                 hooks: SupervisorHooks | None = None, keep_reports: bool = True,
                 backend: WorkerBackend | None = None) -> None:
        self.settings = settings
        self.batch = batch
        self.run_id = run_id
        self.run_dir = run_dir
        self.state_dir = state_dir
        self.store_path = store_path
        self.seed = seed
        self.credentials_path = credentials_path
        self.on_progress = on_progress
        self.workers_n = settings.effective_workers
        # Consumers per worker: its sessions, or (a Ray actor) the jobs the backend keeps sent ahead to it.
        self.sessions_n = settings.session_slots if backend is None else backend.consumers
        self.gate = autoscale_gate(settings, self.workers_n) if settings.sessions_auto else None
        self.scheduler: Scheduler = scheduler if scheduler is not None else FifoScheduler(
            job_ids, lambda job_id: batch.job(job_id).credential)
        self._own_scheduler = scheduler is None
        self.hooks = hooks or SupervisorHooks()
        self.progress = Progress(total=len(job_ids))
        self.workers: dict[int, WorkerHandle] = {}
        # idle sessions the scheduler told to wait: (worker, session) -> their worker
        self._deferred: dict[tuple[int, int], WorkerHandle] = {}
        self.reports: list[JobReport] = []
        # A soak folds reports into bounded histograms (its hooks) and must not also keep every one.
        self.keep_reports = keep_reports
        self.lost: dict[str, int] = collections.defaultdict(int)
        self.lost_attempts = 0
        self.reclaimed = 0
        self.duplicates = 0
        self.drain_requested = False
        self.drain_deadline: float | None = None
        self.per_worker: dict[str, dict[str, float]] = {}
        self.telemetry_lost: dict[int, dict[str, int]] = {}  # per worker pid: cumulative losses
        self.backend: WorkerBackend = backend if backend is not None else ForkedWorkers(
            self.workers_n, self._worker_process, store_path=store_path, sessions=self.sessions_n)
        self._store: ResultsStore | None = None
        self.generation: Generation | None = None

    def _worker_process(self, index: int, conn: Any, beats: Any, inherited: tuple, parent: int) -> None:
        """What a forked worker runs (the local backend's target)."""
        spec = WorkerSpec(index, self.run_id, str(self.run_dir), self.state_dir, self.store_path, self.settings,
                          self.seed, self.credentials_path)
        worker_main(spec, conn, beats, self.batch, inherited, parent)

    # -- signals ---------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.drain_requested:
            self.drain_deadline = time.monotonic()  # a second signal: stop now
        self.drain_requested = True

    # -- main ------------------------------------------------------------------

    def run(self) -> RunOutcome:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self._store = ResultsStore(self.store_path)
        # A new lifetime of the run: its epochs start above every epoch the run ever used (resumes included),
        # and the store fences off every lease granted before.
        slots = [f"slot:{i}" for i in range(self.workers_n * self.settings.session_slots)]  # one per session
        self.generation = self._store.begin_generation(self.run_id, slots)
        self.backend.open(self.run_dir, self.generation.epoch_floor)
        status = "completed"
        try:
            with bind(run_id=self.run_id, correlation_id=self.run_id, worker="supervisor"):
                ops.info("supervisor started", extra={"event": "supervisor_started", "workers": self.workers_n,
                                                      "sessions_per_worker": self.settings.session_slots,
                                                      "consumers_per_worker": self.sessions_n,
                                                      "jobs": self.progress.total, "pid": os.getpid(),
                                                      "generation": self.generation.generation,
                                                      "epoch_floor": self.generation.epoch_floor})
                # A caller's scheduler (the soak's) is open-ended: its length says nothing about the work ahead.
                wanted = (min(self.workers_n, max(1, self.progress.total)) if self._own_scheduler
                          else self.workers_n)
                for i in range(wanted):
                    self.spawn_worker(i)
                last_progress = 0.0
                while self.workers:
                    if not self.drain_requested and not len(self.scheduler) and not self._busy():
                        break
                    self.loop_once()
                    self.autoscale()
                    self.hooks.on_tick(self)
                    if self.drain_requested:
                        status = "interrupted"
                        if not self._drain_step():
                            break
                    now = time.monotonic()
                    if self.on_progress is not None and now - last_progress >= 0.5:
                        last_progress = now
                        self.on_progress(self.progress)
                self.hooks.on_finish(self)
                self.stop_workers()
                contention = self.backend.contention()
                totals = self.backend.totals()
                ops.info("supervisor finished", extra={"event": "supervisor_finished", "status": status,
                                                       "done": self.progress.done})
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            self.backend.close()
            self.workers.clear()
            self._store.close()
        if self.on_progress is not None:
            self.on_progress(self.progress)
        lost: dict[str, int] = {}
        for per_stream in self.telemetry_lost.values():
            for stream, n in per_stream.items():
                lost[stream] = lost.get(stream, 0) + n
        return RunOutcome(self.run_id, status, self.progress, self.reports, self.per_worker, self.lost_attempts,
                          self.reclaimed, self.duplicates, contention, totals, lost)

    def loop_once(self) -> None:
        """Wait for one batch of worker messages or deaths and handle them; then check deadlines."""
        for event in self.backend.poll(0.25):
            handle = self.workers.get(event.index)
            if handle is None:
                continue  # already reaped in this round
            if event.message is None:
                self.reap_worker(handle)
            else:
                getattr(self, f"msg_{event.message[0]}")(handle, *event.message[1:])
        self.murder_stalled()

    # -- worker messages -----------------------------------------------------------

    def msg_ready(self, handle: WorkerHandle, _index: int, number: int = 0) -> None:
        """One session of ``handle`` is free (``number``: which; a one-session worker omits it)."""
        if not handle.pid:  # a backend that learns the pid only when the worker is up (a cluster actor)
            handle.pid = self.backend.pid(handle.index)
        if self.drain_requested:
            self._send(handle, ("stop", number))
            return
        if self.gate is not None and not self.gate.admits(self._busy()):
            if self.gate.park((handle.index, number), handle):
                self._send(handle, ("park", number))
            return
        views = [h.view(n) for h in self.workers.values() for n in range(len(h.sessions))]
        decision = self.scheduler.assign(handle.view(number), views)
        if decision.action is Action.WAIT:
            self._deferred[(handle.index, number)] = handle
            return
        if decision.action is Action.STOP:
            self._send(handle, ("stop", number))
            return
        job_id = decision.job_id
        assert job_id is not None
        book = handle.sessions[number]
        book.job, book.job_started = job_id, time.monotonic()
        book.credential = self.batch.job(job_id).credential
        self.progress.running = self._busy()
        ops.info("job assigned", extra={"event": "job_assigned", "job_id": job_id, "worker_index": handle.index,
                                        "correlation_id": f"{self.run_id}/{job_id}", "worker": f"w{handle.index}",
                                        "session": f"s{handle.view(number).index}",
                                        "queued": len(self.scheduler)})
        self._send(handle, ("job", job_id, number))

    def msg_started(self, handle: WorkerHandle, _index: int, number: int = 0) -> None:
        """A job sent ahead to ``number`` began (the one before it ended): its deadline counts from now."""
        book = handle.sessions[number]
        if book.job is not None:
            book.job_started = time.monotonic()

    def msg_done(self, handle: WorkerHandle, _index: int, report: JobReport, forced_reconnects: int,
                 seconds: float, telemetry_lost: dict[str, int], number: int = 0) -> None:
        handle.sessions[number].job = None
        self.telemetry_lost[handle.pid] = telemetry_lost
        handle.jobs_done += 1
        handle.busy_seconds += seconds
        handle.forced_reconnects = forced_reconnects
        if self.keep_reports:
            self.reports.append(report)
        p = self.progress
        p.done += 1
        p.retries += report.retries
        p.passed += report.outcome == "passed"
        p.failed += report.outcome != "passed"
        p.running = self._busy()
        self.duplicates += report.duplicate
        w = self.per_worker.setdefault(f"w{handle.index}", {"jobs": 0, "busy_s": 0.0})
        w["jobs"] += 1
        w["busy_s"] += seconds
        self.hooks.on_report(self, report, f"w{handle.index}", seconds)
        if self.gate is not None:
            self.gate.job_finished(report.category)
        self._redispatch()
        self._unpark()

    # -- duties -------------------------------------------------------------------

    def spawn_worker(self, index: int) -> WorkerHandle:
        pid = self.backend.start(index)
        handle = WorkerHandle(index, pid, sessions=[SessionBook(n) for n in range(self.sessions_n)])
        self.workers[index] = handle
        ops.info("worker spawned", extra={"event": "worker_spawned", "worker_index": index, "pid": pid})
        return handle

    def reap_worker(self, handle: WorkerHandle) -> None:
        """A worker died: close its attempts, reclaim its slots, re-queue its jobs (one per busy session),
        replace it."""
        self.backend.join(handle.index, 5)
        if self.backend.alive(handle.index):
            # Its channel closed but the process lives on: end it before its job is re-queued, or two
            # processes would run that job (and the live one still owns its slot: no fence would stop it).
            ops.error("worker channel closed but its process lives: killing it", extra={
                "event": "worker_killed", "worker_index": handle.index, "reason": "channel closed"})
            self.backend.kill(handle.index)
            self.backend.join(handle.index, 10)
        code = self.backend.exit_code(handle.index)
        self.backend.forget(handle.index)
        del self.workers[handle.index]
        jobs = [b.job for b in handle.running() if b.job is not None]
        for b in handle.sessions:
            b.job = None
        clean = code == 0 and not jobs
        if not clean:
            for job in jobs or [None]:
                # Under the lost attempt's correlation id, so `trace` shows the death inside that attempt's chain.
                cid = self.run_id if job is None else \
                    f"{self.run_id}/{job}/a{self._store.next_attempt(self.run_id, job) - 1}"
                ops.error("worker died", extra={"event": "worker_died", "worker_index": handle.index,
                                                "pid": handle.pid, "exit_code": code, "job_id": job,
                                                "correlation_id": cid})
        for r in self.backend.reclaim():
            self.reclaimed += 1
            self._store.raise_fence(self.run_id, r.resource, r.new_epoch)  # the dead holder's token is void
            audit.warning("lease reclaimed from dead worker", extra={
                "event": "slot_reclaimed" if r.resource.startswith("slot:") else "lease_reclaimed",
                "resource": r.resource, "holder": r.holder, "old_epoch": r.old_epoch, "new_epoch": r.new_epoch,
                **r.detail})
        for job in jobs:
            self._settle_lost_job(handle, job, code)
        self._redispatch()  # the dead worker's credentials are no longer open anywhere
        self._unpark()
        if not clean and not self.drain_requested and (len(self.scheduler) or self._busy()):
            if self.progress.restarts >= MAX_RESTARTS:
                ops.error("worker restart limit reached", extra={"event": "restart_limit"})
                return
            self.progress.restarts += 1
            self.spawn_worker(handle.index)

    def _settle_lost_job(self, handle: WorkerHandle, job: str, code: int | None) -> None:
        """A job whose worker died under it: done if its outcome made it to the store, else re-queued
        (at most ``MAX_LOST`` times, then failed)."""
        finished = self._store.outcome_of(self.run_id, job)
        if finished is not None:
            # It died after its job's outcome was committed but before its report arrived (on a cluster the
            # answer can be lost with the node): the job is done; running it again would pass it twice.
            self.progress.running = self._busy()
            self.progress.done += 1
            self.progress.passed += finished.outcome == "passed"
            self.progress.failed += finished.outcome != "passed"
            domain.warning("worker died after recording its job: not re-run", extra={
                "event": "job_recorded_before_death", "job_id": job, "outcome": finished.outcome})
        else:
            self.progress.running = self._busy()
            closed = self._store.close_open_attempts(self.run_id, job, outcome="lost",
                                                     error=f"worker w{handle.index} died (exit {code})")
            self.lost_attempts += closed
            self.lost[job] += 1
            if self.lost[job] < MAX_LOST and not self.drain_requested:
                self.scheduler.requeue(job)
                domain.warning("job re-queued after its worker died", extra={
                    "event": "job_requeued", "job_id": job, "lost": self.lost[job]})
            elif not self.drain_requested:
                self._store.record_outcome(self.run_id, job, outcome="failed", attempts=self.lost[job],
                                           worker="supervisor", category="cdp",
                                           error=f"worker died {self.lost[job]} times running this job")
                self.progress.done += 1
                self.progress.failed += 1

    def murder_stalled(self) -> None:
        """Kill workers whose heartbeat stopped or whose job ran past its deadline."""
        mono = time.monotonic()
        for h in list(self.workers.values()):
            reason = None
            age = self.backend.heartbeat_age(h.index)
            if age > self.settings.heartbeat_timeout:
                reason = f"no heartbeat for {age:.1f}s"
            for b in h.running():
                if reason is not None or b.job is None:
                    break
                job = self.batch.job(b.job)
                limit = job.timeout * (1 + job.retries) + JOB_DEADLINE_GRACE
                if mono - b.job_started > limit:
                    reason = f"job {b.job} ran past {limit:.0f}s"
            if reason is not None and self.backend.alive(h.index):
                ops.error("killing stalled worker", extra={"event": "worker_killed", "worker_index": h.index,
                                                           "reason": reason})
                self.backend.kill(h.index)

    def _drain_step(self) -> bool:
        """One step of a drain; False when the drain is over."""
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + self.settings.drain_grace
            ops.warning("drain requested: no new jobs", extra={"event": "drain", "in_flight": self._busy(),
                                                                "grace_s": self.settings.drain_grace})
        if not self._busy():
            return False
        if time.monotonic() >= self.drain_deadline:
            for h in list(self.workers.values()):
                running = h.running()
                if running:
                    # Stop the worker first, so it cannot record an outcome over the interruption.
                    self.backend.kill(h.index)
                    self.backend.join(h.index, 5)
                for b in running:
                    self._store.close_open_attempts(self.run_id, b.job, outcome="interrupted",
                                                    error="drain grace expired")
                    domain.warning("job interrupted by drain", extra={"event": "job_interrupted", "job_id": b.job,
                                                                      "worker": f"w{h.index}"})
                    b.job = None
            return False
        return True

    def stop_workers(self) -> None:
        deadline = time.monotonic() + 10
        for h in list(self.workers.values()):
            if h.job is None and self.backend.alive(h.index):
                self._send(h, ("stop",))
        for h in list(self.workers.values()):
            if h.job is not None:
                self.backend.terminate(h.index)
        for h in list(self.workers.values()):
            self.backend.join(h.index, max(0.1, deadline - time.monotonic()))

    def autoscale(self) -> None:
        """Sessions = "auto": look at the host once per interval, log a change of target, fill new room."""
        if self.gate is None:
            return
        change = self.gate.tick(busy=self._busy(), waiting=len(self.scheduler))
        if change is not None:
            ops.info("concurrency changed", extra={"event": "autoscale", "from": change.old, "to": change.new,
                                                   "reason": change.reason, "running": self._busy(),
                                                   "queued": len(self.scheduler)})
            self._unpark()

    def _unpark(self) -> None:
        """Offer jobs to parked sessions while the run is under its autoscaled target."""
        if self.gate is None:
            return
        chosen = self.gate.unpark(self._busy(), lambda key, h: self.workers.get(key[0]) is h,
                                  lambda h: len(h.running()))
        for (index, number), h in chosen:
            self.msg_ready(h, index, number)

    def _redispatch(self) -> None:
        """Offer work again to workers that were waiting for a contended credential to come free."""
        waiting = [(h, n) for (i, n), h in self._deferred.items() if self.workers.get(i) is h]
        self._deferred.clear()
        for h, n in waiting:
            self.msg_ready(h, h.index, n)

    def safety_totals(self) -> Any:
        """Unowned session uses and invalid transitions so far (the soak samples them every window)."""
        return self.backend.totals()

    def _busy(self) -> int:
        return sum(len(h.running()) for h in self.workers.values())

    def _send(self, handle: WorkerHandle, msg: tuple) -> None:
        self.backend.send(handle.index, msg)


def autoscale_gate(s: Settings, workers: int) -> ConcurrencyGate:
    """The run's concurrency bounds under "auto": one session per worker .. every session thread."""
    cfg = AutoscaleSettings(min_sessions=workers, max_sessions=workers * s.session_slots, start=workers,
                            cpu_target=s.autoscale_cpu_target, memory_floor_mb=s.autoscale_memory_floor_mb,
                            interval_s=s.autoscale_interval)
    return ConcurrencyGate(cfg)


__all__ = ["Supervisor", "SupervisorHooks", "Progress", "RunOutcome", "WorkerHandle", "SessionBook",
           "JOB_DEADLINE_GRACE"]
