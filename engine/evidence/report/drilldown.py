"""The drilldown: one correlation chain across the four streams — a failed attempt from the matrix, else the first."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from engine.records import rundir
from engine.records.rundir import Drilldown, FailureRow
from engine.records.streams import read_stream, trace


MAX_DRILLDOWN_RECORDS = 5000  # kept in the drilldown file


_ATTEMPT_ID = re.compile(r"([^/]+/[^/]+/a\d+)(?:/.*)?")


def trace_hint(ident: str, run_id: str) -> str:
    """The command that expands ``ident``: a correlation id names its run in its first link, which ``trace`` reads."""
    if "/" in ident:
        return f"python -m engine trace {ident}"
    return f"python -m engine trace {ident} --run {run_id}"


def _attempts_in_streams(run_dir: Path) -> tuple[set[str], str | None]:
    """Every attempt id the streams recorded, and the first one, in one pass.

    The domain stream logs every attempt's start, so it alone is read when
    it exists; otherwise the other streams are.
    """
    seen: set[str] = set()
    first: str | None = None
    present = [s for s in ("domain", "performance", "operational", "audit") if rundir.stream_path(run_dir, s).is_file()]
    for stream in present[:1] if present[:1] == ["domain"] else present:
        for rec in read_stream(rundir.stream_path(run_dir, stream)):
            m = _ATTEMPT_ID.fullmatch(str(rec.get("correlation_id") or ""))
            if m:
                seen.add(m.group(1))
                first = first or m.group(1)
    return seen, first


def build_drilldown(run_dir: Path, failures: Sequence[FailureRow] | None, *,
                    first_failure: str | None = None) -> Drilldown | None:
    """One correlation chain across the four streams: a failed attempt from the matrix, else the first attempt.

    ``first_failure``: the run's first failed attempt (a plain run's summary names it), shown when the streams hold it.

    The failure rows are tried in the matrix's order (unresolved and most
    frequent first); an example is taken when the streams hold its attempt,
    so a row whose examples were never logged (or were rotated away) does
    not leave the report without a drilldown.  Then one :func:`trace`.
    """
    seen, first = _attempts_in_streams(run_dir)
    if first is None:
        return None
    chosen: tuple[str, str] | None = None
    if first_failure is not None and first_failure in seen:
        chosen = (first_failure, "the run's first failed attempt")
    for row in () if chosen else failures or ():
        for ex in row.examples:
            m = _ATTEMPT_ID.fullmatch(ex)
            if (m.group(1) if m else ex) in seen:
                count = row.count if row.count is not None else "?"
                chosen = (ex, f"failed attempt, category {row.category!r} ({count} failures in the matrix)")
                break
        if chosen:
            break
    if chosen is None:
        why = "no failure example in the streams" if any(r.examples for r in failures or ()) else "no failures"
        chosen = (first, f"first attempt recorded in the streams ({why})")
    records = trace(run_dir, chosen[0])
    if not records:
        return None
    return Drilldown(chosen[0], chosen[1], tuple(records[:MAX_DRILLDOWN_RECORDS]))


__all__ = ["build_drilldown", "trace_hint", "MAX_DRILLDOWN_RECORDS"]
