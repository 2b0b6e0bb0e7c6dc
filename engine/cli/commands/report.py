"""Rebuild a soak's evidence package from the files in its run directory.

Reads ``summary.json`` (required), ``alerts.jsonl``, ``failure_matrix.json``,
``slo.json`` and the four log streams; writes ``report.html`` (a
self-contained dashboard: open it in any browser, no network needed) and,
when the run has none, ``drilldown.json`` (one correlation chain across the
four streams).  Prints the report's path.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INPUT, EXIT_INTERNAL, EXIT_OK
from engine.evidence.report import ReportError, build_evidence

NAME = "report"
HELP = "rebuild the HTML evidence dashboard of a soak from its run directory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the soak's run directory (holds summary.json)")


def run(args: argparse.Namespace, console: Console) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        console.error(f"{run_dir}: no such directory")
        return EXIT_INPUT
    if not (run_dir / "summary.json").is_file():
        console.error(f"{run_dir}: no summary.json here; give the run directory of a soak "
                      "(it is written when the soak ends, or halts)")
        return EXIT_INPUT
    try:
        path = build_evidence(run_dir)
    except ReportError as exc:
        console.error(str(exc))
        return EXIT_INPUT if type(exc).category == "input" else EXIT_INTERNAL
    console.result(str(path))
    return EXIT_OK
