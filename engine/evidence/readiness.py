"""Go / No-Go for a finished soak: every readiness criterion measured from the files of its run directory.

Why a step of its own after the soak: the soak's verdict covers what it
sees while running (a halt, an SLO breach, duplicates, unowned uses);
readiness judges the finished evidence against all the criteria of
:mod:`engine.evidence.criteria`, against a baseline from another run and with the
operator's waivers, and it can be re-run (new baseline, new waiver)
without re-running a 24-hour soak.  It reads files only — ``summary.json``,
``failure_matrix.json``, ``slo.json`` — never a browser or the store.

Rules, so a verdict cannot pass by accident:

* Each criterion is ``ok`` True (met), False (failed) or None (not
  measured).  Not measured counts as *not met*: a criterion nobody can
  show does not pass.  A missing or malformed figure is therefore never a
  crash and never a pass; the reason names the field
  (``jobs.unfinished not recorded``).
* Go = every criterion met or waived.  A waived criterion is still
  measured and shown, and listed in ``accepted_risks`` with its reason.
* The files are parsed once, at the edge, into :class:`RunFigures`; the
  checks never read a raw dict (the whole-run latency stats are kept
  numbers only, in the shape :mod:`engine.evidence.slo` evaluates).
* The verdict goes into ``summary.json`` under ``verdict`` (atomic
  replace, every other key kept); the soak's own reasons are kept there as
  ``soak_reasons``.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from coordination.telemetry_context import stream_logger
from engine.evidence.criteria import CATEGORIES, CRITERION_NAMES, DESCRIPTIONS, ReadinessLimits
from engine.errors import ConfigError, ReadinessError, ReadinessInputError
from engine.evidence.slo import SLOSpec, load_slo, load_slo_text, metric_kind

log = stream_logger("operational", __name__)

SUMMARY_FILE = "summary.json"
MATRIX_FILE = "failure_matrix.json"
SLO_FILE = "slo.json"
BASELINE_KIND = "drover-readiness-baseline"
BASELINE_VERSION = 1


# -- records, parsed once at the edge ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollbackDrill:
    passed: bool | None
    lost: int | None
    duplicates: int | None
    jobs_legacy: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class SloOutcome:
    """One whole-run threshold result as the soak stored it (``status``: pass / fail / no data)."""

    metric: str
    expr: str
    value: float | None
    status: str


@dataclass(frozen=True, slots=True)
class MatrixRow:
    category: str
    resolved: bool | None
    unresolved_jobs: int | None


@dataclass(frozen=True, slots=True)
class RunFigures:
    """The figures of one soak's ``summary.json``; None wherever the summary does not hold a usable value."""

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
    slo_results: tuple[SloOutcome, ...] | None

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
    matrix: tuple[MatrixRow, ...] | None
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


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """One criterion judged: ``value`` for machines, ``measured`` and ``limit`` for people."""

    name: str
    description: str
    value: Any
    measured: str
    limit: str
    ok: bool | None
    reason: str
    waived: bool = False
    waiver_reason: str | None = None

    @property
    def status(self) -> str:
        return "not measured" if self.ok is None else ("pass" if self.ok else "fail")

    @property
    def met(self) -> bool:
        return self.ok is True or self.waived

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "value": self.value,
                "measured": self.measured, "limit": self.limit, "ok": self.ok, "status": self.status,
                "waived": self.waived, "reason": self.reason, "waiver_reason": self.waiver_reason}


@dataclass(frozen=True, slots=True)
class Verdict:
    run_id: str
    criteria: tuple[CriterionResult, ...]
    limits: ReadinessLimits
    slo_source: str | None
    baseline_source: str | None
    evaluated_at: float

    @property
    def go(self) -> bool:
        return all(c.met for c in self.criteria)

    @property
    def reasons(self) -> list[str]:
        """The criteria that stand in the way, in plain words with their figures."""
        return [f"{c.name}: {c.reason}" if c.ok is False else f"{c.name}: not measured ({c.reason})"
                for c in self.criteria if not c.met]

    @property
    def accepted_risks(self) -> list[dict[str, Any]]:
        return [{"criterion": c.name, "reason": c.waiver_reason, "measured": c.measured, "value": c.value,
                 "ok": c.ok} for c in self.criteria if c.waived]

    def to_dict(self) -> dict[str, Any]:
        limits = asdict(self.limits)
        limits["critical_categories"] = list(self.limits.critical_categories)
        return {"kind": "readiness", "go": self.go, "run_id": self.run_id, "evaluated_at": self.evaluated_at,
                "criteria": [c.to_dict() for c in self.criteria], "accepted_risks": self.accepted_risks,
                "reasons": self.reasons, "limits": limits, "slo": self.slo_source,
                "baseline": self.baseline_source}


