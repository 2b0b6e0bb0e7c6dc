"""The run directory: every file name in it, the one atomic write, and one typed record per file.

::

    <run_dir>/supervisor.lock       SUPERVISOR_LOCK  held while a supervisor (and its workers) run the batch
    <run_dir>/summary.json          SUMMARY          SoakSummary (a soak's: the run, its windows, the aggregate, the
                                                     verdict) or BatchRunSummary (a plain run's, ``"kind": "run"``)
    <run_dir>/summary.txt           SUMMARY_TEXT     a batch run's summary, as the terminal shows it
    <run_dir>/windows.jsonl         WINDOWS          one Window per line, appended as each window closes
    <run_dir>/failure_matrix.json   FAILURE_MATRIX   a list of FailureRow
    <run_dir>/alerts.jsonl          ALERTS           one Alert per line, appended as alerts fire
    <run_dir>/drilldown.json        DRILLDOWN        Drilldown: one correlation chain across the four streams
    <run_dir>/slo.json              SLO_COPY         the SLO file the soak ran with (its text: engine.evidence.slo)
    <run_dir>/diagnostic-*.json     DIAGNOSTIC_GLOB  Diagnostic: why a soak halted, and its context
    <run_dir>/report.html           REPORT           the evidence dashboard (engine.evidence.report)
    <run_dir>/<stream>.jsonl        stream_path()    the four log streams (engine.records.streams)
    FILE (anywhere)                 write_fault_report / read_fault_report: FaultReport, the fault campaign's
                                                     result (``python -m bench faults --json FILE``), which
                                                     ``readiness --faults FILE`` judges

Why one owner: the soak writes these files, ``report``, ``readiness``
and the bench read them, and each used to name and parse them on its
own, with its own record classes and its own idea of an atomic write.
Here every file has one record with ``to_json`` (the wire form, exactly
as written) and ``from_json`` (in the style of locust's
``StatsEntry.serialize`` / ``unserialize``), and every whole-file write
goes through :func:`write_atomic` (temp file in the same directory,
fsync, ``os.replace``, fsync of the directory; an existing file's mode
is kept).

Reading has two modes, chosen with :class:`Reading`:

* strict (the default): a value of the wrong type raises
  :class:`RunDirError`, which names the file and the field
  (``summary.json: windows[3].jobs.passed: expected a whole number >= 0, got 'x'``);
* lenient (``Reading(lenient=True)``, for evidence from a soak that was
  halted or killed half way, or written by an older or newer version):
  the value reads as None ("no data"), an unreadable line or row is
  skipped, and each is kept as an :class:`Issue` for the caller to show
  or log.

Both modes read a number that is null, missing or not finite as None
(orjson writes NaN as null, ``json.dumps`` as ``NaN``: both mean "no
value"), and both raise :class:`RunDirError` for a file that cannot be
read or is not JSON.  Unknown keys are ignored (newer soaks add figures).

Layout: this module names the files and reads and writes them;
``_fields`` holds the error, the reading modes and the value checkers,
``_records`` the per-window records (Window, SloResult, Alert,
FailureRow), ``_summary`` the whole-run ones (SoakSummary and its parts,
Verdict, Drilldown, Diagnostic), ``_run`` a plain run's summary
(BatchRunSummary: :func:`summary_kind` tells the two apart), ``_faults``
the fault campaign's report (FaultReport, FaultTrial, FaultViolation).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import orjson

from engine.records.rundir._fields import Issue, Obj, Reading, RunDirError, as_count, as_number
from engine.records.rundir._records import (Alert, FailureRow, JobCounts, LatencyStats, SloResult, Window,
                                            WorkerResources)
from engine.records.rundir._summary import (AcceptedRisk, BatchInfo, CriterionRow, Diagnostic, Drilldown,
                                            JobAccounting, LastQuarter, RollbackDrill, SoakPhase, SoakSummary,
                                            SupervisorMemory, Throughputs, Verdict, json_default)
from engine.records.rundir._run import RUN_KIND, Autoscale, BatchRunSummary, FirstFailure, RunJobs, ScaleStep
from engine.records.rundir._faults import (CONTROL as FAULT_CONTROL, FAULT_KINDS, FAULT_REPORT_FORMAT, FaultReport,
                                           FaultTrial, FaultViolation, Tally as FaultTally)

SUPERVISOR_LOCK = "supervisor.lock"
SUMMARY = "summary.json"
SUMMARY_TEXT = "summary.txt"
WINDOWS = "windows.jsonl"
FAILURE_MATRIX = "failure_matrix.json"
ALERTS = "alerts.jsonl"
DRILLDOWN = "drilldown.json"
SLO_COPY = "slo.json"
DIAGNOSTIC_GLOB = "diagnostic-*.json"
REPORT = "report.html"
STREAM_SUFFIX = ".jsonl"

_WHAT = {SUMMARY: "the soak summary", FAILURE_MATRIX: "the failure matrix", DRILLDOWN: "the drilldown",
         SLO_COPY: "the SLO copy", ALERTS: "the alerts", WINDOWS: "the windows"}
FILE_MODE = 0o644


def stream_path(run_dir: str | os.PathLike[str], stream: str) -> Path:
    """``<run_dir>/<stream>.jsonl``: where the stream ``operational`` (``performance`` ...) is written."""
    return Path(run_dir) / f"{stream}{STREAM_SUFFIX}"


def run_lock_path(run_dir: str | os.PathLike[str]) -> Path:
    """The filelock a supervisor (and the workers it forks) holds while it runs the batch in ``run_dir``."""
    return Path(run_dir) / SUPERVISOR_LOCK



# -- writing ------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # a file system that cannot sync a directory
            raise
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = FILE_MODE) -> Path:
    """Readers (a browser, a copy job, readiness) see the old file or the new one, never half of one.

    Temp file in the same directory, fsync, ``os.replace``, fsync of the
    directory.  An existing file keeps its mode; a new one gets ``mode``.
    Raises ``OSError`` (the caller knows what the file is for).
    """
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(os.stat(path).st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def write_summary(run_dir: str | os.PathLike[str], summary: SoakSummary) -> Path:
    return write_atomic(Path(run_dir) / SUMMARY, _dumps(summary.to_json()))


def write_run_summary(run_dir: str | os.PathLike[str], summary: BatchRunSummary) -> Path:
    """A plain run's ``summary.json`` (``OSError`` when it cannot be written)."""
    return write_atomic(Path(run_dir) / SUMMARY, _dumps(summary.to_json()))


