"""What readiness judges, read from a run directory: the run's figures, its failure matrix, the SLO file, a baseline.

The files are read through :mod:`engine.records.rundir`, leniently: a
figure that is missing or malformed is None here, and its criterion is
"not measured" with the field named in the reason — never a crash and
never a pass.  :class:`RunFigures` is the run's summary cut down to what
the criteria read, so the checks never see the file's shape.  The fault
campaign's report (``--faults FILE``) is the exception: it is evidence the
operator hands in on purpose, so it is read strictly, and a missing or
malformed one is an input error, not "not measured".
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from coordination.telemetry_context import stream_logger
from engine.errors import ConfigError, ReadinessInputError
from engine.evidence.criteria import ReadinessLimits
from engine.evidence.slo import SLOSpec, load_slo, load_slo_text
from engine.records import rundir
from engine.records.rundir import FailureRow, RollbackDrill, SloResult, SoakSummary

log = stream_logger("operational", "engine.evidence.readiness")

BASELINE_KIND = "drover-readiness-baseline"
BASELINE_VERSION = 1


@dataclass(frozen=True, slots=True)
class RunFigures:
    """The figures of one soak's summary; None wherever the summary does not hold a usable value."""

    run_id: str
    status: str | None
    halt_reason: str | None
    started_at: float | None
    ended_at: float | None
    target_duration_s: float | None
    workers: int | None
    batch_sha256: str | None
    throughput_parallel: float | None
    throughput_legacy: float | None
    aggregate_throughput: float | None
    jobs_unfinished: int | None
    jobs_over_bound: int | None
    max_queue_wait_s: float | None
    last_quarter_recorded: bool
    last_quarter_error_rate: float | None
    last_quarter_jobs: int | None
    memory_growth_mb: float | None
    memory_first_mb: float | None
    memory_max_mb: float | None
    drill_recorded: bool
    drill: RollbackDrill | None
    unowned_uses: int | None
    invalid_transitions: int | None
    duplicates: int | None
    worker_restarts: int | None
    latency: Mapping[str, Mapping[str, float]] | None  # aggregate.latency, numbers only (None: no aggregate)
    slo_results: tuple[SloResult, ...] | None  # metric, expr and status always set (status "no data" if unknown)

    def reference_throughput(self) -> tuple[float | None, str]:
        """The throughput a baseline compares: the parallel phases', else the whole run's (and which one)."""
        if self.throughput_parallel is not None:
            return self.throughput_parallel, "throughput.parallel"
        return self.aggregate_throughput, "aggregate.throughput"


@dataclass(frozen=True, slots=True)
class RunEvidence:
    """Everything readiness judges: the run's figures, its failure matrix, and the SLO file in force."""

    run_dir: Path
    figures: RunFigures
    matrix: tuple[FailureRow, ...] | None
    matrix_note: str  # why ``matrix`` is None
    spec: SLOSpec | None

    @property
    def limits(self) -> ReadinessLimits:
        return self.spec.readiness if self.spec is not None else ReadinessLimits()


@dataclass(frozen=True, slots=True)
class Baseline:
    """The throughput of an earlier run, and what makes it comparable (same batch, same worker count)."""

    source: str
    run_id: str | None
    throughput: float | None
    batch_sha256: str | None
    workers: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": BASELINE_KIND, "version": BASELINE_VERSION, "run_id": self.run_id,
                "throughput": self.throughput, "batch_sha256": self.batch_sha256, "workers": self.workers,
                "saved_at": time.time()}


def _queue_wait(s: SoakSummary) -> float | None:
    """``jobs.max_queue_wait_s``, else the largest ``queue_wait_max_ms`` of the windows and the aggregate."""
    if s.jobs is not None and s.jobs.max_queue_wait_s is not None:
        return s.jobs.max_queue_wait_s
    windows = list(s.windows) + ([s.aggregate] if s.aggregate is not None else [])
    waits = [w.queue_wait_max_ms for w in windows if w.queue_wait_max_ms is not None]
    return max(waits) / 1000.0 if waits else None


