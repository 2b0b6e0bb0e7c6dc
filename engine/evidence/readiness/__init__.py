"""Go / No-Go for a finished soak: every readiness criterion measured from the files of its run directory.

Why a step of its own after the soak: the soak's verdict covers what it
sees while running (a halt, an SLO breach, duplicates, unowned uses);
readiness judges the finished evidence against all the criteria of
:mod:`engine.evidence.criteria`, against a baseline from another run and with the
operator's waivers, and it can be re-run (new baseline, new waiver)
without re-running a 24-hour soak.  It reads files only — the run
directory's summary, failure matrix and SLO copy (:mod:`engine.records.rundir`)
— never a browser or the store.

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
* The verdict (:class:`engine.records.rundir.Verdict`, kind
  ``readiness``) goes into the summary under ``verdict`` (atomic replace,
  every other key kept); the soak's own reasons are kept there as
  ``soak_reasons``.

Layout: ``_inputs`` reads the run directory and baselines into
:class:`RunEvidence` / :class:`Baseline` (and a fault campaign's report
into :class:`FaultEvidence`); ``_checks`` holds the thirteen criteria and
the optional ``faults_survived``; this module judges them
(:func:`evaluate`) and writes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from coordination.telemetry_context import stream_logger
from engine.errors import ReadinessError, ReadinessInputError
from engine.evidence.criteria import DESCRIPTIONS
from engine.evidence.readiness._checks import CHECKS, FAULTS_DESCRIPTION, FAULTS_SURVIVED, faults_survived
from engine.evidence.readiness._inputs import (BASELINE_KIND, BASELINE_VERSION, Baseline, FaultEvidence,
                                               RunEvidence, RunFigures, baseline_of, figures_of, load_baseline,
                                               load_faults, load_run)
from engine.records import rundir
from engine.records.rundir import AcceptedRisk, CriterionRow, Verdict

log = stream_logger("operational", __name__)


def evaluate(evidence: RunEvidence, baseline: Baseline | None = None, faults: FaultEvidence | None = None) -> Verdict:
    """Judge every criterion; waivers from the SLO file mark a criterion accepted, never skip measuring it.

    Go = every criterion met or waived; the reasons name the criteria that
    stand in the way, in plain words with their figures.  With ``faults``
    (the fault campaign's report) the ``faults_survived`` criterion is
    judged too, last; it cannot be waived (a report handed in that says a
    fault broke an invariant is a no-go).
    """
    rows = []
    for name, check in CHECKS.items():
        m = check(evidence, baseline)
        waiver = evidence.spec.waiver(name) if evidence.spec is not None else None
        rows.append(CriterionRow(name, DESCRIPTIONS[name], m.value, m.measured, m.limit, m.ok, m.reason,
                                 waiver is not None, waiver.reason if waiver else None))
    if faults is not None:
        m = faults_survived(faults)
        rows.append(CriterionRow(FAULTS_SURVIVED, FAULTS_DESCRIPTION, m.value, m.measured, m.limit, m.ok, m.reason))
    limits = dataclasses.asdict(evidence.limits)
    limits["critical_categories"] = list(evidence.limits.critical_categories)
    return Verdict(
        go=all(c.met for c in rows),
        reasons=tuple(f"{c.name}: {c.reason}" if c.ok is False else f"{c.name}: not measured ({c.reason})"
                      for c in rows if not c.met),
        kind="readiness", run_id=evidence.figures.run_id, evaluated_at=time.time(), criteria=tuple(rows),
        accepted_risks=tuple(AcceptedRisk(c.name, c.waiver_reason, c.measured, c.value, c.ok)
                             for c in rows if c.waived),
        limits=limits, slo=evidence.spec.source if evidence.spec is not None else None,
        baseline=baseline.source if baseline is not None else None)


def write_verdict(run_dir: str | os.PathLike[str], verdict: Verdict) -> Verdict:
    """Put the verdict into the run's summary (every other key kept) and return what was written.

    The soak's own reasons move to ``soak_reasons``; when readiness already
    ran on this directory, the soak's reasons it kept then are kept again.
    """
    def with_the_soaks_own(previous: Verdict | None) -> Verdict:
        if previous is not None and previous.kind == "readiness":
            return dataclasses.replace(verdict, soak_reasons=previous.soak_reasons, soak_go=previous.soak_go)
        return dataclasses.replace(verdict, soak_reasons=previous.reasons if previous else (),
                                   soak_go=previous.go if previous else None)

    try:
        written = rundir.replace_verdict(run_dir, with_the_soaks_own)
    except rundir.RunDirError as exc:
        raise ReadinessInputError(str(exc)) from exc
    except OSError as exc:
        raise ReadinessError(f"cannot write {Path(run_dir) / rundir.SUMMARY}: {exc.strerror}") from exc
    log.info("readiness verdict written", extra={"event": "readiness_verdict", "run_id": verdict.run_id,
                                                 "go": verdict.go, "reasons": list(verdict.reasons)})
    return written


def save_baseline(path: str | os.PathLike[str], baseline: Baseline) -> Path:
    p = Path(path)
    try:
        return rundir.write_atomic(p, json.dumps(baseline.to_dict(), indent=2).encode("utf-8") + b"\n")
    except OSError as exc:
        raise ReadinessError(f"cannot write {p}: {exc.strerror}") from exc


__all__ = ["RunFigures", "RunEvidence", "Baseline", "FaultEvidence", "CriterionRow", "Verdict", "ReadinessError",
           "ReadinessInputError", "load_run", "load_baseline", "load_faults", "FAULTS_SURVIVED", "baseline_of",
           "evaluate", "write_verdict", "save_baseline", "figures_of", "BASELINE_KIND", "BASELINE_VERSION"]
