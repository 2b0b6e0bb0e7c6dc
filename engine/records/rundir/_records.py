"""The records of the per-window files: Window (and its parts), SloResult, Alert, FailureRow."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from engine.records.metrics import Histogram
from engine.records.rundir._fields import Obj, Record, put

# -- windows.jsonl: one Window per line (and the aggregate of summary.json) ---------------------------


@dataclass(frozen=True, slots=True)
class JobCounts(Record):
    passed: int | None = None
    failed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed": self.failed}

    @classmethod
    def _read(cls, o: Obj) -> JobCounts:
        return cls(o.count("passed"), o.count("failed"))


_STATS = ("n", "p50", "p95", "p99", "max", "avg", "min")


@dataclass(frozen=True, slots=True)
class LatencyStats(Record):
    """One latency metric (``flow:NAME``, ``phase:TYPE``, ``label:LABEL``) in one window, milliseconds."""

    n: int | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    avg: float | None = None
    min: float | None = None
    histogram: Histogram | None = None  # kept while a window is evaluated, and in the aggregate

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in _STATS}
        return put(d, histogram=None if self.histogram is None else self.histogram.to_dict())

    def numbers(self) -> dict[str, float]:
        """The stats that are recorded, numbers only (the shape engine.evidence.slo evaluates)."""
        return {k: float(v) for k in _STATS if (v := getattr(self, k)) is not None}

    @classmethod
    def _read(cls, o: Obj) -> LatencyStats:
        hist = None
        raw = o.obj("histogram")
        if raw is not None:
            try:
                hist = Histogram.from_dict(raw.raw)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                o.rd.bad(o.file, o.where("histogram"), f"not a histogram ({type(exc).__name__}: {exc})")
        return cls(o.count("n"), *(o.num(k) for k in _STATS[1:]), histogram=hist)


_RESOURCES = ("browser_uss_mb", "browser_rss_mb", "fds", "children")


@dataclass(frozen=True, slots=True)
class WorkerResources(Record):
    """A worker's maxima over the window's samples (USS: memory unique to its browser's processes)."""

    samples: int | None = None
    browser_uss_mb: float | None = None
    browser_rss_mb: float | None = None
    fds: float | None = None
    children: float | None = None

    def to_json(self) -> dict[str, Any]:
        return put({}, samples=self.samples, **{k: getattr(self, k) for k in _RESOURCES})

    @classmethod
    def _read(cls, o: Obj) -> WorkerResources:
        return cls(o.count("samples"), *(o.num(k) for k in _RESOURCES))


@dataclass(frozen=True, slots=True)
class SloResult(Record):
    """One SLO threshold judged on one window (``window`` an index) or the whole run (``"run"``)."""

    metric: str | None
    expr: str | None
    value: float | None
    ok: bool | None            # None: no data
    status: str | None         # pass / fail / no data, as judged
    abort_on_fail: bool = False
    window: int | str | None = None

    @classmethod
    def judged(cls, metric: str, expr: str, value: float | None, ok: bool | None, abort_on_fail: bool,
               window: int | str | None) -> SloResult:
        return cls(metric, expr, value, ok, "no data" if ok is None else ("pass" if ok else "fail"),
                   abort_on_fail, window)

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "expr": self.expr, "value": self.value, "ok": self.ok, "status": self.status,
                "abort_on_fail": self.abort_on_fail, "window": self.window}

    @classmethod
    def _read(cls, o: Obj) -> SloResult:
        return cls(o.text("metric"), o.text("expr"), o.num("value"), o.flag("ok"), o.text("status"),
                   o.flag("abort_on_fail") is True, o.window_id("window"))


_SAFETY_COUNTS = ("unowned_uses", "invalid_transitions", "duplicates", "worker_restarts")


