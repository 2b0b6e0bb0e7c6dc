"""Soak / burn-in: the batch in a loop for a duration, on the same supervisor and workers as ``run``.

Why the same path: a soak is evidence that *the production path* holds up
for hours, so it must not be a separate harness.  The soak only swaps the
supervisor's scheduler (:class:`CyclingScheduler` repeats the batch, job
``ID`` of cycle ``n`` runs as ``ID@n``, each cycle's jobs recorded in the
store as it starts) and plugs in :class:`SoakHooks`, which fold every job
report into per-window histograms (bounded memory, see
:mod:`engine.soak.watch`), sample resources, and at each window's end
evaluate the SLO budgets and alert rules.  A critical alert halts the soak
(drain, diagnostic file).  When the time is up no new job is started; jobs
in flight finish, and the queued rest of the last cycle is removed from the
store (never started, so nothing is lost), so the soak ends within one job
of its target.

Rollback drill (``--rollback-drill``): the soak runs in three phases on
the same scheduler and store — parallel until 40% of the duration, then
the legacy sequential path (``--mode legacy``'s executor, in this process,
no shared-memory table) until 60%, then parallel again.  Each switch waits
for the jobs in flight; the drill passes when every phase completed jobs,
no started job was left without an outcome at either switch or at the
end, and no duplicate outcome was refused.  Its legacy phase is also the
readiness check's measurement of the legacy path's throughput.

Cron safety: one run or soak per state directory (the state directory's
lock, :mod:`engine.records.statedir`; a second soak exits at once with
:data:`EXIT_BUSY`), a dated run directory,
and quiet stdout (one verdict line) unless ``--verbose``.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import signal
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import filelock
import orjson

from coordination.telemetry_context import bind, stream_logger
from engine.soak.alerts import AlertManager, JsonlSink, StderrSink, WebhookSink
from engine.records.batch import Batch
from engine.config import Settings
from engine.errors import ReportError, StateBusy
from engine.evidence.failures import build_failure_matrix
from engine.evidence.report import build_evidence
from engine.execution.runs import PreparedRun, RunRequest, build_supervisor, prepare
from engine.evidence.outputs.metrics import soak_figures, write_metrics
from engine.evidence.slo import SLOSpec, load_slo
from engine.soak.watch import MemoryTrack, SoakHooks, read_windows
from engine.records.store import ResultsStore
from engine.execution.assembly import run_sequentially, sequential_executor
from engine.execution.executor import JobReport
from engine.execution.scheduling import AffinityScheduler, take_preferred
from engine.execution.supervisor import JOB_DEADLINE_GRACE
from engine.records import rundir, streams

ops = stream_logger("operational", __name__)
domain = stream_logger("domain", __name__)

DEFAULT_WINDOW_S = 3600.0
DRILL_TO_LEGACY = 0.4   # fraction of the duration at which the drill switches to the legacy path
DRILL_BACK = 0.6        # ... and back to the parallel path
MAX_SAMPLE_S = 5.0      # resource and memory sampling interval (shorter for short windows)
MEMORY_SETTLE_S = 60.0  # supervisor memory growth is measured from this point (start-up is not growth)


@dataclass(frozen=True, slots=True)
class SoakSettings:
    duration_s: float
    window_s: float | None = None  # None: the SLO file's window, else one hour
    slo_path: str | None = None
    webhook: str | None = None
    rollback_drill: bool = False
    metrics_path: str | None = None  # rewritten (atomically) at every window; the CLI writes the final one


class SoakBusy(StateBusy):
    """Another soak holds this state directory."""


class CyclingScheduler(AffinityScheduler):
    """Repeat the batch while the current phase is open; re-queued jobs go first, and always run.

    The dispatch policy (credential affinity) is the one every scheduler
    shares (:class:`~engine.execution.scheduling.AffinityScheduler`); this
    class owns only the queue.

    ``stop_at`` (monotonic) is the end of the current phase: after it no
    new job is handed out, but a job re-queued because its worker died is,
    since it was already started.  Each job's time in the queue is measured
    from when its cycle was queued (or it was re-queued) to when a worker
    took it: the starvation figure of the readiness check.
    """

    def __init__(self, batch: Batch, store: ResultsStore, run_id: str, first_cycle: list[str]) -> None:
        super().__init__(lambda job_id: batch.job(job_id).credential)
        self.batch = batch
        self.store = store
        self.run_id = run_id
        self.stop_at = math.inf
        self.cycle = 1 if first_cycle else 0
        now = time.monotonic()
        self._queue: collections.deque[str] = collections.deque(first_cycle)
        self._retry: collections.deque[str] = collections.deque()
        self._queued_at: dict[str, float] = dict.fromkeys(first_cycle, now)
        self._wait_max = 0.0
        self.run_wait_max = 0.0

    def _open(self) -> bool:
        return time.monotonic() < self.stop_at

    def next_job(self, *prefer: Callable[[str], bool], fallback: bool = True) -> str | None:
        if self._retry:
            return self._took(self._retry.popleft())
        if not self._open():
            return None
        if not self._queue:
            self.cycle += 1
            ids = [f"{j.id}@{self.cycle}" for j in self.batch.jobs]
            self.store.add_jobs(self.run_id, [(i, j.line, j.flow_key, j.spec()) for i, j in zip(ids, self.batch.jobs)])
            self._queue.extend(ids)
            now = time.monotonic()
            self._queued_at.update(dict.fromkeys(ids, now))
        job_id = take_preferred(self._queue, *prefer, fallback=fallback)
        return None if job_id is None else self._took(job_id)

    def _took(self, job_id: str) -> str:
        waited = time.monotonic() - self._queued_at.pop(job_id, time.monotonic())
        self._wait_max = max(self._wait_max, waited)
        self.run_wait_max = max(self.run_wait_max, waited)
        return job_id

    def requeue(self, job_id: str) -> None:
        self._retry.append(job_id)
        self._queued_at[job_id] = time.monotonic()

    def take_wait_max(self) -> float:
        """The longest queue wait since the last call (seconds)."""
        out, self._wait_max = self._wait_max, 0.0
        return out

    def __len__(self) -> int:
        return len(self._retry) + (max(1, len(self._queue)) if self._open() else 0)


@dataclass(slots=True)
class SoakResult:
    run_id: str
    run_dir: Path
    status: str  # completed | halted | interrupted
    go: bool
    reasons: list[str]
    summary: dict[str, Any]  # as written to the summary file (``record.to_json()``)
    record: rundir.SoakSummary


@dataclass(slots=True)
class _Phase:
    mode: str          # parallel | legacy
    until: float       # monotonic
    started: float = 0.0
    ended: float = 0.0
    jobs: int = 0
    unfinished_after: int = 0
    status: str = "pending"  # pending | completed | interrupted | halted | skipped


def run_soak(batch_path: str, settings: Settings, soak: SoakSettings, *, credentials_path: str | None,
             write_line: Callable[[str], None], on_progress=None) -> SoakResult:
    spec: SLOSpec | None = load_slo(soak.slo_path) if soak.slo_path else None
    window_s = soak.window_s or (spec.window_s if spec is not None else DEFAULT_WINDOW_S)
    try:
        prepared: PreparedRun = prepare(RunRequest(batch_path, settings, credentials_path=credentials_path,
                                                   settings_source="soak"))
    except StateBusy as exc:  # the state directory's lock: one run or soak per state directory
        raise SoakBusy(str(exc)) from exc
    try:
        return _Soak(prepared, settings, soak, spec, window_s, credentials_path, write_line, on_progress).run()
    finally:
        prepared.release()


class _Soak:
    """One soak run: its phases, then the summary and evidence files."""

    def __init__(self, prepared: PreparedRun, settings: Settings, soak: SoakSettings, spec: SLOSpec | None,
                 window_s: float, credentials_path: str | None, write_line, on_progress) -> None:
        self.prepared = prepared
        self.settings = settings
        self.soak = soak
        self.spec = spec
        self.window_s = window_s
        self.credentials_path = credentials_path
        self.write_line = write_line
        self.on_progress = on_progress
        self.run_dir = prepared.run_dir
        self.stop_requested = False
        self.workers_n = settings.effective_workers
        self.started_wall = time.time()

    def run(self) -> SoakResult:
        prepared, soak, run_dir = self.prepared, self.soak, self.run_dir
        if soak.slo_path:
            _copy_slo(Path(soak.slo_path), run_dir)
        sinks = [StderrSink(self.write_line), JsonlSink(run_dir)]
        if soak.webhook:
            sinks.append(WebhookSink(soak.webhook))
        alerts = AlertManager.from_spec(self.spec, sinks, run_id=prepared.run_id)
        installed = streams.install(run_dir)
        started_wall, started = time.time(), time.monotonic()
        self.started_wall = started_wall
        store = ResultsStore(prepared.store_path)
        store_ids = set(store.job_ids(prepared.run_id))  # the first cycle was recorded by prepare()
        scheduler = CyclingScheduler(prepared.batch, store, prepared.run_id,
                                     [i for i in prepared.job_ids if i in store_ids])
        sample_s = max(0.5, min(MAX_SAMPLE_S, self.window_s / 4))
        memory = MemoryTrack(started_wall, settle_s=min(MEMORY_SETTLE_S, soak.duration_s / 10))
        hooks = SoakHooks(window_s=self.window_s, alerts=alerts, run_dir=run_dir, started=started_wall,
                          scheduler=scheduler, sample_s=sample_s, memory=memory,
                          on_window=self._window_metrics if soak.metrics_path else None)
        end = started + soak.duration_s
        if soak.rollback_drill:
            phases = [_Phase("parallel", started + DRILL_TO_LEGACY * soak.duration_s),
                      _Phase("legacy", started + DRILL_BACK * soak.duration_s), _Phase("parallel", end)]
        else:
            phases = [_Phase("parallel", end)]
        lock = filelock.FileLock(str(rundir.run_lock_path(run_dir)))
        lock.acquire(timeout=0)
        try:
            with bind(run_id=prepared.run_id, correlation_id=prepared.run_id, worker="supervisor"):
                ops.info("soak started", extra={"event": "soak_started", "duration_s": soak.duration_s,
                                                "window_s": self.window_s, "slo": soak.slo_path,
                                                "rollback_drill": soak.rollback_drill})
                for phase in phases:
                    if self.stop_requested or hooks.halted:
                        phase.status = "skipped"
                        continue
                    scheduler.stop_at = phase.until
                    phase.started = time.time()
                    hooks.mode = phase.mode
                    if phase.mode == "parallel":
                        self._parallel(phase, scheduler, hooks)
                    else:
                        self._legacy(phase, scheduler, hooks, store)
                    phase.ended = time.time()
                    phase.unfinished_after = _unfinished(store, prepared.run_id)
                    if len(phases) > 1:
                        domain.info("soak phase finished", extra={
                            "event": "soak_phase", "mode": phase.mode, "jobs": phase.jobs, "status": phase.status,
                            "unfinished": phase.unfinished_after})
                ended = time.time()
                aggregate = hooks.finish(ended)
                run_alerts = alerts.evaluate_run(aggregate.to_json())
                aggregate = dataclasses.replace(aggregate, slo=tuple(r.record() for r in alerts.last_results))
                interrupted = any(p.status == "interrupted" for p in phases)
                status = "halted" if hooks.halted else ("interrupted" if interrupted else "completed")
                not_started = store.discard_unstarted(prepared.run_id) if status == "completed" else 0
                store.finish_run(prepared.run_id, status)
                summary = self._summary(store, scheduler, hooks, alerts, phases, aggregate, run_alerts,
                                        started_wall, ended, status, not_started)
                reasons = _soak_reasons(summary, hooks.halted, alerts.breached)
                summary = dataclasses.replace(summary, verdict=rundir.Verdict(go=not reasons, reasons=tuple(reasons)))
                rundir.write_failure_matrix(run_dir, build_failure_matrix(prepared.store_path, prepared.run_id,
                                                                          str(run_dir)))
                rundir.write_summary(run_dir, summary)
                _evidence(run_dir)
                ops.info("soak finished", extra={"event": "soak_finished", "status": status, "go": not reasons})
                return SoakResult(prepared.run_id, run_dir, status, not reasons, reasons, summary.to_json(), summary)
        finally:
            lock.release()
            alerts.close()
            store.close()
            installed.close()

    # -- phases ---------------------------------------------------------------------------

    def _parallel(self, phase: _Phase, scheduler: CyclingScheduler, hooks: SoakHooks) -> None:
        p = self.prepared
        sup = build_supervisor(self.settings, dataclasses.replace(p, job_ids=[]), self.credentials_path,
                               on_progress=self.on_progress, scheduler=scheduler, hooks=hooks, keep_reports=False)
        out = sup.run()
        phase.jobs = out.progress.done
        if hooks.halted:
            phase.status = "halted"
        elif out.status == "interrupted":
            phase.status = "interrupted"
            self.stop_requested = True
        else:
            phase.status = "completed"

    def _legacy(self, phase: _Phase, scheduler: CyclingScheduler, hooks: SoakHooks, store: ResultsStore) -> None:
        """The rollback path, in this process, fed by the same scheduler; a signal stops it after the current job."""
        p = self.prepared

        def on_signal(signum: int, _frame: object) -> None:
            self.stop_requested = True

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        domain.warning("rollback drill: switched to the legacy path", extra={"event": "rollback_drill",
                                                                             "to": "legacy"})
        try:
            def on_report(report: JobReport, seconds: float) -> None:
                phase.jobs += 1
                hooks.on_report(None, report, "legacy", seconds)
                hooks.on_tick(None)

            with sequential_executor(self.settings, p.run_id, self.run_dir, p.batch, p.seed,
                                     self.credentials_path, store) as executor:
                run_sequentially(executor, p.batch, scheduler.next_job, on_report,
                                 should_stop=lambda: self.stop_requested or hooks.halted)
                hooks.sample(None)  # the legacy browser's figures before it closes
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
        phase.status = "halted" if hooks.halted else ("interrupted" if self.stop_requested else "completed")
        domain.warning("rollback drill: switched back to the parallel path", extra={"event": "rollback_drill",
                                                                                    "to": "parallel"})

    # -- metrics --------------------------------------------------------------------------

    def _window_metrics(self, hooks: SoakHooks, sup: Any, now: float) -> None:
        """Rewrite the ``--metrics`` file with the soak's figures so far (``status="running"``), so a scraper
        sees a live soak move window by window; a write that fails is logged and the soak goes on."""
        path = self.soak.metrics_path
        assert path is not None
        so_far = rundir.SoakSummary(run_id=self.prepared.run_id, started_at=self.started_wall, ended_at=now,
                                    workers=self.workers_n, mode=self._mode(), status="running",
                                    aggregate=hooks.running_total(sup, now))
        figures = dataclasses.replace(soak_figures(so_far, self.prepared.store_path, backend=self.settings.backend),
                                      windows=hooks.windows_closed)
        try:
            write_metrics(path, figures)
        except OSError as exc:
            ops.error("soak metrics file not written", extra={"event": "metrics_failed", "path": path,
                                                               "error": exc.strerror, "windows": hooks.windows_closed})

    def _mode(self) -> str:
        return "parallel+rollback-drill" if self.soak.rollback_drill else "parallel"

    # -- summary --------------------------------------------------------------------------

    def _summary(self, store: ResultsStore, scheduler: CyclingScheduler, hooks: SoakHooks, alerts: AlertManager,
                 phases: list[_Phase], aggregate: rundir.Window, run_alerts: list[rundir.Alert], started: float,
                 ended: float, status: str, not_started: int) -> rundir.SoakSummary:
        p = self.prepared
        batch_path = Path(p.batch.path)
        return rundir.SoakSummary(
            run_id=p.run_id, started_at=started, ended_at=ended, target_duration_s=self.soak.duration_s,
            window_s=self.window_s, workers=self.workers_n,
            mode=self._mode(),
            status=status, halt_reason=hooks.halted, cycles=scheduler.cycle,
            batch=rundir.BatchInfo(str(batch_path), _sha256(batch_path), len(p.batch.jobs)),
            windows=read_windows(self.run_dir), aggregate=aggregate, throughput=_throughputs(phases, aggregate),
            jobs=self._job_accounting(store, scheduler, not_started),
            last_quarter=_last_quarter(store, p.run_id, started, ended), supervisor_memory=hooks.memory.record(),
            phases=tuple(rundir.SoakPhase(ph.mode, ph.started or None, ph.ended or None, ph.jobs, ph.status,
                                          ph.unfinished_after) for ph in phases),
            rollback_drill=_drill(phases, hooks.duplicates) if self.soak.rollback_drill else None,
            alerts_fired=dict(alerts.counts), run_alerts=tuple(run_alerts))

    def _job_accounting(self, store: ResultsStore, scheduler: CyclingScheduler,
                        not_started: int) -> rundir.JobAccounting:
        batch, s = self.prepared.batch, self.settings
        recorded = finished = unfinished = over = 0
        longest = 0.0
        for job_id, first_start, outcome_at in store.job_spans(self.prepared.run_id):
            recorded += 1
            if outcome_at is not None:
                finished += 1
            elif first_start is not None:
                unfinished += 1
            if first_start is None or outcome_at is None:
                continue
            span = outcome_at - first_start
            longest = max(longest, span)
            job = batch.job(job_id)
            if span > job.timeout * (1 + job.retries) + job.retries * s.retry_cap + JOB_DEADLINE_GRACE:
                over += 1
        return rundir.JobAccounting(recorded, finished, unfinished, not_started, over, longest,
                                    scheduler.run_wait_max)


def _copy_slo(src: Path, run_dir: Path) -> None:
    """The SLO file as JSON in the run directory (a TOML file is converted), for the report and readiness."""
    raw = src.read_bytes()
    if src.suffix.lower() == ".toml":
        raw = orjson.dumps(tomllib.loads(raw.decode("utf-8")), option=orjson.OPT_INDENT_2)
    rundir.write_slo_copy(run_dir, raw)


def _unfinished(store: ResultsStore, run_id: str) -> int:
    return sum(1 for _j, first, done in store.job_spans(run_id) if first is not None and done is None)


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        ops.warning("cannot hash the batch file", extra={"event": "batch_hash_failed", "error": exc.strerror})
        return None


def _throughputs(phases: list[_Phase], aggregate: rundir.Window) -> rundir.Throughputs:
    def rate(mode: str) -> float | None:
        done = [ph for ph in phases if ph.mode == mode and ph.started and ph.ended > ph.started]
        span = sum(ph.ended - ph.started for ph in done)
        return sum(ph.jobs for ph in done) / span if span > 0 else None
    return rundir.Throughputs(aggregate.throughput, rate("parallel"), rate("legacy"))


def _last_quarter(store: ResultsStore, run_id: str, started: float, ended: float) -> rundir.LastQuarter:
    since = started + 0.75 * (ended - started)
    counts = store.outcome_counts_since(run_id, since)
    done = counts["passed"] + counts["failed"]
    return rundir.LastQuarter(since, ended, counts["passed"], counts["failed"],
                              counts["failed"] / done if done else None)


def _drill(phases: list[_Phase], duplicates: int) -> rundir.RollbackDrill:
    before, legacy, after = phases
    lost = max(ph.unfinished_after for ph in phases)
    problems = []
    for ph, name in ((before, "parallel (before)"), (legacy, "legacy"), (after, "parallel (after)")):
        if ph.status != "completed":
            problems.append(f"the {name} phase did not complete ({ph.status})")
        elif ph.jobs == 0:
            problems.append(f"no job completed in the {name} phase")
    if lost:
        problems.append(f"{lost} started job(s) without an outcome at a switch")
    if duplicates:
        problems.append(f"{duplicates} duplicate outcome(s) refused")
    return rundir.RollbackDrill(not problems, legacy.started or None, after.started or None, before.jobs,
                                legacy.jobs, after.jobs, lost, duplicates, "; ".join(problems) or None)


def _soak_reasons(summary: rundir.SoakSummary, halted: str | None, breached: bool) -> list[str]:
    agg = summary.aggregate
    reasons = []
    if halted:
        reasons.append(f"halted: {halted}")
    if breached:
        reasons.append("SLO breached")
    if agg is not None and agg.duplicates:
        reasons.append(f"{agg.duplicates} duplicate outcome(s)")
    if agg is not None and agg.unowned_uses:
        reasons.append(f"{agg.unowned_uses} unowned session use(s)")
    if summary.status == "interrupted":
        reasons.append("interrupted before the target duration")
    drill = summary.rollback_drill
    if drill is not None and not drill.passed:
        reasons.append(f"rollback drill failed: {drill.error}")
    return reasons


def _evidence(run_dir: Path) -> None:
    """The HTML dashboard; a failure to write it is logged, never lost in the verdict."""
    try:
        build_evidence(run_dir)
    except ReportError as exc:
        ops.error("evidence report not written", extra={"event": "report_failed", "error": str(exc)})


__all__ = ["SoakSettings", "SoakResult", "SoakBusy", "CyclingScheduler", "run_soak"]