def write_failure_matrix(run_dir: str | os.PathLike[str], rows: Iterable[FailureRow]) -> Path:
    return write_atomic(Path(run_dir) / FAILURE_MATRIX, _dumps([r.to_json() for r in rows]))


def write_drilldown(run_dir: str | os.PathLike[str], drilldown: Drilldown) -> Path:
    return write_atomic(Path(run_dir) / DRILLDOWN, orjson.dumps(drilldown.to_json(), option=orjson.OPT_INDENT_2,
                                                                 default=str))


def write_report(run_dir: str | os.PathLike[str], page: str) -> Path:
    return write_atomic(Path(run_dir) / REPORT, page.encode("utf-8"))


def write_summary_text(run_dir: str | os.PathLike[str], lines: Iterable[str]) -> Path:
    return write_atomic(Path(run_dir) / SUMMARY_TEXT, ("\n".join(lines) + "\n").encode("utf-8"))


def write_slo_copy(run_dir: str | os.PathLike[str], data: bytes) -> Path:
    """The SLO file the soak runs with, as JSON text (the caller converts TOML)."""
    return write_atomic(Path(run_dir) / SLO_COPY, data)


def write_diagnostic(run_dir: str | os.PathLike[str], diagnostic: Diagnostic) -> Path:
    """``diagnostic-<UTC time>[-n].json``, never over an earlier one; ``OSError`` when it cannot be written."""
    run_dir = Path(run_dir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(diagnostic.ts or time.time()))
    path, n = run_dir / f"diagnostic-{stamp}.json", 1
    while path.exists():
        n += 1
        path = run_dir / f"diagnostic-{stamp}-{n}.json"
    data = orjson.dumps(diagnostic.to_json(), default=json_default,
                        option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    return write_atomic(path, data)


def write_fault_report(path: str | os.PathLike[str], report: FaultReport) -> Path:
    """The fault campaign's result as one JSON file (``OSError`` when it cannot be written)."""
    return write_atomic(path, _dumps(report.to_json()))


def append_window(run_dir: str | os.PathLike[str], window: Window) -> None:
    """One line in ``windows.jsonl``: the window, closed and evaluated."""
    with open(Path(run_dir) / WINDOWS, "ab") as fh:
        fh.write(orjson.dumps(window.to_json()) + b"\n")


class JsonlFile:
    """An append-only JSON Lines file (``alerts.jsonl``): each record lands whole with one ``O_APPEND`` write."""

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o640) -> None:
        self.path = Path(path)
        self.mode = mode
        self._fd: int | None = None

    def append(self, record: Mapping[str, Any]) -> None:
        """Raises ``OSError`` (disk full, the directory gone, a short write)."""
        data = orjson.dumps(record) + b"\n"
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.mode)
        written = os.write(self._fd, data)
        if written < len(data):
            raise OSError(f"short write: {written} of {len(data)} bytes")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def alerts_file(run_dir: str | os.PathLike[str]) -> JsonlFile:
    return JsonlFile(Path(run_dir) / ALERTS)


