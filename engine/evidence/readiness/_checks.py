"""The readiness criteria, one check each: what is measured, against which limit, and why it passes or not.

Each check takes the run's evidence (and the baseline, for the one that
compares) and returns a :class:`Measure`: ``ok`` True (met), False
(failed) or None (not measured: the figure is missing), with the
measured value in words and numbers.  A check never reads a file; the
figures come from :mod:`._inputs`.

``faults_survived`` is not in :data:`CHECKS` (the criteria every soak is
judged on): it is judged only when the operator hands in a fault
campaign's report (``readiness --faults FILE``), so a soak judged without
one keeps its thirteen criteria and its verdict.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from engine.evidence.criteria import CATEGORIES, CRITERION_NAMES
from engine.evidence.readiness._inputs import Baseline, FaultEvidence, RunEvidence, RunFigures
from engine.evidence.slo import metric_kind
from engine.records import rundir


@dataclass(frozen=True, slots=True)
class _Part:
    """One figure of a criterion: met, failed, or missing, with the words that say which."""

    ok: bool | None
    text: str


@dataclass(frozen=True, slots=True)
class Measure:
    value: Any
    measured: str
    limit: str
    ok: bool | None
    reason: str


def _combine(parts: list[_Part], value: Any, limit: str) -> Measure:
    """Failed if any part failed, else not measured if any is missing, else met; the reason leads with the worst."""
    failed = [p.text for p in parts if p.ok is False]
    missing = [p.text for p in parts if p.ok is None]
    ok = False if failed else (None if missing else True)
    measured = ", ".join(p.text for p in parts)
    return Measure(value, measured, limit, ok, "; ".join(failed + missing) if ok is not True else measured)


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


def _unowned_use(ev: RunEvidence, _: Baseline | None) -> Measure:
    f = ev.figures
    return _combine([_at_most(f.unowned_uses, "aggregate.unowned_uses", 0, "unowned session use(s)"),
                     _at_most(f.invalid_transitions, "aggregate.invalid_transitions", 0, "invalid transition(s)")],
                    {"unowned_uses": f.unowned_uses, "invalid_transitions": f.invalid_transitions}, "0 and 0")


def _no_deadlock(ev: RunEvidence, _: Baseline | None) -> Measure:
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


def _throughput_regression(ev: RunEvidence, base: Baseline | None) -> Measure:
    max_reg = ev.limits.max_regression
    limit = f"at most {_pct(max_reg)} slower than the baseline"
    now, field_name = ev.figures.reference_throughput()
    shown = f"{now:.3f} jobs/s" if now is not None else f"{field_name} not recorded"
    if base is None:
        return Measure({"throughput": now}, shown, limit, None, "no --baseline given to compare with")
    if now is None:
        return Measure({"throughput": None}, shown, limit, None, f"this run's {field_name} not recorded")
    if base.throughput is None or base.throughput <= 0:
        return Measure({"throughput": now}, shown, limit, None, f"the baseline {base.source} has no throughput")
    change = now / base.throughput - 1
    value = {"throughput": now, "baseline": base.throughput, "change": round(change, 4),
             "baseline_run": base.run_id}
    measured = f"{change * 100:+.1f}%: {now:.3f} vs {base.throughput:.3f} jobs/s"
    issues = _comparability(ev.figures, base)
    if issues:
        return Measure(value | {"comparable": False}, measured, limit, None,
                       f"NOT COMPARABLE with baseline {base.run_id or base.source}: {'; '.join(issues)}; "
                       f"measured {measured}")
    ok = now >= (1 - max_reg) * base.throughput
    reason = (f"{measured} vs baseline {base.run_id or base.source}" if ok else
              f"{_pct(-change)} slower than baseline {base.run_id or base.source} ({now:.3f} vs "
              f"{base.throughput:.3f} jobs/s), more than {_pct(max_reg)}")
    return Measure(value | {"comparable": True}, measured, limit, ok, reason)


def _p95_budget(ev: RunEvidence, _: Baseline | None) -> Measure:
    limit = "every p(95) threshold on a flow:/phase: metric holds"
    if ev.spec is None:
        return Measure(None, "no SLO file", limit, None,
                       f"no SLO file ({rundir.SLO_COPY} in the run directory or --slo)")
    wanted = [t for t in ev.spec.thresholds if metric_kind(t.metric) == "latency"
              and t.expression.aggregate == "p" and t.expression.percentile == 95.0]
    if not wanted:
        return Measure(None, "no p(95) threshold", limit, None,
                       f"{ev.spec.source} has no p(95) threshold on a flow: or phase: metric")
    if ev.figures.latency is None:
        return Measure(None, "no aggregate", limit, None, f"{rundir.SUMMARY} has no aggregate (whole-run) window")
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
    return Measure(round(ratio, 4), f"worst {metric} at {ratio:.2f} of its budget ({len(wanted)} threshold(s))",
                   limit, m.ok, m.reason)


def _critical_failures(ev: RunEvidence, _: Baseline | None) -> Measure:
    critical = ev.limits.critical_categories
    limit = "no unresolved job in " + ("any category" if set(critical) == set(CATEGORIES) else ", ".join(critical))
    if ev.matrix is None:
        return Measure(None, "no failure matrix", limit, None, ev.matrix_note)
    bad = {r.category: r.unresolved_jobs for r in ev.matrix if r.category in critical and r.resolved is False}
    # engine.evidence.failures lists every category, even at zero: a missing row is a matrix that cannot show it
    absent = [c for c in critical if c not in {r.category for r in ev.matrix}]
    if not bad and absent:
        return Measure(None, "rows missing", limit, None, f"{rundir.FAILURE_MATRIX} has no row for {', '.join(absent)}")
    if not bad:
        return Measure({}, "none unresolved", limit, True, "every critical failure category resolved or empty")
    shown = ", ".join(f"{c}: {'?' if n is None else n} job(s) unresolved" for c, n in bad.items())
    return Measure(bad, shown, limit, False, shown)


def _rollback_drill(ev: RunEvidence, _: Baseline | None) -> Measure:
    f, limit = ev.figures, "passed, 0 lost"
    if not f.drill_recorded:
        return Measure(None, "not recorded", limit, None, f"{rundir.SUMMARY} has no rollback_drill")
    d = f.drill
    if d is None:
        return Measure(None, "no drill", limit, None, "no rollback drill was run in this soak")
    value = {"passed": d.passed, "lost": d.lost, "duplicates": d.duplicates, "jobs_legacy": d.jobs_legacy}
    measured = (f"{'passed' if d.passed else 'failed' if d.passed is False else 'passed not recorded'}, "
                f"{'?' if d.jobs_legacy is None else d.jobs_legacy} legacy job(s), "
                f"{'?' if d.lost is None else d.lost} lost")
    if d.passed is None:
        return Measure(value, measured, limit, None, "rollback_drill.passed not recorded")
    if d.passed is False or (d.lost or 0) > 0:
        return Measure(value, measured, limit, False, f"drill {measured}" + (f": {d.error}" if d.error else ""))
    return Measure(value, measured, limit, True, measured)


def _duration(ev: RunEvidence, _: Baseline | None) -> Measure:
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


def _error_rate_last_quarter(ev: RunEvidence, _: Baseline | None) -> Measure:
    f, lim = ev.figures, ev.limits.max_last_quarter_error_rate
    limit = f"< {_pct(lim)}"
    if not f.last_quarter_recorded:
        return Measure(None, "not recorded", limit, None, f"{rundir.SUMMARY} has no last_quarter")
    rate = f.last_quarter_error_rate
    if rate is None:
        why = ("no job ended in the last quarter of the run" if f.last_quarter_jobs == 0
               else "last_quarter.error_rate not recorded")
        return Measure(None, "no rate", limit, None, why)
    jobs = f" of {f.last_quarter_jobs} job(s)" if f.last_quarter_jobs is not None else ""
    measured = f"{_pct(rate)}{jobs}"
    ok = rate < lim
    return Measure(rate, measured, limit, ok, measured if ok else f"{_pct(rate)}{jobs} >= {_pct(lim)}")


def _supervisor_memory(ev: RunEvidence, _: Baseline | None) -> Measure:
    f, lim = ev.figures, ev.limits.max_memory_growth_mb
    limit = f"< {_n(lim)} MB growth"
    if f.memory_growth_mb is None:
        return Measure(None, "not recorded", limit, None, "supervisor_memory.growth_mb not recorded")
    g = f.memory_growth_mb
    span = (f" ({f.memory_first_mb:.0f} -> peak {f.memory_max_mb:.0f} MB)"
            if f.memory_first_mb is not None and f.memory_max_mb is not None else "")
    measured = f"{g:+.1f} MB{span}"
    return Measure(g, measured, limit, g < lim, measured if g < lim else f"grew {g:.1f} MB >= {_n(lim)} MB{span}")


def _throughput_vs_legacy(ev: RunEvidence, _: Baseline | None) -> Measure:
    f, lim = ev.figures, ev.limits.min_legacy_ratio
    limit = f">= {_n(lim)}x the legacy path"
    if f.throughput_parallel is None:
        return Measure(None, "not recorded", limit, None, "throughput.parallel not recorded")
    if f.throughput_legacy is None or f.throughput_legacy <= 0:
        return Measure(None, "no legacy figure", limit, None,
                       "throughput.legacy not measured (it comes from the rollback drill)")
    ratio = f.throughput_parallel / f.throughput_legacy
    measured = f"{ratio:.2f}x ({f.throughput_parallel:.3f} vs {f.throughput_legacy:.3f} jobs/s)"
    ok = ratio >= lim
    return Measure(round(ratio, 4), measured, limit, ok, measured if ok else f"{ratio:.2f}x < {_n(lim)}x "
                   f"({f.throughput_parallel:.3f} vs legacy {f.throughput_legacy:.3f} jobs/s)")


def _worker_restarts(ev: RunEvidence, _: Baseline | None) -> Measure:
    lim = ev.limits.max_worker_restarts
    part = _at_most(ev.figures.worker_restarts, "aggregate.worker_restarts", lim, "worker restart(s)")
    m = _combine([part], ev.figures.worker_restarts, f"<= {lim}")
    return m if m.ok is not False else Measure(m.value, m.measured, m.limit, False, f"{m.reason} > {lim}")


def _no_duplicates(ev: RunEvidence, _: Baseline | None) -> Measure:
    f = ev.figures
    parts = [_at_most(f.duplicates, "aggregate.duplicates", 0, "duplicate outcome(s)")]
    value: dict[str, Any] = {"soak": f.duplicates}
    if f.drill is not None:
        parts.append(_at_most(f.drill.duplicates, "rollback_drill.duplicates", 0, "duplicate(s) in the drill"))
        value["rollback_drill"] = f.drill.duplicates
    return _combine(parts, value, "0")


def _slo_budgets(ev: RunEvidence, _: Baseline | None) -> Measure:
    results, limit = ev.figures.slo_results, "every whole-run SLO threshold passes"
    if results is None:
        return Measure(None, "not recorded", limit, None, f"{rundir.SUMMARY} has no aggregate.slo")
    if not results:
        return Measure([], "no thresholds", limit, None, "no SLO threshold was evaluated on the whole run")
    failed = [r for r in results if r.status == "fail"]
    no_data = [r for r in results if r.status not in ("pass", "fail")]
    parts = [_Part(False, f"{r.metric} {r.expr}: measured {'?' if r.value is None else _n(r.value, 4)}")
             for r in failed] + [_Part(None, f"{r.metric} {r.expr}: no data over the whole run") for r in no_data]
    passed = len(results) - len(failed) - len(no_data)
    value = {"pass": passed, "fail": len(failed), "no_data": len(no_data)}
    if not parts:
        return Measure(value, f"{passed} threshold(s) pass", limit, True, f"all {passed} threshold(s) pass")
    m = _combine(parts, value, limit)
    return Measure(value, f"{len(failed)} fail, {len(no_data)} no data, {passed} pass", limit, m.ok, m.reason)


# -- the optional criterion: judged only when readiness is given a fault campaign's report (--faults FILE) --------

FAULTS_SURVIVED = "faults_survived"
FAULTS_DESCRIPTION = ("the fault campaign (python -m bench faults) broke no invariant, with at least one injected "
                      "trial of each kind: worker, browser, supervisor kill -9 and SIGTERM")
REQUIRED_FAULT_KINDS: tuple[str, ...] = rundir.FAULT_KINDS


def faults_survived(faults: FaultEvidence) -> Measure:
    """Met when the reports hold 0 violations and every required kind had >= 1 trial whose fault went in."""
    parts = [_Part(not faults.violations, f"{len(faults.violations)} violation(s)"
                   + (": " + "; ".join(faults.violations[:5]) + (" ..." if len(faults.violations) > 5 else "")
                      if faults.violations else ""))]
    for kind in REQUIRED_FAULT_KINDS:
        ran, went_in = faults.trials.get(kind, 0), faults.injected.get(kind, 0)
        missed = f" ({ran - went_in} missed)" if ran > went_in else ""
        parts.append(_Part(went_in >= 1, f"{kind} {went_in} trial(s){missed}" if went_in else f"no {kind} trial"
                           + (f" with its fault injected{missed}" if ran else "")))
    value = {"violations": len(faults.violations), "trials": dict(faults.trials), "injected": dict(faults.injected),
             "files": list(faults.sources)}
    return _combine(parts, value, "0 violations; >= 1 trial of each of " + ", ".join(REQUIRED_FAULT_KINDS))


CHECKS: Mapping[str, Callable[[RunEvidence, Baseline | None], Measure]] = MappingProxyType({
    "unowned_use": _unowned_use, "no_deadlock": _no_deadlock, "throughput_regression": _throughput_regression,
    "p95_budget": _p95_budget, "critical_failures": _critical_failures, "rollback_drill": _rollback_drill,
    "duration": _duration, "error_rate_last_quarter": _error_rate_last_quarter,
    "supervisor_memory": _supervisor_memory, "throughput_vs_legacy": _throughput_vs_legacy,
    "worker_restarts": _worker_restarts, "no_duplicates": _no_duplicates, "slo_budgets": _slo_budgets})
assert tuple(CHECKS) == CRITERION_NAMES, "every criterion in engine.evidence.criteria needs exactly one check here"


__all__ = ["Measure", "CHECKS", "FAULTS_SURVIVED", "FAULTS_DESCRIPTION", "REQUIRED_FAULT_KINDS", "faults_survived"]
