"""Soak / burn-in: the batch in a loop for a duration, on the same supervisor and workers as ``run``.

Why the same path: a soak is evidence that *the production path* holds up
for hours, so it must not be a separate harness.  The soak only swaps the
supervisor's scheduler (:class:`CyclingScheduler` repeats the batch, job
``ID`` of cycle ``n`` runs as ``ID@n``, each cycle's jobs recorded in the
store as it starts) and plugs in :class:`SoakHooks`, which fold every job
report into per-window histograms (bounded memory, see
:mod:`engine.metrics`), sample resources, and at each window's end
evaluate the SLO budgets and alert rules.  A critical alert halts the soak
(drain, diagnostic file).

Cron safety: one soak per state directory (``soak.lock``, a filelock; a
second soak exits at once with :data:`EXIT_BUSY`), a dated run directory,
and quiet stdout (one verdict line) unless ``--verbose``.
"""
from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import filelock
import orjson
import psutil

from coordination.telemetry_context import bind, stream_logger
from engine.alerts import AlertManager, JsonlSink, StderrSink, WebhookSink
from engine.batch import Batch
from engine.config import Settings
from engine.errors import ConfigError, ReportError
from engine.executor import JobReport
from engine.failures import build_failure_matrix, to_dicts
from engine.metrics import Histogram
from engine.report import build_evidence
from engine.runs import PreparedRun, RunRequest, prepare
from engine.slo import SLOSpec, load_slo
from engine.store import ResultsStore
from engine.supervisor import Supervisor, SupervisorHooks, take_preferred
from engine import telemetry as streams

ops = stream_logger("operational", __name__)

DEFAULT_WINDOW_S = 3600.0


@dataclass(frozen=True, slots=True)
class SoakSettings:
    duration_s: float
    window_s: float | None = None  # None: the SLO file's window, else one hour
    slo_path: str | None = None
    webhook: str | None = None


class SoakBusy(ConfigError):
    """Another soak holds this state directory."""


class CyclingScheduler:
    """Repeat the batch until the deadline; re-queued jobs go first."""

    def __init__(self, batch: Batch, store: ResultsStore, run_id: str, deadline: float) -> None:
        self.batch = batch
        self.store = store
        self.run_id = run_id
        self.deadline = deadline
        self.cycle = 0
        self._queue: collections.deque[str] = collections.deque()

    def next_job(self, prefer=None) -> str | None:
        if not self._queue and time.monotonic() < self.deadline:
            self.cycle += 1
            ids = [f"{j.id}@{self.cycle}" for j in self.batch.jobs]
            self.store.add_jobs(self.run_id, [(i, j.line, j.flow_key, j.spec()) for i, j in zip(ids, self.batch.jobs)])
            self._queue.extend(ids)
        return take_preferred(self._queue, prefer)

    def requeue(self, job_id: str) -> None:
        self._queue.appendleft(job_id)

    def __len__(self) -> int:
        return len(self._queue) if (self._queue or time.monotonic() >= self.deadline) else 1


class _Window:
    """Accumulators for one window (and, with no end, for the whole run)."""

    def __init__(self, index: int, start: float) -> None:
        self.index = index
        self.start = start
        self.end = start
        self.passed = 0
        self.failed = 0
        self.per_worker: dict[str, int] = collections.Counter()
        self.latency: dict[str, Histogram] = {}

    def add(self, report: JobReport, worker: str) -> None:
        if report.outcome == "passed":
            self.passed += 1
        else:
            self.failed += 1
        self.per_worker[worker] += 1
        self.latency.setdefault(f"flow:{report.flow}", Histogram()).record(report.duration_ms)
        for _key, step_type, phase, ms in report.steps:
            self.latency.setdefault(f"phase:{step_type}", Histogram()).record(ms)
            if phase:
                self.latency.setdefault(f"phase:{phase}", Histogram()).record(ms)

    def to_dict(self, end: float, extra: dict[str, Any]) -> dict[str, Any]:
        span = max(1e-9, end - self.start)
        done = self.passed + self.failed
        return {
            "index": self.index, "start": self.start, "end": end,
            "jobs": {"passed": self.passed, "failed": self.failed},
            "error_rate": (self.failed / done) if done else None,
            "throughput": done / span,
            "throughput_per_worker": {w: n / span for w, n in sorted(self.per_worker.items())},
            "latency": {name: {"n": h.count, "p50": h.percentile(50), "p95": h.percentile(95),
                               "p99": h.percentile(99), "max": h.max, "avg": h.mean, "min": h.min,
                               "histogram": h.to_dict()}
                        for name, h in sorted(self.latency.items())},
            **extra}


