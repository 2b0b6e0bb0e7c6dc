"""What the report shows, read once from the run directory: :class:`Evidence`.

A soak's directory or a plain run's (``summary.json`` with ``"kind":
"run"``): a run's summary is read into its own record
(:class:`~engine.records.rundir.BatchRunSummary`, ``Evidence.run``) and
shown through the soak summary's shape (:func:`soak_view`: no windows,
the whole run as the aggregate), so every section that applies to a run
reads it unchanged; ``Evidence.kind`` says which sections the page has.

Every file is read through :mod:`engine.records.rundir`, leniently: a
value that is missing, not a number or not finite is None and shown as
"no data" (the fields are logged), a file that is missing is "not
recorded", and a line or row that cannot be read is skipped and named in
the report's notes, never silently.  The bounds below keep the report
small whatever the length of the run.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordination.telemetry_context import STREAMS, stream_logger
from engine.errors import ReportError, ReportInputError
from engine.evidence.report.drilldown import build_drilldown, trace_hint
from engine.records import rundir
from engine.records.rundir import Alert, BatchRunSummary, Drilldown, FailureRow, SoakSummary, Window

log = stream_logger("operational", "engine.evidence.report")

# Bounds that keep the report small whatever the length of the run.
MAX_POINTS_PER_CHART = 2400   # summed over the series of one chart
MAX_FLOW_CHARTS = 24
MAX_PHASES = 40
MAX_WINDOW_ROWS = 100
MAX_ALERT_ROWS = 300
MAX_FAILURE_ROWS = 200
MAX_EXAMPLES = 3
MAX_DRILLDOWN_ROWS = 400
MAX_STRIP_CELLS = 120
MAX_NOTES = 50


@dataclass(slots=True)
class Evidence:
    """Everything the report shows; ``None`` for a file that was not recorded."""

    run_dir: Path
    summary: SoakSummary
    alerts: list[Alert] | None
    failures: list[FailureRow] | None
    slo_file: Any
    drilldown: Drilldown | None
    streams: dict[str, bool]
    notes: list[str] = field(default_factory=list)
    kind: str = "soak"                 # "soak" or "run" (rundir.RUN_KIND)
    run: BatchRunSummary | None = None  # a plain run's own record (kind "run")

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)


# -- a window as the report draws it --------------------------------------------------------------


def rate(w: Window) -> float | None:
    """A window's throughput, None for a partial one: a rate over the last few seconds of a run is noise."""
    return None if w.partial else w.throughput


def rates(w: Window) -> dict[str, float | None]:
    return {} if w.partial else dict(w.throughput_per_worker)


def stat(w: Window, metric: str, key: str) -> float | None:
    """``p95`` (``n``, ``avg`` ...) of ``flow:NAME`` in ``w``; None when not recorded."""
    return getattr(w.latency.get(metric), key, None)


def slo_defs(ev: Evidence) -> list[tuple[str, str]]:
    """Every (metric, expression) the soak evaluated, in the order first seen (the aggregate first)."""
    seen: dict[tuple[str, str], None] = {}
    s = ev.summary
    for w in ([s.aggregate] if s.aggregate else []) + list(s.windows):
        for r in w.slo:
            seen.setdefault((r.metric, r.expr), None)
    return list(seen)


def slo_unit(metric: str) -> str:
    if metric.startswith(("flow:", "phase:")):
        return "ms"
    if "throughput" in metric:
        return "jobs/s"
    return ""


# -- reading ------------------------------------------------------------------------------------


def _logged(reading: rundir.Reading, ev: Evidence | None = None) -> None:
    """Skipped lines and rows are the report's notes; values read as "no data" are logged (they show as such)."""
    values = [str(i) for i in reading.issues if not i.skipped or ev is None]
    if ev is not None:
        for issue in reading.issues:
            if issue.skipped:
                ev.note(str(issue))
    if values:
        log.info("run-directory values read as no data", extra={"event": "report_values_unreadable",
                                                                "issues": values})


def soak_view(run: BatchRunSummary) -> SoakSummary:
    """A plain run's summary in the soak summary's shape: no windows, the whole run as the aggregate."""
    return SoakSummary(run_id=run.run_id, started_at=run.started_at, ended_at=run.ended_at, workers=run.workers,
                       mode=run.mode, status=run.status, batch=run.batch, aggregate=run.aggregate,
                       verdict=run.verdict, rollback_drill_recorded=False)


def load_run_summary(run_dir: Path) -> BatchRunSummary | None:
    """A plain run's own summary record, None for a soak's; :class:`ReportInputError` when there is none."""
    try:
        if rundir.summary_kind(run_dir) != rundir.RUN_KIND:
            return None
        reading = rundir.Reading(lenient=True)
        run = rundir.read_run_summary(run_dir, reading)
    except rundir.RunDirError as exc:
        raise ReportInputError(str(exc)) from exc
    _logged(reading)
    return run


