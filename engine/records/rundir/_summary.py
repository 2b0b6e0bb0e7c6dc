"""The records of the whole-run files: SoakSummary (and its parts), Verdict, Drilldown, Diagnostic."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from engine.records.rundir._fields import Obj, Reading, Record, as_number, kind_of, root
from engine.records.rundir._records import Alert, Window

# -- the verdict in summary.json ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CriterionRow(Record):
    """One readiness criterion judged: ``value`` for machines (its shape is the criterion's), the rest for people."""

    name: str | None
    description: str | None = None
    value: Any = None
    measured: str | None = None
    limit: Any = None
    ok: bool | None = None          # None: not measured
    reason: str | None = None
    waived: bool = False
    waiver_reason: str | None = None

    @property
    def status(self) -> str:
        return "not measured" if self.ok is None else ("pass" if self.ok else "fail")

    @property
    def met(self) -> bool:
        return self.ok is True or self.waived

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "value": self.value, "measured": self.measured,
                "limit": self.limit, "ok": self.ok, "status": self.status, "waived": self.waived,
                "reason": self.reason, "waiver_reason": self.waiver_reason}

    @classmethod
    def _read(cls, o: Obj) -> CriterionRow:
        return cls(o.text("name"), o.text("description"), o.json("value"), o.text("measured"), o.json("limit"),
                   o.flag("ok"), o.text("reason"), o.flag("waived") is True, o.text("waiver_reason"))


@dataclass(frozen=True, slots=True)
class AcceptedRisk(Record):
    """A waived criterion (``text``: a risk written as a bare string by an older verdict)."""

    criterion: str | None = None
    reason: str | None = None
    measured: str | None = None
    value: Any = None
    ok: bool | None = None
    text: str | None = None

    def to_json(self) -> Any:
        if self.text is not None:
            return self.text
        return {"criterion": self.criterion, "reason": self.reason, "measured": self.measured, "value": self.value,
                "ok": self.ok}

    @classmethod
    def _read(cls, o: Obj) -> AcceptedRisk:
        return cls(o.text("criterion") or o.text("name") or o.text("risk"), o.text("reason") or o.text("why"),
                   o.text("measured"), o.json("value"), o.flag("ok"))


@dataclass(frozen=True, slots=True)
class Verdict(Record):
    """Go / No-Go: the soak's own (``kind`` None: ``go`` and ``reasons``) or readiness's (``kind`` "readiness").

    Readiness keeps the soak's own verdict as ``soak_go`` / ``soak_reasons``.
    """

    go: bool | None = None
    reasons: tuple[str, ...] = ()
    kind: str | None = None
    run_id: str | None = None
    evaluated_at: float | None = None
    criteria: tuple[CriterionRow, ...] = ()
    accepted_risks: tuple[AcceptedRisk, ...] = ()
    limits: Mapping[str, Any] | None = None
    slo: str | None = None
    baseline: str | None = None
    soak_reasons: tuple[str, ...] = ()
    soak_go: bool | None = None

    def to_json(self) -> dict[str, Any]:
        if self.kind is None:
            d: dict[str, Any] = {"go": self.go, "reasons": list(self.reasons)}
            if self.criteria:
                d["criteria"] = [c.to_json() for c in self.criteria]
            if self.accepted_risks:
                d["accepted_risks"] = [r.to_json() for r in self.accepted_risks]
            return d
        return {"kind": self.kind, "go": self.go, "run_id": self.run_id, "evaluated_at": self.evaluated_at,
                "criteria": [c.to_json() for c in self.criteria],
                "accepted_risks": [r.to_json() for r in self.accepted_risks], "reasons": list(self.reasons),
                "limits": None if self.limits is None else dict(self.limits), "slo": self.slo,
                "baseline": self.baseline, "soak_reasons": list(self.soak_reasons), "soak_go": self.soak_go}

    @classmethod
    def _read(cls, o: Obj) -> Verdict:
        risks = []
        for i, r in enumerate(o.items("accepted_risks") or ()):
            if isinstance(r, str):
                risks.append(AcceptedRisk(text=r))
            elif isinstance(r, dict):
                risks.append(AcceptedRisk._read(Obj(r, o.where("accepted_risks") + f"[{i}]", o.file, o.rd)))
            else:
                o.rd.bad(o.file, o.where("accepted_risks") + f"[{i}]", f"expected an object, got {kind_of(r)}",
                         skipped=True)
        limits = o.obj("limits")
        return cls(o.flag("go"), o.texts("reasons") or (), o.text("kind"), o.text("run_id"), o.num("evaluated_at"),
                   tuple(CriterionRow._read(c) for c in o.objs("criteria") or ()), tuple(risks),
                   None if limits is None else dict(limits.raw), o.text("slo"), o.text("baseline"),
                   o.texts("soak_reasons") or (), o.flag("soak_go"))


