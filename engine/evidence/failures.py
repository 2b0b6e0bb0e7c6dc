"""The failure matrix of a run: per category, how often, when, why, what contained it, whether it healed.

Why from the store *and* the streams: the results store knows every
attempt that failed (``failed``, ``retry``, ``lost``) with its category;
only the log streams know what happened next in that attempt's
correlation chain — a reconnect or a browser restart, the supervisor
replacing a dead worker and re-queuing its job, a slot quarantined.  The
matrix joins the two so an operator reads, per category::

    category  count  first/last seen  examples (RUN/JOB/aN)  root cause  containment  resolved

Every example is a correlation id that ``python -m engine trace ID``
expands across the four streams.  All seven categories are always listed
(a zero row says "none of these", which is information too).

Rules, so the numbers are reproducible:

* A failure is an attempt ending ``failed``, ``retry`` or ``lost`` (a
  lost attempt's worker died: category ``cdp`` unless it recorded one; an
  attempt without a category is ``navigation``, as the executor treats
  it), plus every refused duplicate outcome (``persistence``), every
  legacy fallback (``input``) and every unreadable stream record
  (``telemetry``).  ``interrupted`` is a drain,
  not a failure.
* Root cause: the most frequent error message after normalisation —
  numbers, pids, ports, URLs, paths and hex ids stripped, so one cause
  shows up once — and, apart, the error class when the message
  (``ClassName: ...``) or the record (``error_class``) names one.
* Containment of one failure: ``retry`` (a later attempt of the same
  job), ``reconnect`` / ``browser restart`` (reconnect events in that
  attempt's chain), ``worker restart`` (``worker_died`` for the job and
  then ``job_requeued``), ``quarantine`` (a slot quarantined in the chain
  or by that worker during the attempt), ``duplicate refused``; ``none``
  when nothing followed.  A ``fallback`` event (the recorder flow did not
  load, the job's legacy fallback ran instead) is an ``input`` failure
  whose containment is ``fallback``.
* ``resolved``: every job with a failure in the category eventually
  passed (None when the category has no job-linked failure).
"""
from __future__ import annotations

import collections
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from coordination.errors import CATEGORIES
from coordination.telemetry_context import STREAMS
from engine.errors import ResultsStoreError
from engine.records.rundir import FailureRow, stream_path
from engine.records.store import AttemptRecord, DuplicateOutcome, ResultsStore
from engine.records.streams import read_stream
from navigation.errors import FlowError

FAILED_OUTCOMES = ("failed", "retry", "lost")
CONTAINMENTS = ("retry", "reconnect", "browser restart", "worker restart", "quarantine", "fallback",
                "duplicate refused", "none")
MAX_EXAMPLES = 3
_SLACK_S = 1.0  # clock slack when matching events to an attempt's interval

_ARTIFACTS = re.compile(r"\s*\[artifacts: [^\]]*\]\s*$")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>)\]]+")
_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+-]+/)*[\w.@+-]+")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SPACES = re.compile(r"\s+")
_CLASS_PREFIX = re.compile(r"^\s*([A-Z][A-Za-z0-9_]*(?:Error|Exception|Timeout|Lost|Closed|Unavailable|NotFound"
                           r"|Failed|Outcome|Use|Full|InUse))\s*:\s*")
_QUARANTINE_MESSAGES = ("slot quarantined", "torn slot quarantined")


def normalise_error(message: str | None) -> str:
    """The message with everything that varies between identical causes replaced by placeholders."""
    if not message:
        return "(no message)"
    text = _ARTIFACTS.sub("", message)
    text = _URL.sub("<url>", text)
    text = _PATH.sub("<path>", text)
    text = _HEX.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip()


def _cause(message: str | None, record: dict[str, Any] | None = None) -> tuple[str, str | None]:
    """(normalised message without a leading ``ClassName:``, the class) of one failure."""
    cls = error_class(message, record)
    m = _CLASS_PREFIX.match(message or "")
    return normalise_error(message[m.end():] if m and message else message), cls


def error_class(message: str | None, record: dict[str, Any] | None = None) -> str | None:
    """The error class a record or message names (``error_class`` field or a ``ClassName: ...`` prefix)."""
    for key in ("error_class", "error_type", "exc_type"):
        if record and isinstance(record.get(key), str) and record[key]:
            return record[key]
    m = _CLASS_PREFIX.match(message or "")
    return m.group(1) if m else None


@dataclass(frozen=True, slots=True)
class _Failure:
    category: str
    ts: float | None
    correlation_id: str
    job_id: str | None
    cause: str
    error_class: str | None
    containment: tuple[str, ...]


