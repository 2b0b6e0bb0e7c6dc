"""One batch run from start to summary, on either path.

``parallel`` forks workers under the :class:`~engine.execution.supervisor.Supervisor`
with shared-memory ownership and credential locks; ``legacy`` is the
rollback path: one process, jobs in order, no shared-memory table — same
job executor, same results store, same log streams, so the two can be
compared job for job.

Resume: ``--resume RUN_ID`` (or ``last``) re-reads the run's batch, closes
attempts a killed supervisor left open, and runs only the jobs with no
final outcome.  The run directory's run lock (:data:`engine.records.rundir.SUPERVISOR_LOCK`, a filelock the
forked workers inherit) makes a resume wait until every process of the
interrupted run is gone, so no job runs twice at the same time.
"""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import filelock

from coordination.backoff import cohort_seed
from coordination.telemetry_context import bind, stream_logger
from engine.records import rundir, statedir
from engine.records.batch import Batch, load_batch
from engine.config import Settings, loggable
from engine.errors import ConfigError, ResultsStoreError
from engine.execution.assembly import run_sequentially, sequential_executor
from engine.execution.executor import JobReport
from engine.records.store import ResultsStore
from engine.execution.summary import RunSummary, flow_stats
from engine.execution.supervisor import Progress, Supervisor
from engine.records import streams
from navigation.legacy import REGISTRY
from navigation.steps import build_registry

ops = stream_logger("operational", __name__)

RESUME_WAIT = 300.0
STATE_WAIT = 10.0  # a resume right after a crash: the dead run's last processes may still be exiting


@dataclass(frozen=True, slots=True)
class RunRequest:
    batch_path: str | None
    settings: Settings
    resume: str | None = None
    skip_invalid: bool = False
    credentials_path: str | None = None
    settings_source: str = "defaults"


@dataclass(slots=True)
class PreparedRun:
    run_id: str
    run_dir: Path
    store_path: str
    batch: Batch
    job_ids: list[str]
    mode: str
    seed: int
    resumed: bool
    state_lock: Any = None  # the state directory's lock, held until execute() (or the soak) is over

    def release(self) -> None:
        """Give the state directory back (execute() does this; a caller that stops early must)."""
        if self.state_lock is not None:
            self.state_lock.release()
            self.state_lock = None


