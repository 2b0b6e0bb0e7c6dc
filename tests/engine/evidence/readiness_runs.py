"""Readiness run directories shaped like the soak writes them (summary, failure matrix, SLO file, baselines),
and the readiness command run through ``engine.cli.main``."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from coordination.errors import CATEGORIES
from engine.cli.console import Console
from engine.cli.main import main

T0 = 1795571265.0
HOUR = 3600.0
SHA = "5f2a" * 16
OTHER_SHA = "9c1e" * 16

SLO = {"window": "30m",
       "thresholds": {"flow:checkout": ["p(95) < 800", {"threshold": "p(99) < 1500", "abortOnFail": True}],
                      "phase:click": ["p(95) < 300"], "error_rate": ["rate < 0.05"]}}


def window(index: int, start: float, end: float, **over: Any) -> dict[str, Any]:
    """One window dict as the soak writes it, every safety counter clean."""
    w = {"index": index, "start": start, "end": end, "jobs": {"passed": 500, "failed": 4}, "error_rate": 0.0079,
         "throughput": 3.1, "throughput_per_worker": {"w0": 1.55, "w1": 1.55},
         "latency": {"flow:checkout": {"n": 250, "p50": 410.0, "p95": 620.0, "p99": 900.0, "max": 990.0,
                                       "avg": 450.0, "min": 300.0},
                     "phase:click": {"n": 900, "p50": 80.0, "p95": 210.0, "p99": 260.0, "max": 280.0, "avg": 95.0,
                                     "min": 20.0}},
         "supervisor_rss_mb": 66.0, "unowned_uses": 0, "invalid_transitions": 0, "duplicates": 0,
         "worker_restarts": 0, "idle_workers_s": 0.0, "queued": 3, "queue_wait_max_ms": 4200.0,
         "slo": [{"metric": "flow:checkout", "expr": "p(95) < 800", "value": 620.0, "ok": True, "status": "pass",
                  "abort_on_fail": False, "window": index},
                 {"metric": "flow:checkout", "expr": "p(99) < 1500", "value": 900.0, "ok": True, "status": "pass",
                  "abort_on_fail": True, "window": index},
                 {"metric": "phase:click", "expr": "p(95) < 300", "value": 210.0, "ok": True, "status": "pass",
                  "abort_on_fail": False, "window": index},
                 {"metric": "error_rate", "expr": "rate < 0.05", "value": 0.0079, "ok": True, "status": "pass",
                  "abort_on_fail": False, "window": index}]}
    w.update(over)
    return w


def passing_summary(run_id: str = "r20261125-102745-pass", parallel: float = 3.2) -> dict[str, Any]:
    """A one-hour soak on 2 workers with a rollback drill that meets every criterion."""
    aggregate = window(-1, T0, T0 + HOUR, jobs={"passed": 1000, "failed": 8}, worker_restarts=1)
    aggregate["slo"] = [dict(r, window="run") for r in aggregate["slo"]]
    return {
        "run_id": run_id, "started_at": T0, "ended_at": T0 + HOUR + 20, "target_duration_s": HOUR,
        "window_s": 1800.0, "workers": 2, "mode": "parallel", "status": "completed", "halt_reason": None,
        "cycles": 84, "windows": [window(0, T0, T0 + 1800), window(1, T0 + 1800, T0 + HOUR, worker_restarts=1)],
        "aggregate": aggregate,
        "batch": {"path": "batch.jsonl", "sha256": SHA, "jobs": 12},
        "throughput": {"overall": 3.0, "parallel": parallel, "legacy": 0.5},
        "jobs": {"recorded": 1010, "finished": 1008, "unfinished": 0, "not_started": 2, "over_bound": 0,
                 "max_job_s": 14.2, "max_queue_wait_s": 4.2},
        "last_quarter": {"from": T0 + 2700, "to": T0 + HOUR, "passed": 250, "failed": 2, "error_rate": 0.0079},
        "supervisor_memory": {"first_mb": 61.0, "last_mb": 70.5, "max_mb": 73.0, "growth_mb": 12.0},
        "rollback_drill": {"passed": True, "to_legacy_at": T0 + 1200, "back_at": T0 + 1500,
                           "jobs_parallel_before": 380, "jobs_legacy": 24, "jobs_parallel_after": 600, "lost": 0,
                           "duplicates": 0, "error": None},
        "alerts_fired": {"info": 2},
        "verdict": {"go": True, "reasons": []},
    }


def matrix(**unresolved: int) -> list[dict[str, Any]]:
    """All seven categories as engine.evidence.failures writes them; ``cdp=2`` makes cdp unresolved for 2 jobs."""
    rows = []
    for cat in CATEGORIES:
        bad = unresolved.get(cat)
        count = 3 if cat == "cdp" or bad else 0
        rows.append({"category": cat, "count": count, "jobs": count, "first_seen": T0 + 60 if count else None,
                     "last_seen": T0 + 900 if count else None, "examples": [], "root_cause": "socket closed" if count
                     else None, "error_class": None, "containment": ["retry"] if count else [],
                     "containment_counts": {"retry": count} if count else {},
                     "resolved": (False if bad else True) if count else None, "unresolved_jobs": bad or 0})
    return rows


def make_run(root: Path, summary: dict[str, Any] | None = None, *, slo: Any = SLO,
             failures: list[dict[str, Any]] | None = None, name: str = "run") -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary if summary is not None else passing_summary()))
    (run_dir / "failure_matrix.json").write_text(json.dumps(failures if failures is not None else matrix()))
    if slo is not None:
        (run_dir / "slo.json").write_text(slo if isinstance(slo, str) else json.dumps(slo))
    return run_dir


def make_baseline(root: Path, parallel: float = 3.2, **over: Any) -> Path:
    s = passing_summary("r20261118-090000-base", parallel=parallel)
    s.update(over)
    return make_run(root, s, name="baseline")


def readiness(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["readiness", *map(str, argv)], Console(out, err))
    return code, out.getvalue(), err.getvalue()


def verdict_of(*argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = readiness(*argv, "--json")
    assert out.strip(), err
    return code, json.loads(out)


def by_name(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in verdict["criteria"]}


def not_met(verdict: dict[str, Any]) -> set[str]:
    return {c["name"] for c in verdict["criteria"] if c["ok"] is not True and not c["waived"]}


def _walk(d: Any, dotted: str) -> tuple[Any, Any]:
    """The container and key a dotted path (``aggregate.slo.3.status``) ends at; digits index lists."""
    *path, last = (int(k) if k.isdigit() else k for k in dotted.split("."))
    for key in path:
        d = d[key]
    return d, last


def put(d: dict[str, Any], dotted: str, value: Any) -> None:
    container, key = _walk(d, dotted)
    container[key] = value


def drop(d: dict[str, Any], dotted: str) -> None:
    container, key = _walk(d, dotted)
    del container[key]