@dataclass(slots=True)
class _Events:
    """The few stream records the matrix needs, indexed (everything else in the streams is skipped)."""

    by_chain: dict[str, list[dict[str, Any]]]  # attempt chain RUN/JOB/aN -> its reconnect/restart records
    died: dict[str, list[dict[str, Any]]]
    requeued: dict[str, list[float]]
    quarantined: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]
    fallbacks: list[dict[str, Any]]
    unreadable: list[dict[str, Any]]


def _stream_records(run_dir: Path) -> Iterator[dict[str, Any]]:
    for stream in STREAMS:
        path = stream_path(run_dir, stream)
        if path.exists():
            yield from read_stream(path)


def _collect_events(run_dir: Path, run_id: str) -> _Events:
    ev = _Events(collections.defaultdict(list), collections.defaultdict(list), collections.defaultdict(list),
                 [], [], [], [])
    for rec in _stream_records(run_dir):
        if rec.get("run_id") not in (run_id, None):
            continue
        event = rec.get("event")
        message = rec.get("message")
        if event is None and isinstance(message, str) and message.startswith("unreadable record at "):
            ev.unreadable.append(rec)
        elif event in ("reconnect", "restart"):
            cid = rec.get("correlation_id")
            if isinstance(cid, str):
                ev.by_chain["/".join(cid.split("/")[:3])].append(rec)  # indexed by RUN/JOB/aN
        elif event == "worker_died" and rec.get("job_id"):
            ev.died[str(rec["job_id"])].append(rec)
        elif event == "job_requeued" and rec.get("job_id"):
            ev.requeued[str(rec["job_id"])].append(float(rec.get("ts") or 0.0))
        elif event == "slot_quarantined" or (event is None and message in _QUARANTINE_MESSAGES):
            ev.quarantined.append(rec)
        elif event == "duplicate_outcome":
            ev.duplicates.append(rec)
        elif event == "fallback":
            ev.fallbacks.append(rec)
    return ev


def _in_chain(cid: str, chain: str) -> bool:
    return cid == chain or cid.startswith(chain + "/")


def _containment(a: AttemptRecord, chain: str, later_attempt: bool, ev: _Events) -> tuple[str, ...]:
    found: list[str] = []
    if later_attempt:
        found.append("retry")
    for rec in ev.by_chain.get(chain, []):
        if _in_chain(str(rec["correlation_id"]), chain):
            found.append("browser restart" if rec["event"] == "restart" or rec.get("action") == "restart"
                         else "reconnect")
    end = (a.ended_at if a.ended_at is not None else float("inf")) + _SLACK_S
    if a.outcome == "lost":
        for died in ev.died.get(a.job_id, []):
            died_ts = float(died.get("ts") or 0.0)
            if a.started_at - _SLACK_S <= died_ts <= end and any(
                    t >= died_ts for t in ev.requeued.get(a.job_id, [])):
                found.append("worker restart")
                break
    for rec in ev.quarantined:
        cid = str(rec.get("correlation_id") or "")
        ts = float(rec.get("ts") or 0.0)
        # by chain; a record bound to no attempt by the same worker strictly inside the attempt (workers run
        # attempts back to back, so any slack here would pin one attempt's quarantine on its neighbour)
        in_no_attempt = cid.count("/") < 2
        if _in_chain(cid, chain) or (in_no_attempt and rec.get("worker") == a.worker
                                     and a.started_at <= ts <= (a.ended_at if a.ended_at is not None else ts)):
            found.append("quarantine")
            break
    return tuple(dict.fromkeys(found)) or ("none",)


def _attempt_failures(run_id: str, attempts: list[AttemptRecord], ev: _Events) -> Iterator[_Failure]:
    last_attempt: dict[str, int] = {}
    for a in attempts:
        last_attempt[a.job_id] = max(last_attempt.get(a.job_id, 0), a.attempt)
    for a in attempts:
        if a.outcome not in FAILED_OUTCOMES:
            continue
        category = a.category or ("cdp" if a.outcome == "lost" else "navigation")
        chain = f"{run_id}/{a.job_id}/a{a.attempt}"
        yield _Failure(category, a.ended_at if a.ended_at is not None else a.started_at, chain, a.job_id,
                       *_cause(a.error), _containment(a, chain, last_attempt[a.job_id] > a.attempt, ev))