def load_summary(run_dir: Path, run: BatchRunSummary | None = None) -> SoakSummary:
    """The summary as the report shows it (run id, window indices and SLO names filled in when missing);
    ``run``: a plain run's record, shown through :func:`soak_view`."""
    reading = rundir.Reading(lenient=True)
    if run is not None:
        s = soak_view(run)
    else:
        try:
            s = rundir.read_summary(run_dir, reading)
        except rundir.RunDirError as exc:
            raise ReportInputError(str(exc)) from exc
        _logged(reading)

    def shown(w: Window, index: int | None) -> Window:
        slo = tuple(dataclasses.replace(r, metric=r.metric or "?", expr=r.expr or "") for r in w.slo or ())
        return dataclasses.replace(w, index=index if w.index is None else w.index, slo=slo)

    return dataclasses.replace(
        s, run_id=s.run_id or run_dir.name, windows=tuple(shown(w, i) for i, w in enumerate(s.windows)),
        aggregate=None if s.aggregate is None else shown(s.aggregate, None))


def _optional(ev: Evidence, name: str, read: Any, then: str) -> Any:
    """An optional file through ``read(run_dir, reading)``; unreadable: a note, and None."""
    reading = rundir.Reading(lenient=True)
    try:
        out = read(ev.run_dir, reading)
    except rundir.RunDirError as exc:
        ev.note(f"{name}: {exc.problem}{then}")
        return None
    _logged(reading, ev)
    return out


def _alerts(run_dir: Path, reading: rundir.Reading) -> list[Alert] | None:
    alerts = rundir.read_alerts(run_dir, reading)
    if alerts is None:
        return None
    out = [dataclasses.replace(a, severity=(a.severity or "info").lower()) for a in alerts]
    out.sort(key=lambda a: a.ts if a.ts is not None else 0.0)
    return out


def _failures(run_dir: Path, reading: rundir.Reading) -> list[FailureRow] | None:
    rows = rundir.read_failure_matrix(run_dir, reading)
    if rows is None:
        return None
    out = [dataclasses.replace(r, category=r.category or "?") for r in rows]
    # categories that failed first (unresolved, then the most frequent); the all-clear rows last
    out.sort(key=lambda r: (r.count == 0, r.resolved is True, -(r.count or 0), r.category))
    return out


def _slo_file(run_dir: Path, _reading: rundir.Reading) -> Any:
    path = run_dir / rundir.SLO_COPY
    return rundir.read_json(path) if path.is_file() else None


def load_evidence(run_dir: str | os.PathLike[str], *, write_drilldown: bool = True,
                  rebuild_drilldown: bool = False) -> Evidence:
    """Read the run's files (and write the drilldown file if it is missing and one can be built).

    ``rebuild_drilldown``: build it again even when the file exists (a resumed run's evidence: the first
    execution's drilldown may not show the run's first failure).
    """
    run_dir = Path(run_dir)
    run = load_run_summary(run_dir)
    summary = load_summary(run_dir, run)
    ev = Evidence(run_dir, summary, None, None, None, None,
                  {s: rundir.stream_path(run_dir, s).is_file() for s in STREAMS},
                  kind=rundir.RUN_KIND if run is not None else "soak", run=run)
    ev.alerts = _optional(ev, rundir.ALERTS, _alerts, "; shown as not recorded")
    ev.failures = _optional(ev, rundir.FAILURE_MATRIX, _failures, "; shown as not recorded")
    ev.slo_file = _optional(ev, rundir.SLO_COPY, _slo_file, "")
    if (run_dir / rundir.DRILLDOWN).is_file() and not rebuild_drilldown:
        ev.drilldown = _optional(ev, rundir.DRILLDOWN, rundir.read_drilldown, "; left as it is")
        return ev
    first = run.first_failure.correlation_id if run is not None and run.first_failure is not None else None
    try:
        ev.drilldown = build_drilldown(run_dir, ev.failures, first_failure=first)
    except OSError as exc:  # a stream file that exists but cannot be read
        ev.note(f"drilldown: cannot read the streams ({exc.strerror}: {exc.filename})")
    if ev.drilldown is not None and write_drilldown:
        d = ev.drilldown
        ev.drilldown = d = dataclasses.replace(
            d, run_id=summary.run_id, generated_at=time.time(),
            streams={s: sum(1 for r in d.records if r.get("stream") == s) for s in STREAMS},
            trace=trace_hint(d.correlation_id or "", summary.run_id))
        try:
            rundir.write_drilldown(run_dir, d)
        except OSError as exc:
            raise ReportError(f"cannot write {run_dir / rundir.DRILLDOWN}: {exc.strerror}") from exc
    return ev


__all__ = ["Evidence", "load_summary", "load_run_summary", "soak_view", "load_evidence", "rate", "rates", "stat", "slo_defs", "slo_unit",
           "MAX_POINTS_PER_CHART",
           "MAX_FLOW_CHARTS", "MAX_PHASES", "MAX_WINDOW_ROWS", "MAX_ALERT_ROWS", "MAX_FAILURE_ROWS", "MAX_EXAMPLES",
           "MAX_DRILLDOWN_ROWS", "MAX_STRIP_CELLS", "MAX_NOTES"]
