"""The evidence package of a soak or a run: the report (a self-contained HTML dashboard) and the drilldown.

A soak's run directory gets every section; a plain run's (``summary.json``
with ``"kind": "run"``) the ones that apply to one batch: KPIs, per-flow
and per-phase percentiles, the SLO verdict, the failure matrix and the
drilldown of its first failure.

Inputs, all in the run directory (:mod:`engine.records.rundir`); only the
summary is required: the summary (run, windows, aggregate, verdict), the
alerts, the failure matrix, the SLO copy, the drilldown (written here
when missing) and the four log streams (for the drilldown).

Why one self-contained HTML file with SVG drawn here: the report is read
on machines with no network and archived next to the run, so it may load
nothing (no scripts, fonts, images or styles from anywhere); plotting
libraries would be a dependency for a handful of polylines.

Why so defensive: the files come from a soak that may have been halted or
killed half way, from older or newer versions of the soak, and flow names
come from user files.  Every file is read once, leniently, into the run
directory's records (a number that is missing, not a number or not finite
is None and shown as "no data"), every string is HTML-escaped and cut to
a bounded length, and every list that grows with the run (windows,
alerts, points of a plot, drilldown records) is capped or downsampled,
so a 24-hour soak gives a report of bounded size.  A file that is missing
is shown as "not recorded"; a line that cannot be read is skipped and
named in the report's notes, never silently.

Layout: ``data`` reads the run directory into :class:`Evidence`;
``drilldown`` picks and traces one correlation chain; ``svg`` draws;
``fmt`` formats text; ``charts`` and ``tables`` are the page's sections;
``html`` puts them into the page skeleton (``page.html``, ``report.css``:
package files).
"""
from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ReportError, ReportInputError
from engine.evidence.report.data import MAX_POINTS_PER_CHART, Evidence, load_evidence, load_summary, log
from engine.evidence.report.drilldown import build_drilldown
from engine.evidence.report.html import render_html
from engine.evidence.report.svg import downsample
from engine.records import rundir


REPORT_FILE = rundir.REPORT
DRILLDOWN_FILE = rundir.DRILLDOWN


def build_evidence(run_dir: str | os.PathLike[str], *, rebuild_drilldown: bool = False) -> Path:
    """Write the report (and the drilldown when missing, or ``rebuild_drilldown``) into ``run_dir``; its path."""
    ev = load_evidence(run_dir, rebuild_drilldown=rebuild_drilldown)
    page = render_html(ev)
    try:
        path = rundir.write_report(ev.run_dir, page)
    except OSError as exc:
        raise ReportError(f"cannot write {ev.run_dir / rundir.REPORT}: {exc.strerror}") from exc
    log.info("evidence report written", extra={"event": "report_written", "path": str(path),
                                               "bytes": len(page.encode("utf-8")), "windows": len(ev.summary.windows),
                                               "kind": ev.kind})
    return path


__all__ = ["build_evidence", "load_evidence", "load_summary", "build_drilldown", "render_html", "downsample",
           "Evidence", "ReportError", "ReportInputError", "REPORT_FILE", "DRILLDOWN_FILE", "MAX_POINTS_PER_CHART"]