def new_run_id() -> str:
    return time.strftime("r%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


def store_path(settings: Settings) -> str:
    return statedir.store_path(settings.state_dir)


def prepare(req: RunRequest) -> PreparedRun:
    """Validate the batch, take the state directory and record the run (or pick up the one to resume).

    A new run's batch is validated before anything is created: a rejected
    batch leaves no state directory, store or lock file behind.
    """
    s = req.settings
    if req.resume:
        return _prepare_resume(req)
    if not req.batch_path:
        raise ConfigError("a batch file is required (or --resume RUN_ID)")
    batch = load_batch(req.batch_path, strategies=build_registry(), legacy=REGISTRY,
                       skip_invalid=req.skip_invalid)
    lock = statedir.acquire_state(s.state_dir)
    try:
        path = store_path(s)
        with ResultsStore(path) as store:
            run_id = new_run_id()
            run_dir = Path(statedir.runs_dir(s.state_dir)) / run_id
            run_dir.mkdir(parents=True)
            store.create_run(run_id, batch=os.path.abspath(req.batch_path), mode=s.mode,
                             workers=1 if s.mode == "legacy" else s.effective_workers, run_dir=str(run_dir),
                             jobs=[(j.id, j.line, j.flow_key, j.spec()) for j in batch.jobs],
                             settings={"skip_invalid": req.skip_invalid, "mode": s.mode})
    except BaseException:
        lock.release()
        raise
    seed = s.seed or cohort_seed(0, run_id) & 0xFFFFFFFF
    return PreparedRun(run_id, run_dir, path, batch, [j.id for j in batch.jobs], s.mode, seed, False, lock)


def _prepare_resume(req: RunRequest) -> PreparedRun:
    s = req.settings
    path = store_path(s)
    if not os.path.isfile(path):
        raise ResultsStoreError(f"nothing to resume: no results store at {path}")
    with ResultsStore(path) as store:
        run_id = store.latest_run_id() if req.resume == "last" else req.resume
        if run_id is None:
            raise ResultsStoreError(f"nothing to resume: no runs in {path}")
        rec = store.run(run_id)
    batch = load_batch(rec.batch, strategies=build_registry(), legacy=REGISTRY,
                       skip_invalid=bool(rec.settings.get("skip_invalid")))
    run_dir = Path(rec.run_dir)
    lock = filelock.FileLock(str(rundir.run_lock_path(run_dir)))
    try:
        lock.acquire(timeout=RESUME_WAIT)  # every process of the interrupted run has exited
    except filelock.Timeout as exc:
        raise ConfigError(f"run {run_id} is still running (its run lock is held)") from exc
    lock.release()
    state_lock = statedir.acquire_state(s.state_dir, wait=STATE_WAIT, what="resume")
    try:
        with ResultsStore(path) as store:
            closed = store.close_open_attempts(run_id, None, outcome="interrupted",
                                               error="supervisor stopped before the attempt ended")
            pending = store.pending_job_ids(run_id)
            store.set_run_status(run_id, "running")
    except BaseException:
        state_lock.release()
        raise
    ops.info("run resumed", extra={"event": "resume", "run_id": run_id, "pending": len(pending),
                                   "closed_attempts": closed})
    seed = s.seed or cohort_seed(0, run_id) & 0xFFFFFFFF
    return PreparedRun(run_id, run_dir, path, batch, pending, req.settings.mode, seed, True, state_lock)


def execute(req: RunRequest, prepared: PreparedRun, on_progress: Callable[[Progress], None] | None = None,
            hooks: Any = None, evidence: Callable[[PreparedRun, RunSummary], Any] | None = None) -> RunSummary:
    """Run a prepared batch to its summary; ``hooks``: :class:`SupervisorHooks` for the parallel path.

    ``evidence(prepared, summary)`` runs last, still inside the run (its streams open, the state directory
    held): where the caller writes the run directory's evidence (``summary.json``, ``report.html``: the
    CLI passes :func:`engine.evidence.run.write_run_evidence`, a floor above this one).
    """
    s = req.settings
    run_dir = prepared.run_dir
    sinks = streams.install(run_dir)
    lock = filelock.FileLock(str(rundir.run_lock_path(run_dir)))
    lock.acquire(timeout=0)
    started = time.monotonic()
    try:
        with bind(run_id=prepared.run_id, correlation_id=prepared.run_id, worker="supervisor"):
            ops.info("run started", extra={"event": "run_started", "mode": prepared.mode, "jobs": len(prepared.job_ids),
                                           "resumed": prepared.resumed, "batch": prepared.batch.path,
                                           "settings_source": req.settings_source,
                                           "settings": loggable(s)})  # endpoint URLs redacted
            if prepared.mode == "legacy":
                summary = _run_sequential(req, prepared, on_progress)
            else:
                summary = _run_parallel(req, prepared, on_progress, hooks)
            summary.elapsed_s = time.monotonic() - started
            with ResultsStore(prepared.store_path) as store:
                counts = store.counts(prepared.run_id)
                summary.outcomes = {"passed": counts["passed"], "failed": counts["failed"],
                                    "pending": counts["pending"]}
                store.finish_run(prepared.run_id, summary.status)
            done = sum(w["jobs"] for w in summary.per_worker.values())
            summary.throughput = done / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
            for w in summary.per_worker.values():
                w["jobs_per_s"] = w["jobs"] / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
            lost = sinks.lost()
            for k, v in summary.telemetry_lost.items():
                lost[k] = lost.get(k, 0) + v
            summary.telemetry_lost = lost
            ops.info("run finished", extra={"event": "run_finished", "status": summary.status,
                                            **{f"jobs_{k}": v for k, v in summary.outcomes.items()}})
            rundir.write_summary_text(run_dir, summary.lines())
            if evidence is not None:
                evidence(prepared, summary)
            return summary
    finally:
        lock.release()
        sinks.close()
        prepared.release()


def build_supervisor(settings: Settings, prepared: PreparedRun, credentials_path: str | None,
                     **extra: Any) -> Supervisor:
    """The supervisor of a prepared run (``run`` and the soak build it here; ``extra``: scheduler, hooks ...)."""
    if settings.backend == "ray" and "backend" not in extra:
        from engine.execution.cluster.backend import RayWorkers  # noqa: PLC0415 - Ray is optional

        extra["backend"] = RayWorkers(settings.effective_workers, settings=settings, batch=prepared.batch,
                                      run_id=prepared.run_id, state_dir=settings.state_dir,
                                      store_path=prepared.store_path, seed=prepared.seed,
                                      credentials_path=credentials_path)
    return Supervisor(settings=settings, batch=prepared.batch, run_id=prepared.run_id, run_dir=prepared.run_dir,
                      state_dir=settings.state_dir, store_path=prepared.store_path, job_ids=prepared.job_ids,
                      seed=prepared.seed, credentials_path=credentials_path, **extra)


def _run_parallel(req: RunRequest, prepared: PreparedRun, on_progress, hooks=None) -> RunSummary:
    sup = build_supervisor(req.settings, prepared, req.credentials_path, on_progress=on_progress, hooks=hooks)
    out = sup.run()
    agg = out.contention.aggregate
    return RunSummary(
        run_id=prepared.run_id, status=out.status, mode="parallel", workers=sup.workers_n, elapsed_s=0.0,
        sessions_per_worker=sup.sessions_n, concurrency=sup.gate.summary() if sup.gate is not None else None,
        outcomes={}, retries=out.progress.retries, per_flow=flow_stats(out.reports), per_worker=out.per_worker,
        throughput=0.0, restarts=out.progress.restarts, lost_attempts=out.lost_attempts,
        reclaimed_slots=out.reclaimed_slots, duplicates=out.duplicates,
        unowned_uses=out.table_totals.unowned_uses,  # the table counts every event; worker rows break it down
        invalid_transitions=out.table_totals.invalid_transitions,
        lock_wait={"count": agg.lock_wait.count, "p99_ms": agg.lock_wait.p99 * 1000,
                   "max_ms": agg.lock_wait.max * 1000},
        telemetry_lost=out.telemetry_lost)


def _run_sequential(req: RunRequest, prepared: PreparedRun, on_progress) -> RunSummary:
    """The rollback path: this process, one browser, jobs in batch order."""
    progress = Progress(total=len(prepared.job_ids))
    reports: list[JobReport] = []
    status = "completed"
    busy = [0.0]
    queue = iter(prepared.job_ids)

    def on_report(report: JobReport, seconds: float) -> None:
        busy[0] += seconds
        reports.append(report)
        progress.done += 1
        progress.passed += report.outcome == "passed"
        progress.failed += report.outcome != "passed"
        progress.retries += report.retries
        if on_progress is not None:
            on_progress(progress)

    with ResultsStore(prepared.store_path) as store, sequential_executor(
            req.settings, prepared.run_id, prepared.run_dir, prepared.batch, prepared.seed,
            req.credentials_path, store) as executor:
        try:
            run_sequentially(executor, prepared.batch, lambda: next(queue, None), on_report)
        except KeyboardInterrupt:
            status = "interrupted"
            store.close_open_attempts(prepared.run_id, None, outcome="interrupted", error="interrupted")
    return RunSummary(run_id=prepared.run_id, status=status, mode="legacy", workers=1, elapsed_s=0.0, outcomes={},
                      retries=progress.retries, per_flow=flow_stats(reports),
                      per_worker={"legacy": {"jobs": len(reports), "busy_s": busy[0]}}, throughput=0.0)


__all__ = ["RunRequest", "PreparedRun", "prepare", "execute", "new_run_id", "store_path", "build_supervisor",
           "sequential_executor"]