def figures_of(s: SoakSummary, fallback_run_id: str) -> RunFigures:
    """A summary cut down to the figures the criteria read (an empty string counts as not recorded)."""
    agg, tp, jobs, quarter, memory, drill = (s.aggregate, s.throughput, s.jobs, s.last_quarter,
                                             s.supervisor_memory, s.rollback_drill)
    quarter_jobs = None
    if quarter is not None and quarter.passed is not None and quarter.failed is not None:
        quarter_jobs = quarter.passed + quarter.failed
    latency = None if agg is None else MappingProxyType(
        {metric: MappingProxyType(stats.numbers()) for metric, stats in agg.latency.items()})
    slo = None if agg is None or agg.slo is None else tuple(
        dataclasses.replace(r, metric=r.metric or "?", expr=r.expr or "", status=r.status or "no data")
        for r in agg.slo)
    return RunFigures(
        run_id=s.run_id or fallback_run_id, status=s.status or None, halt_reason=s.halt_reason or None,
        started_at=s.started_at, ended_at=s.ended_at, target_duration_s=s.target_duration_s, workers=s.workers,
        batch_sha256=(s.batch.sha256 or None) if s.batch is not None else None,
        throughput_parallel=tp.parallel if tp else None, throughput_legacy=tp.legacy if tp else None,
        aggregate_throughput=agg.throughput if agg else None,
        jobs_unfinished=jobs.unfinished if jobs else None, jobs_over_bound=jobs.over_bound if jobs else None,
        max_queue_wait_s=_queue_wait(s), last_quarter_recorded=quarter is not None,
        last_quarter_error_rate=quarter.error_rate if quarter else None, last_quarter_jobs=quarter_jobs,
        memory_growth_mb=memory.growth_mb if memory else None, memory_first_mb=memory.first_mb if memory else None,
        memory_max_mb=memory.max_mb if memory else None, drill_recorded=s.rollback_drill_recorded,
        drill=None if drill is None else dataclasses.replace(drill, error=drill.error or None),
        unowned_uses=agg.unowned_uses if agg else None,
        invalid_transitions=agg.invalid_transitions if agg else None,
        duplicates=agg.duplicates if agg else None, worker_restarts=agg.worker_restarts if agg else None,
        latency=latency, slo_results=slo)


def _logged(reading: rundir.Reading, file: Path) -> None:
    """Values read as "no data" are the criteria's "not measured"; the fields are logged for whoever asks why."""
    if reading.issues:
        log.info("run-directory values read as no data", extra={
            "event": "readiness_values_unreadable", "file": str(file), "issues": [str(i) for i in reading.issues]})


def _read_summary(run_dir: Path) -> SoakSummary:
    reading = rundir.Reading(lenient=True)
    try:
        summary = rundir.read_summary(run_dir, reading)
    except rundir.RunDirError as exc:
        raise ReadinessInputError(str(exc)) from exc
    _logged(reading, run_dir / rundir.SUMMARY)
    return summary


def _read_matrix(run_dir: Path) -> tuple[tuple[FailureRow, ...] | None, str]:
    """The failure matrix, or None and why: an unreadable matrix leaves one criterion unmeasured, no more."""
    reading = rundir.Reading(lenient=True)
    try:
        rows = rundir.read_failure_matrix(run_dir, reading)
    except rundir.RunDirError as exc:
        log.warning("failure matrix unreadable", extra={"event": "readiness_matrix_unreadable", "error": str(exc)})
        return None, str(exc)
    if rows is None:
        return None, f"{rundir.FAILURE_MATRIX} not found in the run directory"
    if any(i.skipped for i in reading.issues) or any(r.category is None for r in rows):
        return None, f"{rundir.FAILURE_MATRIX} is not a list of rows with a category"
    _logged(reading, run_dir / rundir.FAILURE_MATRIX)
    return rows, ""


def _read_spec(run_dir: Path, slo_path: str | os.PathLike[str] | None) -> SLOSpec | None:
    """``--slo FILE`` if given, else the soak's copy of its SLO file (JSON or TOML text whatever its name)."""
    if slo_path is not None:
        return load_slo(slo_path)
    try:
        copy = rundir.read_slo_copy(run_dir)
    except rundir.RunDirError as exc:  # unreadable or not UTF-8: bad input, as a broken --slo file is
        raise ConfigError(str(exc)) from exc
    return None if copy is None else load_slo_text(copy[1], str(copy[0]))