# -- reading ------------------------------------------------------------------------------------


def _text_of(path: Path, what: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise RunDirError(str(path), "", f"cannot read {what}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise RunDirError(str(path), "", f"{what} is not UTF-8 text: {exc.reason}") from exc


def read_json(path: str | os.PathLike[str], what: str | None = None) -> Any:
    """One JSON document (stdlib json on purpose: a file written by ``json.dumps`` may hold NaN)."""
    path = Path(path)
    what = what or _WHAT.get(path.name, "the file")
    try:
        return json.loads(_text_of(path, what))
    except json.JSONDecodeError as exc:
        raise RunDirError(str(path), "", f"{what} is not JSON (line {exc.lineno}, column {exc.colno}: "
                                         f"{exc.msg})") from exc


def _jsonl(path: Path, reading: Reading) -> Iterable[tuple[int, Obj]]:
    """The objects of a JSON Lines file; a torn or garbled line is skipped (lenient) or an error (strict)."""
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunDirError(file, "", f"cannot read {_WHAT.get(path.name, 'the file')}: {exc.strerror}") from exc
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            reading.bad(file, f"line {number}", "not JSON", skipped=True)
            continue
        if not isinstance(rec, dict):
            reading.bad(file, f"line {number}", "not an object", skipped=True)
            continue
        yield number, Obj(rec, f"line {number}", file, reading)


def read_summary_file(path: str | os.PathLike[str], reading: Reading | None = None) -> SoakSummary:
    return SoakSummary.from_json(read_json(path, _WHAT[SUMMARY]), file=str(path), reading=reading)


_NO_SUMMARY = {"soak": "give the run directory of a soak (it is written when the soak ends, or halts)",
               "any": "give the run directory of a run or a soak (a run writes it when it ends, a soak when it ends "
                      "or halts; a killed run gets it from run --resume)"}


def _summary_document(run_dir: Path, wanted: str = "soak") -> dict[str, Any]:
    if not run_dir.is_dir():
        raise RunDirError(str(run_dir), "", "no such directory")
    path = run_dir / SUMMARY
    if not path.is_file():
        raise RunDirError(str(run_dir), "", f"no {SUMMARY} here; {_NO_SUMMARY[wanted]}")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise RunDirError(str(path), "", f"expected a JSON object, found {type(raw).__name__}")
    if wanted == "soak" and raw.get("kind") == RUN_KIND:
        raise RunDirError(str(path), "kind", "this is a batch run's summary, not a soak's (readiness judges soaks; "
                                             "python -m engine report RUN_DIR renders a run's evidence)")
    return raw


def summary_kind(run_dir: str | os.PathLike[str]) -> str:
    """``"run"`` or ``"soak"``: whose ``summary.json`` this directory holds (:class:`RunDirError` when none)."""
    return RUN_KIND if _summary_document(Path(run_dir), "any").get("kind") == RUN_KIND else "soak"


def read_summary(run_dir: str | os.PathLike[str], reading: Reading | None = None) -> SoakSummary:
    """A soak's ``summary.json``; :class:`RunDirError` when the directory or the file is missing or unreadable,
    or when it is a plain run's (:func:`read_run_summary`)."""
    run_dir = Path(run_dir)
    return SoakSummary.from_json(_summary_document(run_dir), file=str(run_dir / SUMMARY), reading=reading)


def read_run_summary(run_dir: str | os.PathLike[str], reading: Reading | None = None) -> BatchRunSummary:
    """A plain run's ``summary.json`` (``kind`` "run"); :class:`RunDirError` as :func:`read_summary`."""
    run_dir = Path(run_dir)
    return BatchRunSummary.from_json(_summary_document(run_dir, "any"), file=str(run_dir / SUMMARY),
                                     reading=reading)


def replace_verdict(run_dir: str | os.PathLike[str], make: Callable[[Verdict | None], Verdict]) -> Verdict:
    """Put ``make(previous verdict)`` into ``summary.json``; every other key and value is kept as it was
    (NaN included), and the file is replaced atomically.  ``OSError`` when it cannot be written."""
    run_dir = Path(run_dir)
    raw = _summary_document(run_dir)
    previous = raw.get("verdict")
    old = Verdict.from_json(previous, file=str(run_dir / SUMMARY), reading=Reading(lenient=True)) \
        if isinstance(previous, dict) else None
    new = make(old)
    raw["verdict"] = new.to_json()
    write_atomic(run_dir / SUMMARY, json.dumps(raw, indent=2, ensure_ascii=False).encode("utf-8"))
    return new


def read_windows(run_dir: str | os.PathLike[str], reading: Reading | None = None) -> tuple[Window, ...]:
    path = Path(run_dir) / WINDOWS
    if not path.is_file():
        return ()
    return tuple(Window._read(o) for _, o in _jsonl(path, reading or Reading()))


def read_alerts(run_dir: str | os.PathLike[str], reading: Reading | None = None) -> tuple[Alert, ...] | None:
    """``alerts.jsonl`` in file order; None when there is no such file."""
    path = Path(run_dir) / ALERTS
    if not path.is_file():
        return None
    return tuple(Alert._read(o) for _, o in _jsonl(path, reading or Reading()))


def read_failure_matrix(run_dir: str | os.PathLike[str],
                        reading: Reading | None = None) -> tuple[FailureRow, ...] | None:
    """The rows (also from ``{"rows": [...]}`` or ``{category: row}``); None when there is no such file."""
    path = Path(run_dir) / FAILURE_MATRIX
    if not path.is_file():
        return None
    raw = read_json(path)
    if isinstance(raw, dict):
        raw = raw["rows"] if isinstance(raw.get("rows"), list) else [
            {"category": k, **v} for k, v in raw.items() if isinstance(v, dict)]
    rd = reading or Reading()
    if not isinstance(raw, list):
        raise RunDirError(str(path), "", f"expected a list of rows, found {type(raw).__name__}")
    rows = []
    for i, r in enumerate(raw):
        if isinstance(r, dict):
            rows.append(FailureRow._read(Obj(r, f"[{i}]", str(path), rd)))
        else:
            rd.bad(str(path), "", "a row that is not an object", skipped=True)
    return tuple(rows)


def read_drilldown(run_dir: str | os.PathLike[str], reading: Reading | None = None) -> Drilldown | None:
    path = Path(run_dir) / DRILLDOWN
    if not path.is_file():
        return None
    return Drilldown.from_json(read_json(path), file=str(path), reading=reading)


def read_slo_copy(run_dir: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """The soak's copy of its SLO file: (path, text), or None; the text is engine.evidence.slo's to parse."""
    path = Path(run_dir) / SLO_COPY
    if not path.is_file():
        return None
    return path, _text_of(path, "the SLO file")


def read_diagnostic(path: str | os.PathLike[str], reading: Reading | None = None) -> Diagnostic:
    return Diagnostic.from_json(read_json(path, "the diagnostic"), file=str(path), reading=reading)


def read_fault_report(path: str | os.PathLike[str], cls: type[FaultReport] = FaultReport) -> FaultReport:
    """A fault campaign's report, strictly: :class:`RunDirError` naming the file (and the field) when it is
    missing, unreadable, not JSON, or not a report of this format."""
    return cls.from_json(read_json(path, "the fault report"), file=str(path))


def diagnostics(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The run's diagnostic files, oldest first (``diagnostic-STAMP.json``, then ``-2``, ``-3`` ... of one second)."""
    def order(p: Path) -> tuple[str, int]:
        _, stamp, *n = p.stem.split("-")
        return stamp, int(n[0]) if n and n[0].isdigit() else 1

    return sorted(Path(run_dir).glob(DIAGNOSTIC_GLOB), key=order)


__all__ = ["SUPERVISOR_LOCK", "SUMMARY", "SUMMARY_TEXT", "WINDOWS", "FAILURE_MATRIX", "ALERTS",
           "DRILLDOWN", "SLO_COPY", "DIAGNOSTIC_GLOB", "REPORT", "stream_path", "run_lock_path",
           "RunDirError", "Issue", "Reading", "as_number", "as_count", "JobCounts", "LatencyStats",
           "WorkerResources", "SloResult", "Window", "Alert", "FailureRow", "CriterionRow", "AcceptedRisk", "Verdict",
           "BatchInfo", "Throughputs", "JobAccounting", "LastQuarter", "SupervisorMemory", "SoakPhase",
           "RollbackDrill", "SoakSummary", "Drilldown", "Diagnostic", "RUN_KIND", "RunJobs", "FirstFailure",
           "BatchRunSummary", "Autoscale", "ScaleStep", "write_run_summary", "read_run_summary", "summary_kind", "write_atomic", "write_summary",
           "write_failure_matrix", "write_drilldown", "write_report", "write_summary_text", "write_slo_copy",
           "write_diagnostic", "append_window", "JsonlFile", "alerts_file", "read_json", "read_summary",
           "read_summary_file", "replace_verdict", "read_windows", "read_alerts", "read_failure_matrix",
           "read_drilldown", "read_slo_copy", "read_diagnostic", "diagnostics", "FAULT_REPORT_FORMAT", "FAULT_KINDS",
           "FAULT_CONTROL", "FaultReport", "FaultTrial", "FaultViolation", "FaultTally", "write_fault_report",
           "read_fault_report"]
