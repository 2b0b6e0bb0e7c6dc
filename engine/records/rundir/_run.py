"""The record of a plain run's ``summary.json``: :class:`BatchRunSummary` (a soak's is ``SoakSummary``).

Why a record of its own and not a ``SoakSummary`` with blanks: a batch
run has no windows, cycles, target duration, drill or memory series, and
it has what a soak does not keep — every job's final outcome by failure
category, attempts and retries, the first failure.  The two are told
apart by ``kind``: a run's summary says ``"kind": "run"``; a soak's has
no ``kind`` (every soak summary ever written).

The whole-run figures are one :class:`~engine.records.rundir.Window`
(``aggregate``, ``index`` None, ``mode`` "run"), the same shape a soak's
aggregate has, so the SLO thresholds, the report's sections and the
metrics file read both alike; its latency stats keep their histograms.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from engine.records.rundir._fields import Obj, Record, put
from engine.records.rundir._records import Window
from engine.records.rundir._summary import BatchInfo, Verdict

RUN_KIND = "run"


@dataclass(frozen=True, slots=True)
class RunJobs(Record):
    """Every job of the run by its final outcome — the results table's counts — and its attempts.

    ``failed_by_category``: the final ``failed`` outcomes by failure
    category (an outcome without one counts as ``navigation``, as the
    executor treats it).
    """

    total: int | None = None
    passed: int | None = None
    failed: int | None = None
    pending: int | None = None
    attempts: int | None = None
    retries: int | None = None
    failed_by_category: Mapping[str, int | None] = field(default_factory=dict)
    attempts_by_outcome: Mapping[str, int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "passed": self.passed, "failed": self.failed, "pending": self.pending,
                "attempts": self.attempts, "retries": self.retries,
                "failed_by_category": dict(self.failed_by_category),
                "attempts_by_outcome": dict(self.attempts_by_outcome)}

    @classmethod
    def _read(cls, o: Obj) -> RunJobs:
        return cls(o.count("total"), o.count("passed"), o.count("failed"), o.count("pending"), o.count("attempts"),
                   o.count("retries"), o.mapping("failed_by_category", Obj.count),
                   o.mapping("attempts_by_outcome", Obj.count))


@dataclass(frozen=True, slots=True)
class FirstFailure(Record):
    """The run's earliest failed attempt: what the report's drilldown expands, and where to look first."""

    correlation_id: str | None = None
    job_id: str | None = None
    attempt: int | None = None
    category: str | None = None
    error: str | None = None
    step: str | None = None
    at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"correlation_id": self.correlation_id, "job_id": self.job_id, "attempt": self.attempt,
                "category": self.category, "error": self.error, "step": self.step, "at": self.at}

    @classmethod
    def _read(cls, o: Obj) -> FirstFailure:
        return cls(o.text("correlation_id"), o.text("job_id"), o.count("attempt"), o.text("category"),
                   o.text("error"), o.text("step"), o.num("at"))


@dataclass(frozen=True, slots=True)
class ScaleStep(Record):
    """One change of an autoscaled run's target: when (s since the run started), from, to, and why."""

    at: float | None = None
    old: int | None = None
    new: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "from": self.old, "to": self.new, "reason": self.reason}

    @classmethod
    def _read(cls, o: Obj) -> ScaleStep:
        return cls(o.num("at"), o.count("from"), o.count("to"), o.text("reason"))


