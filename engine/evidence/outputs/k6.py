"""``run --summary-export FILE``: the run's figures as JSON in the shape of k6's ``--summary-export``.

Why k6's shape: CI steps and dashboards that already read k6 summaries
read this one too.  As in k6's export, ``metrics`` maps a metric name to
its values flat (a trend: ``avg`` ``min`` ``med`` ``max`` ``p(90)``
``p(95)`` — and ``p(99)``; a counter: ``count`` ``rate``; a gauge:
``value`` ``min`` ``max``; a rate: ``passes`` ``fails`` ``value``), and a
metric with thresholds carries ``thresholds``: expression -> **true when
the threshold failed** (k6's export has that inverted sense; kept for its
readers).  Latency metrics keep Drover's names (``flow:checkout``,
``phase:click``, ``label:Login``, milliseconds) so the SLO file's
thresholds line up with them.  k6 names that Drover has an equivalent
for: ``iterations`` (finished jobs), ``iteration_duration`` (every
job), ``checks`` (passed / failed jobs), ``vus`` / ``vus_max`` (workers).
Drover's own block, ``drover``, holds the run id, status, verdict and
where the evidence is.
"""
from __future__ import annotations

import os
from typing import Any

import orjson

from engine.evidence.run import RunEvidence
from engine.records import rundir
from engine.records.metrics import Histogram
from engine.records.rundir import LatencyStats

TREND_STATS = ("avg", "min", "med", "max", "p(90)", "p(95)", "p(99)")


def _trend(h: Histogram | None, stats: LatencyStats | None = None) -> dict[str, Any]:
    if h is None or h.count == 0:
        if stats is None:
            return {k: None for k in TREND_STATS}
        return {"avg": stats.avg, "min": stats.min, "med": stats.p50, "max": stats.max, "p(90)": None,
                "p(95)": stats.p95, "p(99)": stats.p99}
    return {"avg": h.mean, "min": h.min, "med": h.percentile(50), "max": h.max, "p(90)": h.percentile(90),
            "p(95)": h.percentile(95), "p(99)": h.percentile(99)}


def summary_export(ev: RunEvidence) -> dict[str, Any]:
    s = ev.summary
    agg = s.aggregate
    jobs = s.jobs or rundir.RunJobs()
    elapsed = s.elapsed_s or 0.0
    done = (jobs.passed or 0) + (jobs.failed or 0)
    metrics: dict[str, dict[str, Any]] = {}
    every_job = Histogram()
    for name, stats in sorted((agg.latency if agg else {}).items()):
        metrics[name] = _trend(stats.histogram, stats)
        if name.startswith("flow:") and stats.histogram is not None:
            every_job.merge(stats.histogram)
    metrics["iteration_duration"] = _trend(every_job)
    metrics["iterations"] = {"count": done, "rate": done / elapsed if elapsed > 0 else 0.0}
    metrics["checks"] = {"passes": jobs.passed or 0, "fails": jobs.failed or 0,
                         "value": (jobs.passed or 0) / done if done else 0.0}
    metrics["error_rate"] = {"passes": jobs.failed or 0, "fails": jobs.passed or 0,
                             "value": agg.error_rate if agg and agg.error_rate is not None else 0.0}
    if agg is not None and agg.throughput is not None:
        metrics["throughput"] = {"value": agg.throughput, "min": agg.throughput, "max": agg.throughput}
    for name in ("unowned_uses", "invalid_transitions", "duplicates", "worker_restarts"):
        value = getattr(agg, name, None) if agg is not None else None
        if value is not None:
            metrics[name] = {"count": value, "rate": value / elapsed if elapsed > 0 else 0.0}
    workers = s.workers or 0
    metrics["vus"] = {"value": workers, "min": workers, "max": workers}
    metrics["vus_max"] = {"value": s.concurrency or workers, "min": s.concurrency or workers,
                          "max": s.concurrency or workers}
    for r in (agg.slo if agg is not None and agg.slo else ()):
        target = metrics.setdefault(r.metric or "?", {})
        target.setdefault("thresholds", {})[r.expr or "?"] = r.ok is not True  # k6: true = failed
    verdict = s.verdict
    return {
        "root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e", "groups": {}, "checks": {}},
        "metrics": metrics,
        "state": {"testRunDurationMs": elapsed * 1000.0},
        "drover": {"run_id": s.run_id, "status": s.status, "mode": s.mode, "run_dir": str(ev.run_dir),
                   "summary": str(ev.run_dir / rundir.SUMMARY), "report": str(ev.run_dir / rundir.REPORT),
                   "jobs": jobs.to_json(), "slo_go": None if verdict is None else verdict.go,
                   "slo_reasons": [] if verdict is None else list(verdict.reasons)},
    }


def write_summary_export(path: str | os.PathLike[str], ev: RunEvidence) -> None:
    """``OSError`` when the file cannot be written (the caller names the option)."""
    rundir.write_atomic(path, orjson.dumps(summary_export(ev), option=orjson.OPT_INDENT_2))


__all__ = ["summary_export", "write_summary_export", "TREND_STATS"]
