"""Rebuild the evidence report of a run or a soak from the files in its run directory.

Reads the run's summary (required: a run writes it when it ends, a soak
when it ends or halts), alerts, failure matrix, SLO copy and the four log
streams; writes the report (a self-contained dashboard: open it in any
browser, no network needed) and, when the run has none, the drilldown
(one correlation chain across the four streams).  A plain run's report
has the sections that apply to one batch (KPIs, per-flow and per-phase
percentiles, SLO verdict, failure matrix, drilldown of its first
failure).  Prints the report's path.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INPUT, EXIT_INTERNAL, EXIT_OK
from engine.evidence.report import ReportError, build_evidence
from engine.records import rundir

NAME = "report"
HELP = "rebuild the HTML evidence dashboard of a run or a soak from its run directory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help=f"the run's or soak's run directory (holds {rundir.SUMMARY})")


def run(args: argparse.Namespace, console: Console) -> int:
    """A directory without a readable summary is bad input (exit 2), named by the report's own error."""
    try:
        path = build_evidence(Path(args.run_dir))
    except ReportError as exc:
        console.error(str(exc))
        return EXIT_INPUT if type(exc).category == "input" else EXIT_INTERNAL
    console.result(str(path))
    return EXIT_OK