@dataclass(frozen=True, slots=True)
class Autoscale(Record):
    """``sessions_per_worker = "auto"``: the bounds of the run's concurrency, where it went and every change
    (``timeline``: the target at the first look, then after each change, as ``[at, target]``)."""

    min: int | None = None
    max: int | None = None
    peak: int | None = None
    final: int | None = None
    changes: tuple[ScaleStep, ...] = ()
    timeline: tuple[tuple[float, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "peak": self.peak, "final": self.final,
                "changes": [c.to_json() for c in self.changes], "timeline": [list(t) for t in self.timeline]}

    @classmethod
    def from_summary(cls, d: Mapping[str, Any]) -> Autoscale:
        """From :meth:`engine.execution.autoscale.ConcurrencyGate.summary`."""
        return cls(d["min"], d["max"], d["peak"], d["final"],
                   tuple(ScaleStep(c["at"], c["from"], c["to"], c["reason"]) for c in d["changes"]),
                   tuple((float(a), int(t)) for a, t in d["timeline"]))

    @classmethod
    def _read(cls, o: Obj) -> Autoscale:
        timeline = []
        for i, v in enumerate(o.items("timeline") or []):
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
                timeline.append((float(v[0]), int(v[1])))
            else:
                o.rd.bad(o.file, f"{o.where('timeline')}[{i}]", "expected [seconds, target]", skipped=True)
        return cls(o.count("min"), o.count("max"), o.count("peak"), o.count("final"),
                   tuple(ScaleStep._read(c) for c in o.objs("changes") or []), tuple(timeline))


@dataclass(frozen=True, slots=True)
class BatchRunSummary(Record):
    """``summary.json`` of a ``run`` (``kind`` "run").

    ``verdict``: the SLO file's whole-run verdict (``go`` False when a
    threshold failed or had no data), None when the run had no SLO file.
    ``concurrency``: how many jobs could run at once (workers x sessions
    per worker, the autoscale maximum under "auto"; 1 on the legacy path).
    ``autoscale``: how an autoscaled run's concurrency moved (None when fixed).
    """

    run_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    elapsed_s: float | None = None
    status: str | None = None  # completed / interrupted
    mode: str | None = None    # parallel / legacy
    backend: str | None = None
    workers: int | None = None
    concurrency: int | None = None
    resumed: bool | None = None
    batch: BatchInfo | None = None
    jobs: RunJobs | None = None
    aggregate: Window | None = None
    jobs_per_worker: Mapping[str, int | None] = field(default_factory=dict)
    lost_attempts: int | None = None
    reclaimed_slots: int | None = None
    lock_wait: Mapping[str, float | None] = field(default_factory=dict)
    telemetry_lost: Mapping[str, int | None] = field(default_factory=dict)
    first_failure: FirstFailure | None = None
    slo: str | None = None  # the SLO file the run was judged with
    verdict: Verdict | None = None
    autoscale: Autoscale | None = None

    def to_json(self) -> dict[str, Any]:
        def part(p: Any) -> Any:
            return None if p is None else p.to_json()

        d = {"kind": RUN_KIND, "run_id": self.run_id, "started_at": self.started_at, "ended_at": self.ended_at,
             "elapsed_s": self.elapsed_s, "status": self.status, "mode": self.mode, "backend": self.backend,
             "workers": self.workers, "concurrency": self.concurrency, "resumed": self.resumed,
             "batch": part(self.batch), "jobs": part(self.jobs), "aggregate": part(self.aggregate),
             "jobs_per_worker": dict(self.jobs_per_worker), "lost_attempts": self.lost_attempts,
             "reclaimed_slots": self.reclaimed_slots, "lock_wait": dict(self.lock_wait),
             "telemetry_lost": dict(self.telemetry_lost), "first_failure": part(self.first_failure)}
        return put(d, slo=self.slo) | {"verdict": part(self.verdict)} | (
            {} if self.autoscale is None else {"autoscale": self.autoscale.to_json()})

    @classmethod
    def _read(cls, o: Obj) -> BatchRunSummary:
        def part(key: str, record: Any) -> Any:
            sub = o.obj(key)
            return None if sub is None else record._read(sub)

        kind = o.text("kind")
        if kind != RUN_KIND:
            o.rd.bad(o.file, "kind", f"expected {RUN_KIND!r} (a batch run's summary), got {kind!r}")
        return cls(
            run_id=o.text("run_id"), started_at=o.num("started_at"), ended_at=o.num("ended_at"),
            elapsed_s=o.num("elapsed_s"), status=o.text("status"), mode=o.text("mode"), backend=o.text("backend"),
            workers=o.count("workers"), concurrency=o.count("concurrency"), resumed=o.flag("resumed"),
            batch=part("batch", BatchInfo), jobs=part("jobs", RunJobs), aggregate=part("aggregate", Window),
            jobs_per_worker=o.mapping("jobs_per_worker", Obj.count), lost_attempts=o.count("lost_attempts"),
            reclaimed_slots=o.count("reclaimed_slots"), lock_wait=o.mapping("lock_wait", Obj.num),
            telemetry_lost=o.mapping("telemetry_lost", Obj.count), first_failure=part("first_failure", FirstFailure),
            slo=o.text("slo"), verdict=part("verdict", Verdict), autoscale=part("autoscale", Autoscale))


__all__ = ["RUN_KIND", "RunJobs", "FirstFailure", "BatchRunSummary", "Autoscale", "ScaleStep"]