def _sample_resources(sup: Supervisor) -> dict[str, dict[str, float]]:
    out = {}
    for h in list(sup.workers.values()):
        try:
            proc = psutil.Process(h.process.pid)
            kids = proc.children(recursive=True)
            rss = 0
            for k in kids:
                try:
                    if "chrom" in k.name():
                        rss += k.memory_info().rss
                except psutil.NoSuchProcess:
                    continue  # a renderer exited between listing and reading
            out[f"w{h.index}"] = {"browser_rss_mb": rss / 2**20, "fds": proc.num_fds(), "children": len(kids)}
        except psutil.NoSuchProcess:
            continue  # the worker died this instant; the supervisor reaps and replaces it
    return out


class SoakHooks(SupervisorHooks):
    def __init__(self, *, window_s: float, alerts: AlertManager, run_dir: Path, started: float) -> None:
        self.window_s = window_s
        self.alerts = alerts
        self.run_dir = run_dir
        self.started_wall = started
        self.window = _Window(0, started)
        self.total = _Window(-1, started)
        self.windows: list[dict[str, Any]] = []
        self.halted: str | None = None
        self.last_report = time.monotonic()
        self._restarts_seen = 0
        self._duplicates_seen = 0
        self.final: dict[str, Any] | None = None

    def on_report(self, sup: Supervisor, report: JobReport, worker: str, seconds: float) -> None:
        self.window.add(report, worker)
        self.total.add(report, worker)
        self.last_report = time.monotonic()

    def on_tick(self, sup: Supervisor) -> None:
        now = time.time()
        if now - self.window.start >= self.window_s:
            self.close_window(sup, now)

    def _safety(self, sup: Supervisor, since_restarts: int, since_dups: int) -> dict[str, Any]:
        totals = sup._table.totals() if sup._table is not None else None
        idle = time.monotonic() - self.last_report if (sup._busy() == 0 and len(sup.scheduler)) else 0.0
        return {"resources": _sample_resources(sup),
                "supervisor_rss_mb": psutil.Process().memory_info().rss / 2**20,
                "unowned_uses": totals.unowned_uses if totals else 0,
                "invalid_transitions": totals.invalid_transitions if totals else 0,
                "duplicates": sup.duplicates - since_dups, "worker_restarts": sup.progress.restarts - since_restarts,
                "idle_workers_s": idle, "queued": len(sup.scheduler)}

    def close_window(self, sup: Supervisor, now: float) -> None:
        w = self.window.to_dict(now, self._safety(sup, self._restarts_seen, self._duplicates_seen))
        self._restarts_seen, self._duplicates_seen = sup.progress.restarts, sup.duplicates
        fired = self.alerts.evaluate(w, self.windows)
        w["slo"] = [r.to_dict() for r in self.alerts.last_results]
        self.windows.append(w)
        ops.info("soak window closed", extra={"event": "window", "window": w["index"], "throughput": w["throughput"],
                                              "error_rate": w["error_rate"], "alerts": len(fired)})
        self.window = _Window(w["index"] + 1, now)
        if self.alerts.critical and self.halted is None:
            self.halted = self.alerts.halt_reason
            ops.error("soak halted by a critical alert", extra={"event": "halt", "reason": self.halted})
            self.alerts.write_diagnostic(self.run_dir, windows=self.windows[-3:])
            sup.drain_requested = True

    def on_finish(self, sup: Supervisor) -> None:
        """Close the open window and take the whole-run figures while the shared state still exists."""
        now = time.time()
        if self.window.passed + self.window.failed:
            self.close_window(sup, now)
        self.final = self.total.to_dict(now, self._safety(sup, 0, 0))
        self.final["index"] = None


@dataclass(slots=True)
class SoakResult:
    run_id: str
    run_dir: Path
    status: str  # completed | halted | interrupted
    go: bool
    reasons: list[str]
    summary: dict[str, Any]


