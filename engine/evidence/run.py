"""The evidence of a plain ``run``: ``summary.json``, the failure matrix, ``report.html`` and the SLO verdict.

Why from the results store and not from the job reports of this process:
a resumed run's evidence must cover every job, including those finished
before the crash, and the store holds exactly one final outcome per job
with every attempt's steps and timings.  So every figure here is the
store's — the same numbers ``python -m engine results`` prints — except
what only the process that ran the batch knows (throughput of this
execution, per-worker rates, safety counters from the ownership table,
lock waits, telemetry loss), which comes from its
:class:`~engine.execution.summary.RunSummary`.

Latency is folded as a soak folds it (:mod:`engine.soak.watch`), into
bounded histograms: ``flow:NAME`` is each job's duration (all its
attempts and the waits between them), ``phase:STEP-TYPE`` every step of
its final attempt, ``label:PHASE-LABEL`` the final attempt's steps summed
per phase label.  The whole run is one
:class:`~engine.records.rundir.Window`, the shape the SLO thresholds
(:mod:`engine.evidence.slo`) and the report read.

SLO verdict over the whole run: a threshold that fails, or that had no
data (no job of that flow ran: a misspelt name would otherwise pass
forever), is a breach.  The caller (the CLI) maps a breach to exit 4.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson
import psutil

from coordination.telemetry_context import stream_logger
from engine.errors import ReportError
from engine.evidence.failures import FAILED_OUTCOMES, build_failure_matrix
from engine.evidence.report import build_evidence
from engine.evidence.slo import SLOSpec
from engine.execution.summary import RunSummary
from engine.records import rundir
from engine.records.batch import Batch
from engine.records.metrics import Histogram
from engine.records.rundir import Autoscale, BatchRunSummary, FirstFailure, RunJobs, SloResult, Window
from engine.records.store import AttemptRecord, ResultsStore

log = stream_logger("operational", __name__)

DEFAULT_CATEGORY = "navigation"  # a failed attempt without a category, as the executor treats it
MB = 2 ** 20


@dataclass(frozen=True, slots=True)
class JobResult:
    """One job as the CI outputs show it: its final outcome, and for a failure where to look."""

    job_id: str
    flow: str
    outcome: str            # passed / failed / pending
    attempts: int
    duration_ms: float | None
    worker: str | None
    category: str | None = None
    error: str | None = None
    step: str | None = None            # the failing step of the final attempt (``click[3]``)
    artifacts: tuple[str, ...] = ()    # screenshot and DOM of the failing step
    correlation_id: str | None = None  # the final attempt's chain: ``python -m engine trace`` expands it


@dataclass(slots=True)
class RunEvidence:
    """What :func:`write_run_evidence` wrote and found: the summary record, each job, the SLO breaches."""

    run_dir: Path
    summary: BatchRunSummary
    jobs: list[JobResult]
    breaches: list[SloResult] = field(default_factory=list)
    report: Path | None = None
    report_error: str | None = None

    @property
    def slo_go(self) -> bool | None:
        """None: no SLO file; else whether every whole-run threshold passed."""
        v = self.summary.verdict
        return None if v is None else v.go


def flow_names(batch: Batch) -> dict[str, str]:
    """flow key -> the name per-flow figures use: the Recorder flow's title, ``legacy:NAME``, else the file name
    (what :meth:`engine.execution.executor.JobExecutor.flow_name` reports for each job)."""
    names = {}
    for job in batch.jobs:
        flow = batch.flows.get(job.flow_key)
        names[job.flow_key] = job.flow_key if job.legacy is not None else (
            flow.title if flow is not None else os.path.basename(job.flow_key))
    return names


def latency_stats(h: Histogram) -> rundir.LatencyStats:
    return rundir.LatencyStats(h.count, h.percentile(50), h.percentile(95), h.percentile(99), h.max, h.mean, h.min, h)


def fold(latency: dict[str, Histogram], flow: str, duration_ms: float | None,
         steps: Iterable[Mapping[str, Any]]) -> None:
    """One finished job into the histograms (the soak's ``WindowTally.add``, from the store's step records)."""
    def hist(name: str) -> Histogram:
        return latency.setdefault(name, Histogram())

    if duration_ms is not None and duration_ms >= 0:
        hist(f"flow:{flow}").record(duration_ms)
    labels: dict[str, float] = {}
    for step in steps:
        ms = step.get("ms")
        if not isinstance(ms, (int, float)) or isinstance(ms, bool) or ms < 0:
            continue
        if step.get("type"):
            hist(f"phase:{step['type']}").record(float(ms))
        if step.get("phase"):
            labels[str(step["phase"])] = labels.get(str(step["phase"]), 0.0) + float(ms)
    for label, ms in labels.items():
        hist(f"label:{label}").record(ms)


def _failing_step(a: AttemptRecord) -> str | None:
    return next((str(s.get("key") or s.get("type")) for s in a.steps if s.get("ok") is False), None)


def _sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        log.warning("cannot hash the batch file", extra={"event": "batch_hash_failed", "error": exc.strerror})
        return None


def judge(spec: SLOSpec, aggregate: Window) -> tuple[Window, list[SloResult]]:
    """Every threshold on the whole run: the aggregate with its ``slo`` results, and the breaches (fail or no data)."""
    results = tuple(dataclasses.replace(r, window="run").record() for r in spec.evaluate(aggregate.to_json()))
    return dataclasses.replace(aggregate, slo=results), [r for r in results if r.ok is not True]


def breach_text(r: SloResult) -> str:
    """``flow:checkout p(95) < 800: measured 912.3`` (or ``: no data over the whole run``)."""
    if r.ok is None:
        return f"{r.metric} {r.expr}: no data over the whole run"
    return f"{r.metric} {r.expr}: measured {r.value:.6g}"


def collect(store_path: str, run_id: str, batch: Batch, figures: RunSummary, *, settings_backend: str,
            spec: SLOSpec | None, slo_source: str | None, resumed: bool) -> tuple[BatchRunSummary, list[JobResult],
                                                                                 list[SloResult]]:
    """Read the run from the store and build its summary record, its jobs and its breaches (nothing written)."""
    names = flow_names(batch)
    with ResultsStore(store_path) as store:
        rec = store.run(run_id)
        rows = store.export_rows(run_id)
        attempts = store.attempts(run_id)
    last: dict[str, AttemptRecord] = {}
    for a in attempts:
        if a.job_id not in last or a.attempt > last[a.job_id].attempt:
            last[a.job_id] = a
    latency: dict[str, Histogram] = {}
    jobs: list[JobResult] = []
    failed_by: collections.Counter[str] = collections.Counter()
    for r in rows:
        a = last.get(r["job_id"])
        flow = names.get(r["flow"], os.path.basename(r["flow"]))
        outcome = r["outcome"]
        cid = f"{run_id}/{r['job_id']}/a{a.attempt}" if a is not None else None
        if outcome in ("passed", "failed"):
            fold(latency, flow, r["duration_ms"], a.steps if a is not None else ())
        if outcome == "failed":
            category = r["category"] or DEFAULT_CATEGORY
            failed_by[category] += 1
            jobs.append(JobResult(r["job_id"], flow, outcome, r["attempts"], r["duration_ms"], r["worker"], category,
                                  r["error"], _failing_step(a) if a is not None else None,
                                  tuple(a.artifacts) if a is not None else (), cid))
        else:
            jobs.append(JobResult(r["job_id"], flow, outcome, r["attempts"], r["duration_ms"], r["worker"],
                                  correlation_id=cid))
    by_outcome = collections.Counter(a.outcome or "open" for a in attempts)
    failures = sorted((a for a in attempts if a.outcome in FAILED_OUTCOMES),
                      key=lambda a: (a.ended_at if a.ended_at is not None else a.started_at, a.job_id, a.attempt))
    first = None
    if failures:
        f = failures[0]
        first = FirstFailure(f"{run_id}/{f.job_id}/a{f.attempt}", f.job_id, f.attempt,
                             f.category or ("cdp" if f.outcome == "lost" else DEFAULT_CATEGORY), f.error,
                             _failing_step(f), f.ended_at if f.ended_at is not None else f.started_at)
    passed = sum(1 for j in jobs if j.outcome == "passed")
    failed = sum(1 for j in jobs if j.outcome == "failed")
    done = passed + failed
    aggregate = Window(
        index=None, start=rec.started_at, end=rec.finished_at, jobs=rundir.JobCounts(passed, failed),
        error_rate=failed / done if done else None, throughput=figures.throughput,
        throughput_per_worker={w: float(v.get("jobs_per_s", 0.0)) for w, v in sorted(figures.per_worker.items())},
        latency={k: latency_stats(h) for k, h in sorted(latency.items())}, partial=False,
        supervisor_rss_mb=psutil.Process().memory_info().rss / MB, unowned_uses=figures.unowned_uses,
        invalid_transitions=figures.invalid_transitions, duplicates=figures.duplicates,
        worker_restarts=figures.restarts, mode="run")
    breaches: list[SloResult] = []
    verdict = None
    if spec is not None:
        aggregate, breaches = judge(spec, aggregate)
        verdict = rundir.Verdict(go=not breaches, reasons=tuple(f"SLO breached: {breach_text(b)}" for b in breaches))
    summary = BatchRunSummary(
        run_id=run_id, started_at=rec.started_at, ended_at=rec.finished_at, elapsed_s=figures.elapsed_s,
        status=figures.status, mode=figures.mode, backend=settings_backend, workers=figures.workers,
        concurrency=1 if figures.mode == "legacy" else figures.workers * figures.sessions_per_worker,
        resumed=resumed,
        batch=rundir.BatchInfo(batch.path, _sha256(batch.path), len(rows)),
        jobs=RunJobs(len(rows), passed, failed, len(rows) - done, len(attempts), by_outcome.get("retry", 0),
                     dict(sorted(failed_by.items())), dict(sorted(by_outcome.items()))),
        aggregate=aggregate,
        jobs_per_worker={w: int(v.get("jobs", 0)) for w, v in sorted(figures.per_worker.items())},
        lost_attempts=figures.lost_attempts, reclaimed_slots=figures.reclaimed_slots,
        lock_wait=dict(figures.lock_wait), telemetry_lost=dict(figures.telemetry_lost), first_failure=first,
        slo=slo_source, verdict=verdict,
        autoscale=None if figures.concurrency is None else Autoscale.from_summary(figures.concurrency))
    return summary, jobs, breaches


def write_run_evidence(store_path: str, run_id: str, run_dir: str | os.PathLike[str], batch: Batch,
                       figures: RunSummary, *, backend: str = "local", spec: SLOSpec | None = None,
                       resumed: bool = False) -> RunEvidence:
    """Write the run directory's evidence: ``summary.json``, ``failure_matrix.json``, ``slo.json`` (with an SLO
    file), a fresh ``drilldown.json`` and ``report.html``.

    ``summary.json`` and the matrix not written raise :class:`ReportError` (the run's evidence is missing);
    a report that cannot be rendered is logged and kept in ``report_error`` (the figures stand).
    """
    run_dir = Path(run_dir)
    slo_source = spec.source if spec is not None else None
    summary, jobs, breaches = collect(store_path, run_id, batch, figures, settings_backend=backend, spec=spec,
                                      slo_source=slo_source, resumed=resumed)
    try:
        rundir.write_failure_matrix(run_dir, build_failure_matrix(store_path, run_id, str(run_dir)))
        if spec is not None and slo_source is not None:
            copy_slo(Path(slo_source), run_dir)
        rundir.write_run_summary(run_dir, summary)
    except OSError as exc:
        raise ReportError(f"cannot write the evidence of run {run_id} into {run_dir}: {exc.strerror}") from exc
    ev = RunEvidence(run_dir, summary, jobs, breaches)
    try:
        ev.report = build_evidence(run_dir, rebuild_drilldown=True)
    except ReportError as exc:
        log.error("run report not written", extra={"event": "report_failed", "error": str(exc)})
        ev.report_error = str(exc)
    log.info("run evidence written", extra={"event": "run_evidence", "slo_go": ev.slo_go,
                                            "breaches": [breach_text(b) for b in breaches]})
    return ev


def copy_slo(src: Path, run_dir: Path) -> Path:
    """The SLO file as JSON in the run directory (a TOML file converted), as a soak keeps it."""
    raw = src.read_bytes()
    if src.suffix.lower() == ".toml":
        raw = orjson.dumps(tomllib.loads(raw.decode("utf-8")), option=orjson.OPT_INDENT_2)
    return rundir.write_slo_copy(run_dir, raw)


__all__ = ["JobResult", "RunEvidence", "flow_names", "latency_stats", "fold", "judge", "breach_text", "collect",
           "write_run_evidence", "copy_slo", "DEFAULT_CATEGORY"]