def _event_failures(run_id: str, ev: _Events) -> Iterator[_Failure]:
    for rec in ev.duplicates:
        cause, cls = _cause(rec.get("error") or rec.get("message"), rec)
        yield _Failure(DuplicateOutcome.category, float(rec.get("ts") or 0.0) or None,
                       str(rec.get("correlation_id") or run_id), rec.get("job_id"), cause,
                       cls or DuplicateOutcome.__name__, ("duplicate refused",))
    for rec in ev.fallbacks:
        # the job's recorder flow did not load (bad input); its legacy fallback ran instead
        cause, cls = _cause(str(rec.get("reason") or "recorder flow not loaded"), rec)
        yield _Failure(FlowError.category, float(rec.get("ts") or 0.0) or None,
                       str(rec.get("correlation_id") or run_id), rec.get("job_id"), cause, cls, ("fallback",))
    for rec in ev.unreadable:
        # "unreadable record at PATH:LINE": the position is the example, the stream the cause
        yield _Failure("telemetry", None, str(rec.get("message", "")).rsplit(" ", 1)[-1], None,
                       f"unreadable record in the {rec.get('stream')} stream", None, ("none",))


def _row(category: str, failures: list[_Failure], final: dict[str, str]) -> FailureRow:
    if not failures:
        return FailureRow(category, 0, 0, None, None, (), None, None, (), None, 0)
    seen = [f.ts for f in failures if f.ts]
    causes = collections.Counter(f.cause for f in failures)
    cause = causes.most_common(1)[0][0]
    classes = collections.Counter(f.error_class for f in failures if f.cause == cause and f.error_class)
    first_of: dict[str, str] = {}
    for f in failures:
        first_of.setdefault(f.cause, f.correlation_id)
    # one example per distinct cause (most frequent first), then the earliest others
    examples = list(dict.fromkeys([*(first_of[c] for c, _ in causes.most_common()),
                                   *(f.correlation_id for f in failures)]))
    containment = collections.Counter(label for f in failures for label in f.containment)
    jobs = {f.job_id for f in failures if f.job_id}
    unresolved = [j for j in jobs if final.get(j) != "passed"]
    return FailureRow(category, len(failures), len(jobs), min(seen) if seen else None, max(seen) if seen else None,
                      tuple(examples[:MAX_EXAMPLES]), cause, classes.most_common(1)[0][0] if classes else None,
                      tuple(sorted(containment.items(), key=lambda kv: (-kv[1], CONTAINMENTS.index(kv[0])))),
                      (not unresolved) if jobs else None, len(unresolved))


def build_failure_matrix(store_path: str | os.PathLike[str], run_id: str,
                         run_dir: str | os.PathLike[str]) -> list[FailureRow]:
    """One row per category (the seven always, in :data:`CATEGORIES` order; any other category after them)."""
    if not os.path.exists(store_path):
        raise ResultsStoreError(f"no results store at {store_path}")
    with ResultsStore(store_path) as store:
        store.run(run_id)  # an unknown run is an error, not an empty matrix
        attempts = store.attempts(run_id)
        final = {o.job_id: o.outcome for o in store.outcomes(run_id)}
    ev = _collect_events(Path(run_dir), run_id)
    by_category: dict[str, list[_Failure]] = {c: [] for c in CATEGORIES}
    for failure in (*_attempt_failures(run_id, attempts, ev), *_event_failures(run_id, ev)):
        by_category.setdefault(failure.category, []).append(failure)
    for failures in by_category.values():
        failures.sort(key=lambda f: f.ts or 0.0)
    return [_row(c, fs, final) for c, fs in by_category.items()]


def to_dicts(rows: Iterable[FailureRow]) -> list[dict[str, Any]]:
    """The matrix as written to the run directory (:meth:`FailureRow.to_json` per row)."""
    return [r.to_json() for r in rows]


def matrix_lines(rows: Iterable[FailureRow]) -> list[str]:
    """A plain-text table for the terminal and the evidence package."""
    out = [f"{'category':<12} {'count':>5} {'jobs':>4}  {'resolved':<8}  containment / root cause / examples"]
    for r in rows:
        resolved = "-" if r.resolved is None else ("yes" if r.resolved else f"NO ({r.unresolved_jobs})")
        contained = ", ".join(f"{label} x{n}" for label, n in r.containment) or "-"
        out.append(f"{r.category:<12} {r.count:>5} {r.jobs:>4}  {resolved:<8}  {contained}")
        if r.count:
            cls = f"{r.error_class}: " if r.error_class else ""
            out.append(f"{'':<33}cause: {cls}{r.root_cause}")
            label = "at" if all(".jsonl:" in e for e in r.examples) else "trace"  # torn lines have no chain
            out.append(f"{'':<33}{label}: " + ", ".join(r.examples))
    return out


__all__ = ["FailureRow", "build_failure_matrix", "to_dicts", "matrix_lines", "normalise_error", "error_class",
           "CONTAINMENTS", "FAILED_OUTCOMES", "MAX_EXAMPLES"]