# -- parsing -------------------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    """A finite number, else None (a bool is not a number here)."""
    if type(v) is float:
        return v if math.isfinite(v) else None
    return float(v) if type(v) is int else None


def _count(v: Any) -> int | None:
    f = _num(v)
    return int(f) if f is not None and f.is_integer() and f >= 0 else None


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _queue_wait(raw: Mapping[str, Any]) -> float | None:
    """``jobs.max_queue_wait_s``, else the largest ``queue_wait_max_ms`` of the windows and the aggregate."""
    direct = _num(_dict(raw.get("jobs")).get("max_queue_wait_s"))
    if direct is not None:
        return direct
    windows = [w for w in _list(raw.get("windows")) if isinstance(w, dict)] + [_dict(raw.get("aggregate"))]
    waits = [ms for ms in (_num(w.get("queue_wait_max_ms")) for w in windows) if ms is not None]
    return max(waits) / 1000.0 if waits else None


def _slo_results(aggregate: Mapping[str, Any] | None) -> tuple[SloOutcome, ...] | None:
    if aggregate is None or not isinstance(aggregate.get("slo"), list):
        return None
    return tuple(SloOutcome(str(r.get("metric") or "?"), str(r.get("expr") or ""), _num(r.get("value")),
                            str(r.get("status") or "no data"))
                 for r in aggregate["slo"] if isinstance(r, dict))


def _latency(aggregate: Mapping[str, Any] | None) -> Mapping[str, Mapping[str, float]] | None:
    """``flow:``/``phase:`` stats with their numeric fields only, so engine.evidence.slo never meets a malformed value."""
    if aggregate is None:
        return None
    return MappingProxyType({
        str(metric): MappingProxyType({k: n for k, n in ((k, _num(v)) for k, v in stats.items()) if n is not None})
        for metric, stats in _dict(aggregate.get("latency")).items() if isinstance(stats, dict)})


def parse_figures(raw: Mapping[str, Any], fallback_run_id: str) -> RunFigures:
    """A summary dict into :class:`RunFigures`; tolerant: whatever is missing or malformed becomes None."""
    agg = raw.get("aggregate") if isinstance(raw.get("aggregate"), dict) else None
    a = agg or {}
    throughput, jobs, quarter = _dict(raw.get("throughput")), _dict(raw.get("jobs")), raw.get("last_quarter")
    memory, drill_raw = _dict(raw.get("supervisor_memory")), raw.get("rollback_drill")
    drill = None
    if isinstance(drill_raw, dict):
        passed = drill_raw.get("passed")
        drill = RollbackDrill(passed if isinstance(passed, bool) else None, _count(drill_raw.get("lost")),
                              _count(drill_raw.get("duplicates")), _count(drill_raw.get("jobs_legacy")),
                              _text(drill_raw.get("error")))
    quarter_jobs = None
    if isinstance(quarter, dict):
        passed_n, failed_n = _count(quarter.get("passed")), _count(quarter.get("failed"))
        quarter_jobs = None if passed_n is None or failed_n is None else passed_n + failed_n
    return RunFigures(
        run_id=_text(raw.get("run_id")) or fallback_run_id,
        status=_text(raw.get("status")), halt_reason=_text(raw.get("halt_reason")),
        started_at=_num(raw.get("started_at")), ended_at=_num(raw.get("ended_at")),
        target_duration_s=_num(raw.get("target_duration_s")), workers=_count(raw.get("workers")),
        batch_sha256=_text(_dict(raw.get("batch")).get("sha256")),
        throughput_parallel=_num(throughput.get("parallel")), throughput_legacy=_num(throughput.get("legacy")),
        aggregate_throughput=_num(a.get("throughput")),
        jobs_unfinished=_count(jobs.get("unfinished")), jobs_over_bound=_count(jobs.get("over_bound")),
        max_queue_wait_s=_queue_wait(raw),
        last_quarter_recorded=isinstance(quarter, dict),
        last_quarter_error_rate=_num(_dict(quarter).get("error_rate")), last_quarter_jobs=quarter_jobs,
        memory_growth_mb=_num(memory.get("growth_mb")), memory_first_mb=_num(memory.get("first_mb")),
        memory_max_mb=_num(memory.get("max_mb")),
        drill_recorded="rollback_drill" in raw, drill=drill,
        unowned_uses=_count(a.get("unowned_uses")), invalid_transitions=_count(a.get("invalid_transitions")),
        duplicates=_count(a.get("duplicates")), worker_restarts=_count(a.get("worker_restarts")),
        latency=_latency(agg), slo_results=_slo_results(agg))


