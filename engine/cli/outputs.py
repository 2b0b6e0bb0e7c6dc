"""The evidence and CI options of ``run`` (and ``--metrics`` of ``soak``): parsed and checked before anything
runs, written when the run is over, and the exit code they imply.

``--slo FILE`` (the soak's k6-style grammar, :mod:`engine.evidence.slo`)
judges the whole run: a threshold that fails or has no data is named on
stderr and the run exits 4 (k6 exits 99 for the same).  ``--junit FILE``,
``--metrics FILE`` and ``--summary-export FILE`` are written at the end of
the run, interrupted or not.  A bad SLO file or an output path whose
directory does not exist is bad input (exit 2) before any job runs.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INTERNAL, EXIT_NO_GO
from engine.evidence.outputs import check_writable
from engine.evidence.outputs.junit import write_junit
from engine.evidence.outputs.k6 import write_summary_export
from engine.evidence.outputs.metrics import run_figures, write_metrics
from engine.evidence.run import RunEvidence, breach_text, write_run_evidence
from engine.evidence.slo import SLOSpec, load_slo
from engine.execution.runs import PreparedRun
from engine.execution.summary import RunSummary


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slo", metavar="FILE", default=None,
                   help="SLO thresholds (JSON or TOML, k6 grammar: \"p(95) < 800\"); a breach exits 4")
    p.add_argument("--junit", metavar="FILE", default=None, help="write JUnit XML: one testcase per job")
    p.add_argument("--summary-export", metavar="FILE", default=None,
                   help="write the run's figures as JSON in the shape of k6's --summary-export")
    add_metrics_argument(p)


def add_metrics_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", metavar="FILE", default=None,
                   help="write Prometheus text (OpenMetrics for *.om) for a textfile collector or a Pushgateway")


@dataclass(frozen=True, slots=True)
class Outputs:
    slo: SLOSpec | None = None
    junit: str | None = None
    metrics: str | None = None
    summary_export: str | None = None


def outputs_of(args: argparse.Namespace) -> Outputs:
    """The options, checked: :class:`~engine.errors.ConfigError` (exit 2) for a bad SLO file or output path."""
    out = Outputs(load_slo(args.slo) if getattr(args, "slo", None) else None, getattr(args, "junit", None),
                  getattr(args, "metrics", None), getattr(args, "summary_export", None))
    for option, path in (("--junit", out.junit), ("--metrics", out.metrics),
                         ("--summary-export", out.summary_export)):
        if path:
            check_writable(path, option)
    return out


class EvidenceWriter:
    """``execute``'s evidence hook: writes the run directory's evidence and keeps it for :func:`finish`."""

    def __init__(self, outputs: Outputs, backend: str) -> None:
        self.outputs = outputs
        self.backend = backend
        self.evidence: RunEvidence | None = None

    def __call__(self, prepared: PreparedRun, summary: RunSummary) -> Any:
        self.evidence = write_run_evidence(prepared.store_path, prepared.run_id, prepared.run_dir, prepared.batch,
                                           summary, backend=self.backend, spec=self.outputs.slo,
                                           resumed=prepared.resumed)
        return self.evidence


def finish(outputs: Outputs, ev: RunEvidence, console: Console) -> int | None:
    """Write the requested files and name every SLO breach; the exit code they call for (None: none)."""
    if ev.report is not None:
        console.line(f"report: {ev.report}")
    elif ev.report_error:
        console.warn(f"report not written: {ev.report_error}")
    failed = False
    for option, path, write in (("--junit", outputs.junit, lambda p: write_junit(p, ev)),
                                ("--metrics", outputs.metrics, lambda p: write_metrics(p, run_figures(ev))),
                                ("--summary-export", outputs.summary_export, lambda p: write_summary_export(p, ev))):
        if not path:
            continue
        try:
            write(path)
        except OSError as exc:
            console.error(f"{option} {path}: cannot write: {exc.strerror}")
            failed = True
            continue
        console.line(f"{option.lstrip('-')}: {path}")
    for breach in ev.breaches:
        console.error(f"SLO breached: {breach_text(breach)}")
    if failed:
        return EXIT_INTERNAL
    if ev.slo_go is False:
        return EXIT_NO_GO
    return None


__all__ = ["add_output_arguments", "add_metrics_argument", "Outputs", "outputs_of", "EvidenceWriter", "finish"]