def load_run(run_dir: str | os.PathLike[str], slo_path: str | os.PathLike[str] | None = None) -> RunEvidence:
    """Read a soak's run directory; raises :class:`ReadinessInputError` / ``ConfigError`` (both ``input``)."""
    run_dir = Path(run_dir)
    summary = _read_summary(run_dir)
    matrix, note = _read_matrix(run_dir)
    return RunEvidence(run_dir, figures_of(summary, run_dir.name), matrix, note, _read_spec(run_dir, slo_path))


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """A baseline from a soak's run directory, its summary file, or a file written by ``save_baseline``."""
    p = Path(path)
    if p.is_dir():
        if not (p / rundir.SUMMARY).is_file():
            raise ReadinessInputError(f"{p}: baseline directory without {rundir.SUMMARY}; give a soak's run "
                                      f"directory, its {rundir.SUMMARY}, or a file written by --save-baseline")
        p = p / rundir.SUMMARY
    try:
        raw = rundir.read_json(p, "the baseline")
    except rundir.RunDirError as exc:
        raise ReadinessInputError(str(exc)) from exc
    if not isinstance(raw, dict):
        raise ReadinessInputError(f"{p}: a baseline is a JSON object, found {type(raw).__name__}")
    if "kind" not in raw:
        if not any(k in raw for k in ("aggregate", "throughput", "windows")):
            raise ReadinessInputError(f"{p}: neither a soak summary nor a readiness baseline "
                                      f"(no \"kind\": \"{BASELINE_KIND}\", no aggregate or throughput)")
        reading = rundir.Reading(lenient=True)
        fig = figures_of(SoakSummary.from_json(raw, file=str(p), reading=reading), p.parent.name)
        _logged(reading, p)
        return Baseline(str(p), fig.run_id, fig.reference_throughput()[0], fig.batch_sha256, fig.workers)
    if raw["kind"] != BASELINE_KIND or raw.get("version") != BASELINE_VERSION:
        raise ReadinessInputError(f"{p}: kind {raw.get('kind')!r} version {raw.get('version')!r} is not a "
                                  f"readiness baseline (expected kind {BASELINE_KIND!r}, version {BASELINE_VERSION})")
    throughput = rundir.as_number(raw.get("throughput"))
    if throughput is None or throughput <= 0:
        raise ReadinessInputError(f"{p}: throughput must be a number > 0 (jobs/s), got {raw.get('throughput')!r}")
    for key, ok in (("batch_sha256", raw.get("batch_sha256") is None or isinstance(raw.get("batch_sha256"), str)),
                    ("workers", raw.get("workers") is None or rundir.as_count(raw.get("workers")) is not None),
                    ("run_id", raw.get("run_id") is None or isinstance(raw.get("run_id"), str))):
        if not ok:
            raise ReadinessInputError(f"{p}: {key} has the wrong type: {raw.get(key)!r}")
    return Baseline(str(p), raw.get("run_id"), throughput, raw.get("batch_sha256"), rundir.as_count(raw.get("workers")))


@dataclass(frozen=True, slots=True)
class FaultEvidence:
    """The fault campaign's result (``--faults FILE``, repeatable), cut down to what ``faults_survived`` reads.

    Several files add up (a campaign of ``--kinds worker,browser,supervisor``
    and another of ``sigterm`` with fewer trials): trials and injected
    trials per kind are summed, every violation of every file counts.
    """

    sources: tuple[str, ...]
    trials: Mapping[str, int]      # fault trials per kind
    injected: Mapping[str, int]    # of those, the ones whose fault went in (a missed trial proves nothing)
    violations: tuple[str, ...]    # one line each: "<invariant> (<kind> trial <n>, seed <s>): jobs ..."


def load_faults(paths: list[str] | tuple[str, ...]) -> FaultEvidence:
    """Read every ``--faults`` file strictly; :class:`ReadinessInputError` naming the file (and field) when one is
    missing, unreadable, not JSON, or not a fault report of the format this version reads."""
    trials: dict[str, int] = {}
    injected: dict[str, int] = {}
    violations: list[str] = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise ReadinessInputError(f"{p}: no such fault report (give the file written by "
                                      "python -m bench faults BATCH --json FILE)")
        try:
            report = rundir.read_fault_report(p)
        except rundir.RunDirError as exc:
            raise ReadinessInputError(f"{exc} (not a fault report written by python -m bench faults --json)") \
                from exc
        for kind, n in report.trials.items():
            trials[kind] = trials.get(kind, 0) + n
        for kind, n in report.injected.items():
            injected[kind] = injected.get(kind, 0) + n
        violations += [f"{v.invariant} ({v.kind} trial {v.trial}, seed {v.seed})"
                       + (f": jobs {', '.join(v.job_ids)}" if v.job_ids else "") for v in report.violations]
    return FaultEvidence(tuple(str(p) for p in paths), MappingProxyType(trials), MappingProxyType(injected),
                         tuple(violations))


def baseline_of(evidence: RunEvidence) -> Baseline:
    """This run as a baseline for later ones; refused unless it completed with a known throughput."""
    fig = evidence.figures
    if fig.status != "completed":
        raise ReadinessInputError(f"{evidence.run_dir}: run {fig.run_id} did not complete (status {fig.status}); "
                                  "a baseline must come from a completed soak")
    throughput, field_name = fig.reference_throughput()
    if throughput is None or throughput <= 0:
        raise ReadinessInputError(f"{evidence.run_dir}: run {fig.run_id} has no throughput ({field_name} not "
                                  "recorded); nothing to save as a baseline")
    return Baseline(str(evidence.run_dir / rundir.SUMMARY), fig.run_id, throughput, fig.batch_sha256, fig.workers)


__all__ = ["RunFigures", "RunEvidence", "Baseline", "FaultEvidence", "figures_of", "load_run", "load_baseline",
           "load_faults", "baseline_of",
           "BASELINE_KIND", "BASELINE_VERSION"]