def run_soak(batch_path: str, settings: Settings, soak: SoakSettings, *, credentials_path: str | None,
             write_line: Callable[[str], None], on_progress=None) -> SoakResult:
    os.makedirs(settings.state_dir, exist_ok=True)
    lock = filelock.FileLock(os.path.join(settings.state_dir, "soak.lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout as exc:
        raise SoakBusy(f"another soak is running on {settings.state_dir} (soak.lock is held)") from exc
    try:
        spec: SLOSpec | None = load_slo(soak.slo_path) if soak.slo_path else None
        window_s = soak.window_s or (spec.window_s if spec is not None else DEFAULT_WINDOW_S)
        prepared: PreparedRun = prepare(RunRequest(batch_path, settings, credentials_path=credentials_path,
                                                   settings_source="soak"))
        return _soak(prepared, settings, soak, spec, window_s, credentials_path, write_line, on_progress)
    finally:
        lock.release()


def _soak(prepared: PreparedRun, settings: Settings, soak: SoakSettings, spec: SLOSpec | None, window_s: float,
          credentials_path: str | None, write_line, on_progress) -> SoakResult:
    run_dir = prepared.run_dir
    if soak.slo_path:
        (run_dir / "slo.json").write_bytes(Path(soak.slo_path).read_bytes())
    sinks = [StderrSink(write_line), JsonlSink(run_dir)]
    if soak.webhook:
        sinks.append(WebhookSink(soak.webhook))
    alerts = AlertManager.from_spec(spec, sinks, run_id=prepared.run_id)
    sinks_installed = streams.install(run_dir)
    started_wall, started = time.time(), time.monotonic()
    store = ResultsStore(prepared.store_path)
    # the first cycle was recorded by prepare(): start the scheduler after it
    store_ids = set(store.job_ids(prepared.run_id))
    scheduler = CyclingScheduler(prepared.batch, store, prepared.run_id, started + soak.duration_s)
    scheduler._queue.extend(i for i in prepared.job_ids if i in store_ids)
    hooks = SoakHooks(window_s=window_s, alerts=alerts, run_dir=run_dir, started=started_wall)
    lock = filelock.FileLock(str(run_dir / "supervisor.lock"))
    lock.acquire(timeout=0)
    try:
        with bind(run_id=prepared.run_id, correlation_id=prepared.run_id, worker="supervisor"):
            ops.info("soak started", extra={"event": "soak_started", "duration_s": soak.duration_s,
                                            "window_s": window_s, "slo": soak.slo_path})
            sup = Supervisor(settings=settings, batch=prepared.batch, run_id=prepared.run_id, run_dir=run_dir,
                             state_dir=settings.state_dir, store_path=prepared.store_path, job_ids=[],
                             seed=prepared.seed, credentials_path=credentials_path, on_progress=on_progress,
                             scheduler=scheduler, hooks=hooks)
            out = sup.run()
            ended = time.time()
            aggregate = hooks.final or hooks.total.to_dict(ended, {})
            run_alerts = alerts.evaluate_run(aggregate)
            aggregate["slo"] = [r.to_dict() for r in alerts.last_results]
            status = "halted" if hooks.halted else ("interrupted" if out.status == "interrupted" and
                                                    not hooks.halted else "completed")
            store.finish_run(prepared.run_id, status)
            reasons = []
            if hooks.halted:
                reasons.append(f"halted: {hooks.halted}")
            if alerts.breached:
                reasons.append("SLO breached")
            if aggregate.get("duplicates"):
                reasons.append(f"{aggregate['duplicates']} duplicate outcome(s)")
            if aggregate.get("unowned_uses"):
                reasons.append(f"{aggregate['unowned_uses']} unowned session use(s)")
            if status == "interrupted":
                reasons.append("interrupted before the target duration")
            go = not reasons
            matrix = build_failure_matrix(prepared.store_path, prepared.run_id, str(run_dir))
            (run_dir / "failure_matrix.json").write_bytes(orjson.dumps(to_dicts(matrix), option=orjson.OPT_INDENT_2))
            summary = {"run_id": prepared.run_id, "started_at": started_wall, "ended_at": ended,
                       "target_duration_s": soak.duration_s, "window_s": window_s, "workers": sup.workers_n,
                       "mode": "parallel", "status": status, "halt_reason": hooks.halted,
                       "cycles": scheduler.cycle, "windows": hooks.windows, "aggregate": aggregate,
                       "alerts_fired": dict(alerts.counts),
                       "run_alerts": [a.to_dict() for a in run_alerts],
                       "verdict": {"go": go, "reasons": reasons}}
            (run_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 |
                                                                orjson.OPT_SERIALIZE_NUMPY))
            _evidence(run_dir)
            ops.info("soak finished", extra={"event": "soak_finished", "status": status, "go": go})
            return SoakResult(prepared.run_id, run_dir, status, go, reasons, summary)
    finally:
        lock.release()
        alerts.close()
        store.close()
        sinks_installed.close()


def _evidence(run_dir: Path) -> None:
    """The HTML dashboard; a failure to write it is logged, never lost in the verdict."""
    try:
        build_evidence(run_dir)
    except ReportError as exc:
        ops.error("evidence report not written", extra={"event": "report_failed", "error": str(exc)})


__all__ = ["SoakSettings", "SoakResult", "SoakBusy", "CyclingScheduler", "SoakHooks", "run_soak"]