def _read_json(path: Path, what: str) -> Any:
    """stdlib json on purpose: a summary may hold NaN, which stricter parsers refuse."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise ReadinessInputError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ReadinessInputError(f"{path}: {what} is not UTF-8 text: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise ReadinessInputError(f"{path}: {what} is not JSON (line {exc.lineno}, column {exc.colno}: "
                                  f"{exc.msg})") from exc


def _read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY_FILE
    if not run_dir.is_dir():
        raise ReadinessInputError(f"{run_dir}: no such directory")
    if not path.is_file():
        raise ReadinessInputError(f"{run_dir}: no {SUMMARY_FILE} here; give the run directory of a soak "
                                  "(it is written when the soak ends, or halts)")
    raw = _read_json(path, "the soak summary")
    if not isinstance(raw, dict):
        raise ReadinessInputError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    return raw


def _read_matrix(run_dir: Path) -> tuple[tuple[MatrixRow, ...] | None, str]:
    """The failure matrix, or None and why: an unreadable matrix leaves one criterion unmeasured, no more."""
    path = run_dir / MATRIX_FILE
    if not path.is_file():
        return None, f"{MATRIX_FILE} not found in the run directory"
    try:
        raw = _read_json(path, "the failure matrix")
    except ReadinessInputError as exc:
        log.warning("failure matrix unreadable", extra={"event": "readiness_matrix_unreadable", "error": str(exc)})
        return None, str(exc)
    if not isinstance(raw, list) or not all(isinstance(r, dict) and isinstance(r.get("category"), str) for r in raw):
        return None, f"{MATRIX_FILE} is not a list of rows with a category"
    return tuple(MatrixRow(r["category"], r.get("resolved") if isinstance(r.get("resolved"), bool) else None,
                           _count(r.get("unresolved_jobs"))) for r in raw), ""


def _read_spec(run_dir: Path, slo_path: str | os.PathLike[str] | None) -> SLOSpec | None:
    """``--slo FILE`` if given, else the soak's copy ``slo.json`` (JSON or TOML text whatever its name)."""
    if slo_path is not None:
        return load_slo(slo_path)
    path = run_dir / SLO_FILE
    if not path.is_file():
        return None
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read SLO file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8: {exc}") from exc
    return load_slo_text(text, str(path))