@dataclass(frozen=True, slots=True)
class Window(Record):
    """One window's figures (``index`` None: the whole run, the ``aggregate`` of summary.json).

    ``partial``: a final window shorter than half a window (its rates are noise).
    The safety figures (``supervisor_rss_mb`` .. ``mode``) and ``slo`` are
    written only when known.
    """

    index: int | None = None
    start: float | None = None
    end: float | None = None
    jobs: JobCounts | None = None
    error_rate: float | None = None
    throughput: float | None = None
    throughput_per_worker: Mapping[str, float | None] = field(default_factory=dict)
    latency: Mapping[str, LatencyStats] = field(default_factory=dict)
    resources: Mapping[str, WorkerResources] = field(default_factory=dict)
    queue_wait_max_ms: float | None = None
    partial: bool = False
    supervisor_rss_mb: float | None = None
    unowned_uses: int | None = None
    invalid_transitions: int | None = None
    duplicates: int | None = None
    worker_restarts: int | None = None
    idle_workers_s: float | None = None
    queued: int | None = None
    mode: str | None = None  # parallel / legacy, "run" for the aggregate
    slo: tuple[SloResult, ...] | None = None

    @property
    def passed(self) -> int | None:
        return None if self.jobs is None else self.jobs.passed

    @property
    def failed(self) -> int | None:
        return None if self.jobs is None else self.jobs.failed

    def without_histograms(self) -> Window:
        return replace(self, latency={k: replace(s, histogram=None) for k, s in self.latency.items()})

    def to_json(self) -> dict[str, Any]:
        d = {"index": self.index, "start": self.start, "end": self.end,
             "jobs": None if self.jobs is None else self.jobs.to_json(), "error_rate": self.error_rate,
             "throughput": self.throughput, "throughput_per_worker": dict(self.throughput_per_worker),
             "latency": {k: s.to_json() for k, s in self.latency.items()},
             "resources": {k: r.to_json() for k, r in self.resources.items()},
             "queue_wait_max_ms": self.queue_wait_max_ms, "partial": self.partial}
        put(d, supervisor_rss_mb=self.supervisor_rss_mb, **{k: getattr(self, k) for k in _SAFETY_COUNTS},
             idle_workers_s=self.idle_workers_s, queued=self.queued, mode=self.mode)
        return put(d, slo=None if self.slo is None else [r.to_json() for r in self.slo])

    @classmethod
    def _read(cls, o: Obj) -> Window:
        jobs = o.obj("jobs")
        slo = o.objs("slo")
        return cls(
            index=o.whole("index"), start=o.num("start"), end=o.num("end"),
            jobs=None if jobs is None else JobCounts._read(jobs), error_rate=o.num("error_rate"),
            throughput=o.num("throughput"), throughput_per_worker=o.mapping("throughput_per_worker", Obj.num),
            latency={k: LatencyStats._read(v) for k, v in o.objects("latency").items()},
            resources={k: WorkerResources._read(v) for k, v in o.objects("resources").items()},
            queue_wait_max_ms=o.num("queue_wait_max_ms"), partial=o.flag("partial") is True,
            supervisor_rss_mb=o.num("supervisor_rss_mb"), unowned_uses=o.count("unowned_uses"),
            invalid_transitions=o.count("invalid_transitions"), duplicates=o.count("duplicates"),
            worker_restarts=o.count("worker_restarts"), idle_workers_s=o.num("idle_workers_s"),
            queued=o.count("queued"), mode=o.text("mode"),
            slo=None if slo is None else tuple(SloResult._read(r) for r in slo))


# -- alerts.jsonl: one Alert per line -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert(Record):
    """One raised alert, as written to every sink (``window``: an index, or ``"run"``)."""

    ts: float | None
    severity: str | None
    rule: str | None
    metric: str | None
    value: float | None
    threshold: str | float | None  # the condition as text; a bare bound in older soaks
    window: int | str | None
    message: str | None
    run_id: str | None = ""

    def to_json(self) -> dict[str, Any]:
        return {"ts": self.ts, "severity": self.severity, "rule": self.rule, "metric": self.metric,
                "value": self.value, "threshold": self.threshold, "window": self.window, "message": self.message,
                "run_id": self.run_id}

    @classmethod
    def _read(cls, o: Obj) -> Alert:
        return cls(o.num("ts"), o.text("severity"), o.text("rule"), o.text("metric"), o.num("value"),
                   o.scalar("threshold"), o.window_id("window"), o.text("message"), o.text("run_id"))


# -- failure_matrix.json: a list of FailureRow ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailureRow(Record):
    """One failure category of the matrix (engine.evidence.failures builds them)."""

    category: str | None
    count: int | None
    jobs: int | None
    first_seen: float | None
    last_seen: float | None
    examples: tuple[str, ...]
    root_cause: str | None
    error_class: str | None
    containment: tuple[tuple[str, int | None], ...]  # (label, failures it was applied to), most frequent first
    resolved: bool | None
    unresolved_jobs: int | None = 0

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "count": self.count, "jobs": self.jobs, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "examples": list(self.examples), "root_cause": self.root_cause,
                "error_class": self.error_class, "containment": [label for label, _ in self.containment],
                "containment_counts": {label: n for label, n in self.containment if n is not None},
                "resolved": self.resolved, "unresolved_jobs": self.unresolved_jobs}

    @classmethod
    def _read(cls, o: Obj) -> FailureRow:
        labels = o.raw.get("containment")
        labels = (o.texts("containment") or ()) if not isinstance(labels, str) else (labels,)
        counts = o.mapping("containment_counts", Obj.count)
        return cls(o.text("category"), o.count("count"), o.count("jobs"), o.num("first_seen"), o.num("last_seen"),
                   tuple(x for x in o.texts("examples") or () if x), o.text("root_cause"), o.text("error_class"),
                   tuple((x, counts.get(x)) for x in labels), o.flag("resolved"), o.count("unresolved_jobs"))


__all__ = ["JobCounts", "LatencyStats", "WorkerResources", "SloResult", "Window", "Alert", "FailureRow"]