# -- summary.json: SoakSummary and its parts ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchInfo(Record):
    path: str | None = None
    sha256: str | None = None
    jobs: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "jobs": self.jobs}

    @classmethod
    def _read(cls, o: Obj) -> BatchInfo:
        return cls(o.text("path"), o.text("sha256"), o.count("jobs"))


@dataclass(frozen=True, slots=True)
class Throughputs(Record):
    """jobs/s: the whole run, the parallel phases, the legacy phase (the rollback drill's)."""

    overall: float | None = None
    parallel: float | None = None
    legacy: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"overall": self.overall, "parallel": self.parallel, "legacy": self.legacy}

    @classmethod
    def _read(cls, o: Obj) -> Throughputs:
        return cls(o.num("overall"), o.num("parallel"), o.num("legacy"))


_ACCOUNTING = ("recorded", "finished", "unfinished", "not_started", "over_bound")


@dataclass(frozen=True, slots=True)
class JobAccounting(Record):
    """Every job the soak recorded: finished, started and unfinished, never started, past its time bound."""

    recorded: int | None = None
    finished: int | None = None
    unfinished: int | None = None
    not_started: int | None = None
    over_bound: int | None = None
    max_job_s: float | None = None
    max_queue_wait_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in _ACCOUNTING}, "max_job_s": self.max_job_s,
                "max_queue_wait_s": self.max_queue_wait_s}

    @classmethod
    def _read(cls, o: Obj) -> JobAccounting:
        return cls(*(o.count(k) for k in _ACCOUNTING), o.num("max_job_s"), o.num("max_queue_wait_s"))


@dataclass(frozen=True, slots=True)
class LastQuarter(Record):
    """The jobs that ended in the last quarter of the run (``from_ts`` is written ``from``)."""

    from_ts: float | None = None
    to: float | None = None
    passed: int | None = None
    failed: int | None = None
    error_rate: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"from": self.from_ts, "to": self.to, "passed": self.passed, "failed": self.failed,
                "error_rate": self.error_rate}

    @classmethod
    def _read(cls, o: Obj) -> LastQuarter:
        return cls(o.num("from"), o.num("to"), o.count("passed"), o.count("failed"), o.num("error_rate"))