def load_run(run_dir: str | os.PathLike[str], slo_path: str | os.PathLike[str] | None = None) -> RunEvidence:
    """Read a soak's run directory; raises :class:`ReadinessInputError` / ``ConfigError`` (both ``input``)."""
    run_dir = Path(run_dir)
    raw = _read_summary(run_dir)
    matrix, note = _read_matrix(run_dir)
    return RunEvidence(run_dir, parse_figures(raw, run_dir.name), matrix, note, _read_spec(run_dir, slo_path))


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """A baseline from a soak's run directory, its ``summary.json``, or a file written by :func:`save_baseline`."""
    p = Path(path)
    if p.is_dir():
        if not (p / SUMMARY_FILE).is_file():
            raise ReadinessInputError(f"{p}: baseline directory without {SUMMARY_FILE}; give a soak's run "
                                      "directory, its summary.json, or a file written by --save-baseline")
        p = p / SUMMARY_FILE
    raw = _read_json(p, "the baseline")
    if not isinstance(raw, dict):
        raise ReadinessInputError(f"{p}: a baseline is a JSON object, found {type(raw).__name__}")
    if "kind" not in raw:
        if not any(k in raw for k in ("aggregate", "throughput", "windows")):
            raise ReadinessInputError(f"{p}: neither a soak summary nor a readiness baseline "
                                      f"(no \"kind\": \"{BASELINE_KIND}\", no aggregate or throughput)")
        fig = parse_figures(raw, p.parent.name)
        return Baseline(str(p), fig.run_id, fig.reference_throughput()[0], fig.batch_sha256, fig.workers)
    if raw["kind"] != BASELINE_KIND or raw.get("version") != BASELINE_VERSION:
        raise ReadinessInputError(f"{p}: kind {raw.get('kind')!r} version {raw.get('version')!r} is not a "
                                  f"readiness baseline (expected kind {BASELINE_KIND!r}, version {BASELINE_VERSION})")
    throughput = _num(raw.get("throughput"))
    if throughput is None or throughput <= 0:
        raise ReadinessInputError(f"{p}: throughput must be a number > 0 (jobs/s), got {raw.get('throughput')!r}")
    for key, ok in (("batch_sha256", raw.get("batch_sha256") is None or isinstance(raw.get("batch_sha256"), str)),
                    ("workers", raw.get("workers") is None or _count(raw.get("workers")) is not None),
                    ("run_id", raw.get("run_id") is None or isinstance(raw.get("run_id"), str))):
        if not ok:
            raise ReadinessInputError(f"{p}: {key} has the wrong type: {raw.get(key)!r}")
    return Baseline(str(p), raw.get("run_id"), throughput, raw.get("batch_sha256"), _count(raw.get("workers")))


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
    return Baseline(str(evidence.run_dir / SUMMARY_FILE), fig.run_id, throughput, fig.batch_sha256, fig.workers)


# -- the criteria ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    """One figure of a criterion: met, failed, or missing, with the words that say which."""

    ok: bool | None
    text: str


@dataclass(frozen=True, slots=True)
class _Measure:
    value: Any
    measured: str
    limit: str
    ok: bool | None
    reason: str


def _combine(parts: list[_Part], value: Any, limit: str) -> _Measure:
    """Failed if any part failed, else not measured if any is missing, else met; the reason leads with the worst."""
    failed = [p.text for p in parts if p.ok is False]
    missing = [p.text for p in parts if p.ok is None]
    ok = False if failed else (None if missing else True)
    measured = ", ".join(p.text for p in parts)
    return _Measure(value, measured, limit, ok, "; ".join(failed + missing) if ok is not True else measured)


def _at_most(value: float | None, field_name: str, limit: float, noun: str) -> _Part:
    if value is None:
        return _Part(None, f"{field_name} not recorded")
    return _Part(value <= limit, f"{_n(value)} {noun}")


def _n(x: float, digits: int = 3) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.{digits}g}"


def _pct(x: float) -> str:
    return f"{x * 100:.{1 if abs(x) >= 0.01 else 2}f}%"


