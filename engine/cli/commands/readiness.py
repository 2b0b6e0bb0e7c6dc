"""Go / No-Go for a finished soak: every readiness criterion, its measured value, its limit and its result.

Reads the soak's run directory (its summary, failure matrix and SLO copy;
never a browser or the results store), writes the verdict into the
summary under ``verdict`` and rebuilds the report.  Waivers and limits
come from the SLO file (the soak's copy, or ``--slo``).

Exit codes: 0 go, 4 no-go, 2 invalid input (no such directory, no
summary, an unreadable baseline, SLO or ``--faults`` file, a baseline that
cannot be saved), 3 the verdict could not be written.  ``--faults FILE``
adds the ``faults_survived`` criterion, judged from a fault campaign's
report (``python -m bench faults --json``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from coordination.telemetry_context import stream_logger
from engine.cli.console import Console
from engine.errors import ConfigError
from engine.cli.exit_codes import EXIT_INPUT, EXIT_INTERNAL, EXIT_NO_GO, EXIT_OK
from engine.evidence.readiness import (ReadinessError, ReadinessInputError, Verdict, baseline_of, evaluate,
                                       load_baseline, load_faults, load_run, save_baseline, write_verdict)
from engine.evidence.report import ReportError, build_evidence
from engine.records import rundir

NAME = "readiness"
HELP = "Go / No-Go verdict of a finished soak, criterion by criterion"

log = stream_logger("operational", __name__)

_STATUS = {True: "pass", False: "FAIL", None: "not measured"}
MEASURED_WIDTH = 60  # the table cuts longer values; --json, the reasons and the report keep them whole


def _cut(text: str, width: int = MEASURED_WIDTH) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help=f"the soak's run directory (holds {rundir.SUMMARY})")
    p.add_argument("--baseline", metavar="FILE", default=None,
                   help=f"an earlier soak's run directory or {rundir.SUMMARY}, or a file from --save-baseline")
    p.add_argument("--slo", metavar="FILE", default=None,
                   help=f"SLO file with waivers and readiness limits (default: the soak's {rundir.SLO_COPY})")
    p.add_argument("--faults", metavar="FILE", action="append", default=None,
                   help="a fault campaign's report (python -m bench faults BATCH --json FILE); adds the "
                        "faults_survived criterion: 0 violations and >= 1 trial of each of worker, browser, "
                        "supervisor, sigterm (repeat it to add up campaigns)")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON instead of a table")
    p.add_argument("--save-baseline", metavar="FILE", default=None,
                   help="also save this run's throughput as a baseline for later runs (completed runs only)")


def render(verdict: Verdict) -> tuple[list[str], list[str]]:
    """(table lines, answer lines): the table is detail; the answer (verdict, accepted risks, reasons) prints
    even with ``--quiet``."""
    rows = [("criterion", "result", "measured", "limit")]
    for c in verdict.criteria:
        result = f"waived ({_STATUS[c.ok]})" if c.waived else _STATUS[c.ok]
        rows.append((c.name, result, _cut(c.measured), c.limit))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
    risks = verdict.accepted_risks
    met = sum(1 for c in verdict.criteria if c.ok is True)
    headline = (f"readiness {verdict.run_id}: {'GO' if verdict.go else 'NO-GO'} ({met} of {len(verdict.criteria)} "
                f"criteria met, {len(risks)} waived)")
    answer = [headline]
    if risks:  # part of the answer: a go with accepted risks must say so even with --quiet
        answer += ["Accepted risks:"]
        answer += [f"  - {r.criterion}: {r.reason} [{_STATUS[r.ok]}: {r.measured}]" for r in risks]
    if verdict.reasons:
        answer += ["Why no-go:"] + [f"  - {r}" for r in verdict.reasons]
    return table, answer


def run(args: argparse.Namespace, console: Console) -> int:
    run_dir = Path(args.run_dir)
    try:
        evidence = load_run(run_dir, args.slo)
        baseline = load_baseline(args.baseline) if args.baseline else None
        to_save = baseline_of(evidence) if args.save_baseline else None
        faults = load_faults(args.faults) if args.faults else None
    except (ReadinessInputError, ConfigError) as exc:
        console.error(str(exc))
        return EXIT_INPUT
    verdict = evaluate(evidence, baseline, faults)
    try:
        written = write_verdict(run_dir, verdict)
    except ReadinessError as exc:
        console.error(f"verdict not written: {exc}")
        return EXIT_INTERNAL
    try:
        report = build_evidence(run_dir)
    except ReportError as exc:  # the verdict stands; only its HTML view is stale
        log.warning("report not rebuilt", extra={"event": "report_failed", "error": str(exc)})
        console.warn(f"{rundir.REPORT} not rebuilt: {exc}")
        report = None
    if to_save is not None:
        try:
            saved = save_baseline(args.save_baseline, to_save)
        except ReadinessError as exc:
            console.error(f"baseline not saved: {exc}")
            return EXIT_INTERNAL
        if not args.json:  # stdout holds exactly one JSON document in --json mode
            console.line(f"baseline saved: {saved} ({to_save.throughput:.3f} jobs/s)")
    if args.json:
        console.result(json.dumps(written.to_json(), indent=2, ensure_ascii=False))
    else:
        table, answer = render(verdict)
        for line in table:
            console.line(line)
        console.line("")
        for line in answer:
            console.result(line)
        if report is not None:
            console.line(f"report: {report}")
    return EXIT_OK if verdict.go else EXIT_NO_GO


__all__ = ["NAME", "HELP", "add_arguments", "run", "render"]