@dataclass(frozen=True, slots=True)
class SupervisorMemory(Record):
    """Supervisor RSS (MB): growth counts from the first sample after ``settle_s``; ``samples`` (t, MB)."""

    settle_s: float | None = None
    first_mb: float | None = None
    last_mb: float | None = None
    max_mb: float | None = None
    growth_mb: float | None = None
    samples: tuple[tuple[float, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"settle_s": self.settle_s, "first_mb": self.first_mb, "last_mb": self.last_mb, "max_mb": self.max_mb,
                "growth_mb": self.growth_mb, "samples": [list(p) for p in self.samples]}

    @classmethod
    def _read(cls, o: Obj) -> SupervisorMemory:
        samples = []
        for i, p in enumerate(o.items("samples") or ()):
            if isinstance(p, list) and len(p) == 2 and all(as_number(x) is not None for x in p):
                samples.append((as_number(p[0]), as_number(p[1])))
            else:
                o.rd.bad(o.file, o.where("samples") + f"[{i}]", f"expected [seconds, MB], got {kind_of(p)}",
                         skipped=True)
        return cls(o.num("settle_s"), o.num("first_mb"), o.num("last_mb"), o.num("max_mb"), o.num("growth_mb"),
                   tuple(samples))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SoakPhase(Record):
    """One phase of a soak: parallel, or the rollback drill's legacy phase."""

    mode: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    jobs: int | None = None
    status: str | None = None  # completed / interrupted / halted / skipped
    unfinished_after: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "started_at": self.started_at, "ended_at": self.ended_at, "jobs": self.jobs,
                "status": self.status, "unfinished_after": self.unfinished_after}

    @classmethod
    def _read(cls, o: Obj) -> SoakPhase:
        return cls(o.text("mode"), o.num("started_at"), o.num("ended_at"), o.count("jobs"), o.text("status"),
                   o.count("unfinished_after"))


@dataclass(frozen=True, slots=True)
class RollbackDrill(Record):
    """Parallel, legacy, parallel on one scheduler: passed when every phase completed jobs and nothing was lost."""

    passed: bool | None = None
    to_legacy_at: float | None = None
    back_at: float | None = None
    jobs_parallel_before: int | None = None
    jobs_legacy: int | None = None
    jobs_parallel_after: int | None = None
    lost: int | None = None
    duplicates: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "to_legacy_at": self.to_legacy_at, "back_at": self.back_at,
                "jobs_parallel_before": self.jobs_parallel_before, "jobs_legacy": self.jobs_legacy,
                "jobs_parallel_after": self.jobs_parallel_after, "lost": self.lost, "duplicates": self.duplicates,
                "error": self.error}

    @classmethod
    def _read(cls, o: Obj) -> RollbackDrill:
        return cls(o.flag("passed"), o.num("to_legacy_at"), o.num("back_at"), o.count("jobs_parallel_before"),
                   o.count("jobs_legacy"), o.count("jobs_parallel_after"), o.count("lost"), o.count("duplicates"),
                   o.text("error"))


@dataclass(frozen=True, slots=True)
class SoakSummary(Record):
    """``summary.json``.  ``rollback_drill`` None with ``rollback_drill_recorded``: no drill was run;
    ``rollback_drill_recorded`` False: the summary (an older soak's) has no such key."""

    run_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    target_duration_s: float | None = None
    window_s: float | None = None
    workers: int | None = None
    mode: str | None = None
    status: str | None = None     # completed / halted / interrupted (aborted in older soaks)
    halt_reason: str | None = None
    cycles: int | None = None
    batch: BatchInfo | None = None
    windows: tuple[Window, ...] = ()
    aggregate: Window | None = None
    throughput: Throughputs | None = None
    jobs: JobAccounting | None = None
    last_quarter: LastQuarter | None = None
    supervisor_memory: SupervisorMemory | None = None
    phases: tuple[SoakPhase, ...] = ()
    rollback_drill: RollbackDrill | None = None
    rollback_drill_recorded: bool = True
    alerts_fired: Mapping[str, int | None] = field(default_factory=dict)
    run_alerts: tuple[Alert, ...] = ()
    verdict: Verdict | None = None

    def to_json(self) -> dict[str, Any]:
        def part(p: Any) -> Any:
            return None if p is None else p.to_json()

        d = {"run_id": self.run_id, "started_at": self.started_at, "ended_at": self.ended_at,
             "target_duration_s": self.target_duration_s, "window_s": self.window_s, "workers": self.workers,
             "mode": self.mode, "status": self.status, "halt_reason": self.halt_reason, "cycles": self.cycles,
             "batch": part(self.batch), "windows": [w.to_json() for w in self.windows],
             "aggregate": part(self.aggregate), "throughput": part(self.throughput), "jobs": part(self.jobs),
             "last_quarter": part(self.last_quarter), "supervisor_memory": part(self.supervisor_memory),
             "phases": [p.to_json() for p in self.phases]}
        if self.rollback_drill_recorded:
            d["rollback_drill"] = part(self.rollback_drill)
        d.update(alerts_fired=dict(self.alerts_fired), run_alerts=[a.to_json() for a in self.run_alerts],
                 verdict=part(self.verdict))
        return d

    @classmethod
    def _read(cls, o: Obj) -> SoakSummary:
        def part(key: str, record: Any) -> Any:
            sub = o.obj(key)
            return None if sub is None else record._read(sub)

        return cls(
            run_id=o.text("run_id"), started_at=o.num("started_at"), ended_at=o.num("ended_at"),
            target_duration_s=o.num("target_duration_s"), window_s=o.num("window_s"), workers=o.count("workers"),
            mode=o.text("mode"), status=o.text("status"), halt_reason=o.text("halt_reason"), cycles=o.count("cycles"),
            batch=part("batch", BatchInfo),
            windows=tuple(Window._read(w) for w in o.objs("windows", keep_bad=True) or ()),
            aggregate=part("aggregate", Window), throughput=part("throughput", Throughputs),
            jobs=part("jobs", JobAccounting), last_quarter=part("last_quarter", LastQuarter),
            supervisor_memory=part("supervisor_memory", SupervisorMemory),
            phases=tuple(SoakPhase._read(p) for p in o.objs("phases") or ()),
            rollback_drill=part("rollback_drill", RollbackDrill), rollback_drill_recorded="rollback_drill" in o.raw,
            alerts_fired=o.mapping("alerts_fired", Obj.count),
            run_alerts=tuple(Alert._read(a) for a in o.objs("run_alerts") or ()), verdict=part("verdict", Verdict))