def _dur(seconds: float) -> str:
    """``4.2s``, ``90s``, ``10m``, ``10m05s``, ``24h``, ``1h00m20s`` (seconds kept below 10 h, where 5% is > 30 min)."""
    s = abs(seconds)
    if s < 120:
        return f"{s:.1f}s" if s < 10 and not s.is_integer() else f"{s:.0f}s"
    h, m, sec = int(s // 3600), int(s % 3600 // 60), int(round(s % 60))
    tail = f"{sec:02d}s" if sec and h < 10 else ""
    if not h:
        return f"{m}m{tail}"
    return f"{h}h" + (f"{m:02d}m{tail}" if m or tail else "")


def _unowned_use(ev: RunEvidence, _: Baseline | None) -> _Measure:
    f = ev.figures
    return _combine([_at_most(f.unowned_uses, "aggregate.unowned_uses", 0, "unowned session use(s)"),
                     _at_most(f.invalid_transitions, "aggregate.invalid_transitions", 0, "invalid transition(s)")],
                    {"unowned_uses": f.unowned_uses, "invalid_transitions": f.invalid_transitions}, "0 and 0")


def _no_deadlock(ev: RunEvidence, _: Baseline | None) -> _Measure:
    f, wait_limit = ev.figures, ev.limits.max_queue_wait_s
    wait = (_Part(None, "jobs.max_queue_wait_s (or the windows' queue_wait_max_ms) not recorded")
            if f.max_queue_wait_s is None else
            _Part(f.max_queue_wait_s <= wait_limit, f"queue wait up to {_dur(f.max_queue_wait_s)}"
                  + ("" if f.max_queue_wait_s <= wait_limit else f" > {_dur(wait_limit)}")))
    return _combine([_at_most(f.jobs_unfinished, "jobs.unfinished", 0, "unfinished"),
                     _at_most(f.jobs_over_bound, "jobs.over_bound", 0, "past their timeout"), wait],
                    {"unfinished": f.jobs_unfinished, "over_bound": f.jobs_over_bound,
                     "max_queue_wait_s": f.max_queue_wait_s},
                    f"0 unfinished, 0 past timeout, queue wait <= {_dur(wait_limit)}")


def _comparability(f: RunFigures, base: Baseline) -> list[str]:
    """Why the two runs cannot be compared (empty when they can): the same batch on the same worker count."""
    issues = []
    if f.batch_sha256 is None or base.batch_sha256 is None:
        side = "this run" if f.batch_sha256 is None else "the baseline"
        issues.append(f"batch sha256 unknown for {side}, cannot show both ran the same batch")
    elif f.batch_sha256 != base.batch_sha256:
        issues.append(f"different batch (sha256 {f.batch_sha256[:12]} here, {base.batch_sha256[:12]} in the baseline)")
    if f.workers is None or base.workers is None:
        issues.append("worker count unknown for " + ("this run" if f.workers is None else "the baseline"))
    elif f.workers != base.workers:
        issues.append(f"different worker count ({f.workers} here, {base.workers} in the baseline)")
    return issues


def _throughput_regression(ev: RunEvidence, base: Baseline | None) -> _Measure:
    max_reg = ev.limits.max_regression
    limit = f"at most {_pct(max_reg)} slower than the baseline"
    now, field_name = ev.figures.reference_throughput()
    shown = f"{now:.3f} jobs/s" if now is not None else f"{field_name} not recorded"
    if base is None:
        return _Measure({"throughput": now}, shown, limit, None, "no --baseline given to compare with")
    if now is None:
        return _Measure({"throughput": None}, shown, limit, None, f"this run's {field_name} not recorded")
    if base.throughput is None or base.throughput <= 0:
        return _Measure({"throughput": now}, shown, limit, None, f"the baseline {base.source} has no throughput")
    change = now / base.throughput - 1
    value = {"throughput": now, "baseline": base.throughput, "change": round(change, 4),
             "baseline_run": base.run_id}
    measured = f"{change * 100:+.1f}%: {now:.3f} vs {base.throughput:.3f} jobs/s"
    issues = _comparability(ev.figures, base)
    if issues:
        return _Measure(value | {"comparable": False}, measured, limit, None,
                        f"NOT COMPARABLE with baseline {base.run_id or base.source}: {'; '.join(issues)}; "
                        f"measured {measured}")
    ok = now >= (1 - max_reg) * base.throughput
    reason = (f"{measured} vs baseline {base.run_id or base.source}" if ok else
              f"{_pct(-change)} slower than baseline {base.run_id or base.source} ({now:.3f} vs "
              f"{base.throughput:.3f} jobs/s), more than {_pct(max_reg)}")
    return _Measure(value | {"comparable": True}, measured, limit, ok, reason)


def _p95_budget(ev: RunEvidence, _: Baseline | None) -> _Measure:
    limit = "every p(95) threshold on a flow:/phase: metric holds"
    if ev.spec is None:
        return _Measure(None, "no SLO file", limit, None, f"no SLO file ({SLO_FILE} in the run directory or --slo)")
    wanted = [t for t in ev.spec.thresholds if metric_kind(t.metric) == "latency"
              and t.expression.aggregate == "p" and t.expression.percentile == 95.0]
    if not wanted:
        return _Measure(None, "no p(95) threshold", limit, None,
                        f"{ev.spec.source} has no p(95) threshold on a flow: or phase: metric")
    if ev.figures.latency is None:
        return _Measure(None, "no aggregate", limit, None, "summary.json has no aggregate (whole-run) window")
    whole_run = {"index": "run", "latency": ev.figures.latency}
    stored = {(r.metric, r.expr): r for r in ev.figures.slo_results or ()}
    parts: list[_Part] = []
    ratios: list[tuple[float, str]] = []
    for t in wanted:
        label = f"{t.metric} {t.expression}"
        try:
            value = t.evaluate(whole_run).value
        except ValueError as exc:  # the aggregate lacks the stat: fall back to what the soak judged
            prior = stored.get((t.metric, str(t.expression)))
            value = prior.value if prior is not None and prior.status != "no data" else None
            if value is None:
                parts.append(_Part(None, f"{label}: cannot evaluate ({exc})"))
                continue
        if value is None:
            parts.append(_Part(None, f"{label}: no data over the whole run"))
            continue
        if t.expression.bound > 0 and t.expression.op in ("<", "<="):
            ratios.append((value / t.expression.bound, t.metric))
        parts.append(_Part(t.expression.holds(value), f"{t.metric} p(95) {_n(value, 4)} ms "
                                                      f"(budget {t.expression.op} {_n(t.expression.bound, 4)})"))
    m = _combine(parts, None, limit)
    if not ratios:
        return m
    ratio, metric = max(ratios)
    return _Measure(round(ratio, 4), f"worst {metric} at {ratio:.2f} of its budget ({len(wanted)} threshold(s))",
                    limit, m.ok, m.reason)


def _critical_failures(ev: RunEvidence, _: Baseline | None) -> _Measure:
    critical = ev.limits.critical_categories
    limit = "no unresolved job in " + ("any category" if set(critical) == set(CATEGORIES) else ", ".join(critical))
    if ev.matrix is None:
        return _Measure(None, "no failure matrix", limit, None, ev.matrix_note)
    bad = {r.category: r.unresolved_jobs for r in ev.matrix if r.category in critical and r.resolved is False}
    # engine.evidence.failures lists every category, even at zero: a missing row is a matrix that cannot show it
    absent = [c for c in critical if c not in {r.category for r in ev.matrix}]
    if not bad and absent:
        return _Measure(None, "rows missing", limit, None, f"{MATRIX_FILE} has no row for {', '.join(absent)}")
    if not bad:
        return _Measure({}, "none unresolved", limit, True, "every critical failure category resolved or empty")
    shown = ", ".join(f"{c}: {'?' if n is None else n} job(s) unresolved" for c, n in bad.items())
    return _Measure(bad, shown, limit, False, shown)


def _rollback_drill(ev: RunEvidence, _: Baseline | None) -> _Measure:
    f, limit = ev.figures, "passed, 0 lost"
    if not f.drill_recorded:
        return _Measure(None, "not recorded", limit, None, "summary.json has no rollback_drill")
    d = f.drill
    if d is None:
        return _Measure(None, "no drill", limit, None, "no rollback drill was run in this soak")
    value = {"passed": d.passed, "lost": d.lost, "duplicates": d.duplicates, "jobs_legacy": d.jobs_legacy}
    measured = (f"{'passed' if d.passed else 'failed' if d.passed is False else 'passed not recorded'}, "
                f"{'?' if d.jobs_legacy is None else d.jobs_legacy} legacy job(s), "
                f"{'?' if d.lost is None else d.lost} lost")
    if d.passed is None:
        return _Measure(value, measured, limit, None, "rollback_drill.passed not recorded")
    if d.passed is False or (d.lost or 0) > 0:
        return _Measure(value, measured, limit, False, f"drill {measured}" + (f": {d.error}" if d.error else ""))
    return _Measure(value, measured, limit, True, measured)


def _duration(ev: RunEvidence, _: Baseline | None) -> _Measure:
    f, tol = ev.figures, ev.limits.duration_tolerance
    target = f.target_duration_s
    limit = f"completed, no halt, {_dur(target) if target else 'target'} ± {_pct(tol)}"
    parts = [_Part(None, "status not recorded") if f.status is None else
             _Part(f.status == "completed", f"status {f.status}")]
    if f.halt_reason:
        parts.append(_Part(False, f"halted: {f.halt_reason}"))
    ran = None
    if f.started_at is None or f.ended_at is None or target is None or target <= 0:
        missing = [k for k, v in (("started_at", f.started_at), ("ended_at", f.ended_at),
                                  ("target_duration_s", target if target and target > 0 else None)) if v is None]
        parts.append(_Part(None, f"{', '.join(missing)} not recorded"))
    else:
        ran = f.ended_at - f.started_at
        off = (ran - target) / target
        parts.append(_Part(abs(off) <= tol, f"ran {_dur(ran)} ({off * 100:+.1f}% of the target)"))
    return _combine(parts, None if ran is None else round(ran, 3), limit)


def _error_rate_last_quarter(ev: RunEvidence, _: Baseline | None) -> _Measure:
    f, lim = ev.figures, ev.limits.max_last_quarter_error_rate
    limit = f"< {_pct(lim)}"
    if not f.last_quarter_recorded:
        return _Measure(None, "not recorded", limit, None, "summary.json has no last_quarter")
    rate = f.last_quarter_error_rate
    if rate is None:
        why = ("no job ended in the last quarter of the run" if f.last_quarter_jobs == 0
               else "last_quarter.error_rate not recorded")
        return _Measure(None, "no rate", limit, None, why)
    jobs = f" of {f.last_quarter_jobs} job(s)" if f.last_quarter_jobs is not None else ""
    measured = f"{_pct(rate)}{jobs}"
    ok = rate < lim
    return _Measure(rate, measured, limit, ok, measured if ok else f"{_pct(rate)}{jobs} >= {_pct(lim)}")


def _supervisor_memory(ev: RunEvidence, _: Baseline | None) -> _Measure:
    f, lim = ev.figures, ev.limits.max_memory_growth_mb
    limit = f"< {_n(lim)} MB growth"
    if f.memory_growth_mb is None:
        return _Measure(None, "not recorded", limit, None, "supervisor_memory.growth_mb not recorded")
    g = f.memory_growth_mb
    span = (f" ({f.memory_first_mb:.0f} -> peak {f.memory_max_mb:.0f} MB)"
            if f.memory_first_mb is not None and f.memory_max_mb is not None else "")
    measured = f"{g:+.1f} MB{span}"
    return _Measure(g, measured, limit, g < lim, measured if g < lim else f"grew {g:.1f} MB >= {_n(lim)} MB{span}")


def _throughput_vs_legacy(ev: RunEvidence, _: Baseline | None) -> _Measure:
    f, lim = ev.figures, ev.limits.min_legacy_ratio
    limit = f">= {_n(lim)}x the legacy path"
    if f.throughput_parallel is None:
        return _Measure(None, "not recorded", limit, None, "throughput.parallel not recorded")
    if f.throughput_legacy is None or f.throughput_legacy <= 0:
        return _Measure(None, "no legacy figure", limit, None,
                        "throughput.legacy not measured (it comes from the rollback drill)")
    ratio = f.throughput_parallel / f.throughput_legacy
    measured = f"{ratio:.2f}x ({f.throughput_parallel:.3f} vs {f.throughput_legacy:.3f} jobs/s)"
    ok = ratio >= lim
    return _Measure(round(ratio, 4), measured, limit, ok, measured if ok else f"{ratio:.2f}x < {_n(lim)}x "
                    f"({f.throughput_parallel:.3f} vs legacy {f.throughput_legacy:.3f} jobs/s)")


def _worker_restarts(ev: RunEvidence, _: Baseline | None) -> _Measure:
    lim = ev.limits.max_worker_restarts
    part = _at_most(ev.figures.worker_restarts, "aggregate.worker_restarts", lim, "worker restart(s)")
    m = _combine([part], ev.figures.worker_restarts, f"<= {lim}")
    return m if m.ok is not False else _Measure(m.value, m.measured, m.limit, False, f"{m.reason} > {lim}")


def _no_duplicates(ev: RunEvidence, _: Baseline | None) -> _Measure:
    f = ev.figures
    parts = [_at_most(f.duplicates, "aggregate.duplicates", 0, "duplicate outcome(s)")]
    value: dict[str, Any] = {"soak": f.duplicates}
    if f.drill is not None:
        parts.append(_at_most(f.drill.duplicates, "rollback_drill.duplicates", 0, "duplicate(s) in the drill"))
        value["rollback_drill"] = f.drill.duplicates
    return _combine(parts, value, "0")


def _slo_budgets(ev: RunEvidence, _: Baseline | None) -> _Measure:
    results, limit = ev.figures.slo_results, "every whole-run SLO threshold passes"
    if results is None:
        return _Measure(None, "not recorded", limit, None, "summary.json has no aggregate.slo")
    if not results:
        return _Measure([], "no thresholds", limit, None, "no SLO threshold was evaluated on the whole run")
    failed = [r for r in results if r.status == "fail"]
    no_data = [r for r in results if r.status not in ("pass", "fail")]
    parts = [_Part(False, f"{r.metric} {r.expr}: measured {'?' if r.value is None else _n(r.value, 4)}")
             for r in failed] + [_Part(None, f"{r.metric} {r.expr}: no data over the whole run") for r in no_data]
    passed = len(results) - len(failed) - len(no_data)
    value = {"pass": passed, "fail": len(failed), "no_data": len(no_data)}
    if not parts:
        return _Measure(value, f"{passed} threshold(s) pass", limit, True, f"all {passed} threshold(s) pass")
    m = _combine(parts, value, limit)
    return _Measure(value, f"{len(failed)} fail, {len(no_data)} no data, {passed} pass", limit, m.ok, m.reason)


_CHECKS: Mapping[str, Callable[[RunEvidence, Baseline | None], _Measure]] = MappingProxyType({
    "unowned_use": _unowned_use, "no_deadlock": _no_deadlock, "throughput_regression": _throughput_regression,
    "p95_budget": _p95_budget, "critical_failures": _critical_failures, "rollback_drill": _rollback_drill,
    "duration": _duration, "error_rate_last_quarter": _error_rate_last_quarter,
    "supervisor_memory": _supervisor_memory, "throughput_vs_legacy": _throughput_vs_legacy,
    "worker_restarts": _worker_restarts, "no_duplicates": _no_duplicates, "slo_budgets": _slo_budgets})
assert tuple(_CHECKS) == CRITERION_NAMES, "every criterion in engine.evidence.criteria needs exactly one check here"


def evaluate(evidence: RunEvidence, baseline: Baseline | None = None) -> Verdict:
    """Judge every criterion; waivers from the SLO file mark a criterion accepted, never skip measuring it."""
    out = []
    for name, check in _CHECKS.items():
        m = check(evidence, baseline)
        waiver = evidence.spec.waiver(name) if evidence.spec is not None else None
        out.append(CriterionResult(name, DESCRIPTIONS[name], m.value, m.measured, m.limit, m.ok, m.reason,
                                   waiver is not None, waiver.reason if waiver else None))
    return Verdict(evidence.figures.run_id, tuple(out), evidence.limits,
                   evidence.spec.source if evidence.spec is not None else None,
                   baseline.source if baseline is not None else None, time.time())


# -- writing -------------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory + ``os.replace``: a reader sees the old file or the new one, never half."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise ReadinessError(f"cannot write {path}: {exc.strerror}") from exc


def write_verdict(run_dir: str | os.PathLike[str], verdict: Verdict) -> dict[str, Any]:
    """Put the verdict into ``summary.json`` (every other key kept) and return what was written.

    The soak's own reasons move to ``soak_reasons``; when readiness already
    ran on this directory, the soak's reasons it kept then are kept again.
    """
    run_dir = Path(run_dir)
    raw = _read_summary(run_dir)
    previous = _dict(raw.get("verdict"))
    from_readiness = previous.get("kind") == "readiness"
    doc = verdict.to_dict()
    doc["soak_reasons"] = list(previous.get("soak_reasons" if from_readiness else "reasons") or [])
    doc["soak_go"] = previous.get("soak_go" if from_readiness else "go")
    raw["verdict"] = doc
    _write_atomic(run_dir / SUMMARY_FILE, json.dumps(raw, indent=2, ensure_ascii=False).encode("utf-8"))
    log.info("readiness verdict written", extra={"event": "readiness_verdict", "run_id": verdict.run_id,
                                                  "go": verdict.go, "reasons": verdict.reasons})
    return doc


def save_baseline(path: str | os.PathLike[str], baseline: Baseline) -> Path:
    p = Path(path)
    _write_atomic(p, json.dumps(baseline.to_dict(), indent=2).encode("utf-8") + b"\n")
    return p


__all__ = ["RunFigures", "RunEvidence", "Baseline", "CriterionResult", "Verdict", "ReadinessError",
           "ReadinessInputError", "load_run", "load_baseline", "baseline_of", "evaluate", "write_verdict",
           "save_baseline", "parse_figures", "BASELINE_KIND", "BASELINE_VERSION"]
