"""A run's (or a soak's) figures as a Prometheus text file: for node_exporter's textfile collector, a Pushgateway,
or any scraper.

Two formats from one set of families: the Prometheus text format 0.0.4
(the default; what the textfile collector and the Pushgateway read) and
OpenMetrics 1.0 when the file name ends in ``.om`` (counters declared
without ``_total``, units, ``# EOF``).  The file is replaced atomically,
so a scrape never reads half of it.

Families (every series is the whole run's; ``run_id`` is only on the
info metric, so the series do not multiply with every run)::

    drover_run_info{run_id,mode,status,backend,kind}      1
    drover_jobs_total{outcome="passed"}                     final outcomes: the results table's counts
    drover_jobs_total{outcome="failed",category="auth"}     ... failed ones by failure category
    drover_jobs_pending                                     jobs without a final outcome
    drover_attempts_total{outcome}                          every attempt (passed/failed/retry/lost/interrupted;
                                                            runs only)
    drover_flow_duration_seconds{flow}                      histogram: job latency per flow
    drover_phase_duration_seconds{phase}                    histogram: step latency per step type
    drover_label_duration_seconds{label}                    histogram: the flow's own phase labels
    drover_workers, drover_concurrency                      worker processes; jobs that can run at once
    drover_unowned_session_uses_total                       must stay 0
    drover_invalid_transitions_total, drover_duplicate_outcomes_total, drover_worker_restarts_total
    drover_throughput_jobs_per_second, drover_error_ratio, drover_run_duration_seconds
    drover_slo_threshold_passed{metric,threshold}           1 pass, 0 fail or no data (with an SLO file)
    drover_soak_windows                                     soaks: windows closed so far
    drover_metrics_written_timestamp_seconds                when this file was written (staleness alerts)

Histogram buckets come from the bounded histograms of
:mod:`engine.records.metrics`: the ``le`` bounds are a fixed list
(:data:`BOUNDS_S`, 5 ms .. 10 min) each moved down to the nearest edge of
the histogram's own log-linear buckets, so every cumulative count is the
histogram's exact count below that edge (the edges sit within 1/64 of
the round numbers: ``le="0.099328"`` for 100 ms), and every series of
every run has the same bounds.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from engine.evidence.run import DEFAULT_CATEGORY, RunEvidence
from engine.records import rundir
from engine.records.metrics import Histogram, bucket_of, bucket_upper_ms
from engine.records.rundir import Window
from engine.records.store import ResultsStore

OPENMETRICS_SUFFIXES = (".om", ".openmetrics")
BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_PREFIXES = (("flow:", "drover_flow_duration_seconds", "flow", "Job latency per flow (every attempt)."),
             ("phase:", "drover_phase_duration_seconds", "phase", "Step latency per step type."),
             ("label:", "drover_label_duration_seconds", "label", "Latency per phase label of a flow."))


def bucket_edges_ms() -> tuple[float, ...]:
    """Each of :data:`BOUNDS_S` moved down to the lower edge of the histogram bucket that holds it."""
    edges = []
    for bound in BOUNDS_S:
        index = bucket_of(bound * 1000.0)
        edges.append(bucket_upper_ms(index - 1) if index > 0 else bound * 1000.0)
    return tuple(edges)


EDGES_MS = bucket_edges_ms()


@dataclass(slots=True)
class Family:
    name: str       # without ``_total`` for counters, without ``_info`` for info
    kind: str       # counter / gauge / histogram / info
    help: str
    unit: str = ""
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)
    histograms: list[tuple[Mapping[str, str], Histogram]] = field(default_factory=list)


def _number(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    return str(int(v)) if float(v).is_integer() and abs(v) < 2 ** 53 else repr(float(v))


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    def esc(v: str) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


def cumulative(h: Histogram) -> list[tuple[float, int]]:
    """(le in seconds, values below it) for every edge of :data:`EDGES_MS`, then (+Inf, all)."""
    out = []
    items = sorted(h.buckets.items())
    for edge in EDGES_MS:
        below = sum(n for b, n in items if bucket_upper_ms(b) <= edge + 1e-9)
        out.append((edge / 1000.0, below))
    out.append((math.inf, h.count))
    return out


def render(families: Iterable[Family], *, openmetrics: bool) -> bytes:
    lines: list[str] = []
    for f in families:
        if not f.samples and not f.histograms:
            continue
        declared = f.name
        sample_name = f.name
        kind = f.kind
        if f.kind == "counter":
            sample_name = f.name + "_total"
            declared = f.name if openmetrics else sample_name
        elif f.kind == "info":
            sample_name = f.name + "_info"
            declared, kind = (f.name, "info") if openmetrics else (sample_name, "gauge")
        lines.append(f"# HELP {declared} {f.help}")
        lines.append(f"# TYPE {declared} {kind}")
        if openmetrics and f.unit:
            lines.append(f"# UNIT {declared} {f.unit}")
        for labels, value in f.samples:
            lines.append(f"{sample_name}{_labels(labels)} {_number(value)}")
        for labels, h in f.histograms:
            for le, n in cumulative(h):
                le_text = "+Inf" if math.isinf(le) else f"{le:.6f}"
                lines.append(f"{f.name}_bucket{_labels({**labels, 'le': le_text})} {n}")
            lines.append(f"{f.name}_count{_labels(labels)} {h.count}")
            lines.append(f"{f.name}_sum{_labels(labels)} {_number(h.total / 1000.0)}")
    if openmetrics:
        lines.append("# EOF")
    return ("\n".join(lines) + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Figures:
    """What the metrics file shows, whoever measured it (a run's evidence or a soak's summary)."""

    kind: str  # run / soak
    run_id: str
    mode: str
    status: str
    backend: str
    workers: int
    concurrency: int
    passed: int
    failed_by_category: Mapping[str, int]
    pending: int
    attempts_by_outcome: Mapping[str, int]
    aggregate: Window | None
    elapsed_s: float | None
    telemetry_lost: Mapping[str, int] = field(default_factory=dict)
    windows: int | None = None


def families(fig: Figures, now: float | None = None) -> list[Family]:
    agg = fig.aggregate
    out = [Family("drover_run", "info", "The run these figures belong to.",
                  samples=[({"run_id": fig.run_id, "kind": fig.kind, "mode": fig.mode, "status": fig.status,
                             "backend": fig.backend}, 1)])]
    jobs = Family("drover_jobs", "counter", "Jobs by final outcome (failed ones by failure category).")
    jobs.samples.append(({"outcome": "passed"}, fig.passed))
    for category, n in sorted(fig.failed_by_category.items()):
        jobs.samples.append(({"outcome": "failed", "category": category}, n))
    out.append(jobs)
    out.append(Family("drover_jobs_pending", "gauge", "Jobs without a final outcome.", samples=[({}, fig.pending)]))
    out.append(Family("drover_attempts", "counter", "Attempts by how they ended.",
                      samples=[({"outcome": k}, v) for k, v in sorted(fig.attempts_by_outcome.items())]))
    for prefix, name, label, text in _PREFIXES:
        fam = Family(name, "histogram", text, unit="seconds")
        for metric, stats in sorted((agg.latency if agg else {}).items()):
            if metric.startswith(prefix) and stats.histogram is not None and stats.histogram.count:
                fam.histograms.append(({label: metric[len(prefix):]}, stats.histogram))
        out.append(fam)
    out.append(Family("drover_workers", "gauge", "Worker processes.", samples=[({}, fig.workers)]))
    out.append(Family("drover_concurrency", "gauge", "Jobs that can run at once.", samples=[({}, fig.concurrency)]))
    safety = (("drover_unowned_session_uses", "unowned_uses", "CDP commands sent without owning the session "
                                                              "(must stay 0)."),
              ("drover_invalid_transitions", "invalid_transitions", "Invalid ownership-table transitions."),
              ("drover_duplicate_outcomes", "duplicates", "Second final outcomes refused."),
              ("drover_worker_restarts", "worker_restarts", "Workers replaced after dying."))
    for name, attr, text in safety:
        value = getattr(agg, attr, None) if agg is not None else None
        if value is not None:
            out.append(Family(name, "counter", text, samples=[({}, value)]))
    if fig.telemetry_lost:
        out.append(Family("drover_telemetry_records_lost", "counter", "Log records a stream could not write.",
                          samples=[({"stream": k}, v) for k, v in sorted(fig.telemetry_lost.items())]))
    if agg is not None and agg.throughput is not None:
        out.append(Family("drover_throughput_jobs_per_second", "gauge", "Jobs finished per second.",
                          samples=[({}, agg.throughput)]))
    if agg is not None and agg.error_rate is not None:
        out.append(Family("drover_error_ratio", "gauge", "Failed jobs over finished jobs.",
                          samples=[({}, agg.error_rate)]))
    if fig.elapsed_s is not None:
        out.append(Family("drover_run_duration_seconds", "gauge", "Wall time of the run so far.", unit="seconds",
                          samples=[({}, fig.elapsed_s)]))
    if agg is not None and agg.slo:
        out.append(Family("drover_slo_threshold_passed", "gauge",
                          "1 when the SLO threshold held over the whole run, 0 when it failed or had no data.",
                          samples=[({"metric": r.metric or "?", "threshold": r.expr or "?"}, 1 if r.ok else 0)
                                   for r in agg.slo]))
    if fig.windows is not None:
        out.append(Family("drover_soak_windows", "gauge", "Soak windows closed so far.", samples=[({}, fig.windows)]))
    out.append(Family("drover_metrics_written_timestamp_seconds", "gauge", "When this file was written.",
                      unit="seconds", samples=[({}, time.time() if now is None else now)]))
    return out


def run_figures(ev: RunEvidence) -> Figures:
    """A plain run's figures from its evidence (the results store's counts)."""
    s = ev.summary
    jobs = s.jobs or rundir.RunJobs()
    return Figures("run", s.run_id or "?", s.mode or "?", s.status or "?", s.backend or "local", s.workers or 0,
                   s.concurrency or 0, jobs.passed or 0, {k: v or 0 for k, v in jobs.failed_by_category.items()},
                   jobs.pending or 0, {k: v or 0 for k, v in jobs.attempts_by_outcome.items()}, s.aggregate,
                   s.elapsed_s, {k: v or 0 for k, v in s.telemetry_lost.items()})


def soak_figures(summary: rundir.SoakSummary, store_path: str, *, backend: str = "local") -> Figures:
    """A soak's figures: its summary's aggregate and windows, the outcomes from the results store (no attempts by
    outcome: a day-long soak's attempts are not loaded for them)."""
    run_id = summary.run_id or "?"
    with ResultsStore(store_path) as store:
        outcomes = store.outcomes(run_id)
        counts = store.counts(run_id)
    failed: dict[str, int] = {}
    for o in outcomes:
        if o.outcome == "failed":
            failed[o.category or DEFAULT_CATEGORY] = failed.get(o.category or DEFAULT_CATEGORY, 0) + 1
    elapsed = (summary.ended_at - summary.started_at) if summary.ended_at and summary.started_at else None
    return Figures("soak", run_id, summary.mode or "?", summary.status or "?", backend, summary.workers or 0,
                   summary.workers or 0, counts["passed"], failed, counts["pending"], {},
                   summary.aggregate, elapsed, windows=len(summary.windows))


def is_openmetrics(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in OPENMETRICS_SUFFIXES


def write_metrics(path: str | os.PathLike[str], fig: Figures) -> Path:
    """The file at ``path`` (OpenMetrics for ``*.om``), replaced atomically; ``OSError`` when it cannot be."""
    return rundir.write_atomic(path, render(families(fig), openmetrics=is_openmetrics(path)))


__all__ = ["BOUNDS_S", "EDGES_MS", "Family", "Figures", "families", "render", "cumulative", "write_metrics",
           "is_openmetrics", "bucket_edges_ms", "run_figures", "soak_figures", "OPENMETRICS_SUFFIXES"]