# -- drilldown.json and diagnostic-*.json ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Drilldown(Record):
    """One correlation chain across the four streams: the log records as the streams hold them."""

    correlation_id: str | None
    reason: str | None
    records: tuple[Mapping[str, Any], ...]
    run_id: str | None = None
    generated_at: float | None = None
    streams: Mapping[str, int | None] = field(default_factory=dict)
    trace: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"correlation_id": self.correlation_id, "reason": self.reason, "run_id": self.run_id,
                "generated_at": self.generated_at, "streams": dict(self.streams), "trace": self.trace,
                "records": [dict(r) for r in self.records]}

    @classmethod
    def from_json(cls, data: Any, *, file: str = "<json>", reading: Reading | None = None) -> Drilldown:
        return cls._read(root({"records": data} if isinstance(data, list) else data, file, reading))

    @classmethod
    def _read(cls, o: Obj) -> Drilldown:
        return cls(o.text("correlation_id"), o.text("reason"), tuple(r.raw for r in o.objs("records") or ()),
                   o.text("run_id"), o.num("generated_at"), o.mapping("streams", Obj.count), o.text("trace"))


def json_default(obj: Any) -> Any:
    if isinstance(obj, (Mapping, MappingProxyType)):
        return dict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, (tuple, list)):
        return list(obj)
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        return to_json()
    return str(obj)  # Paths, enums, exceptions: their text is what a reader needs


@dataclass(frozen=True, slots=True)
class Diagnostic(Record):
    """Why a soak halted: ``reason``, and ``context`` (the halting alert, last windows, recent errors ...) as is."""

    ts: float | None
    reason: str | None
    context: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ts": self.ts, "reason": self.reason, **self.context}

    @classmethod
    def _read(cls, o: Obj) -> Diagnostic:
        return cls(o.num("ts"), o.text("reason"), {k: v for k, v in o.raw.items() if k not in ("ts", "reason")})


__all__ = ["CriterionRow", "AcceptedRisk", "Verdict", "BatchInfo", "Throughputs", "JobAccounting", "LastQuarter",
           "SupervisorMemory", "SoakPhase", "RollbackDrill", "SoakSummary", "Drilldown", "Diagnostic",
           "json_default"]
