"""The evidence package of a soak: ``report.html`` and ``drilldown.json`` built from its run directory.

Inputs, all in the run directory; only ``summary.json`` is required::

    summary.json          run, windows and aggregate figures, verdict   (required)
    alerts.jsonl          one alert per line                             (optional)
    failure_matrix.json   failure categories, examples, containment      (optional)
    slo.json              the SLO file the soak ran with                 (optional)
    drilldown.json        one correlation chain across the four streams  (written here when missing)
    <stream>.jsonl        the four log streams                           (for the drilldown)

Why one self-contained HTML file with SVG drawn here: the report is read
on machines with no network and archived next to the run, so it may load
nothing (no scripts, fonts, images or styles from anywhere); plotting
libraries would be a dependency for a handful of polylines.

Why so defensive: the files come from a soak that may have been halted or
killed half way, from older or newer versions of the soak, and flow names
come from user files.  Every value is parsed once at the edge into the
records below (a number that is missing, not a number or not finite
becomes ``None`` and is shown as "no data"), every string is HTML-escaped
and cut to a bounded length, and every list that grows with the run
(windows, alerts, points of a plot, drilldown records) is capped or
downsampled, so a 24-hour soak gives a report of bounded size.  A file
that is missing is shown as "not recorded"; a line that cannot be read is
skipped and named in the report's notes, never silently.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson

from coordination.telemetry_context import STREAMS, stream_logger
from engine.errors import ReportError, ReportInputError
from engine.records.streams import read_stream, trace

log = stream_logger("operational", __name__)

REPORT_FILE = "report.html"
DRILLDOWN_FILE = "drilldown.json"

# Bounds that keep the report small whatever the length of the run.
MAX_POINTS_PER_CHART = 2400   # summed over the series of one chart
MAX_FLOW_CHARTS = 24
MAX_PHASES = 40
MAX_WINDOW_ROWS = 100
MAX_ALERT_ROWS = 300
MAX_FAILURE_ROWS = 200
MAX_EXAMPLES = 3
MAX_DRILLDOWN_ROWS = 400
MAX_DRILLDOWN_RECORDS = 5000  # kept in drilldown.json
MAX_STRIP_CELLS = 120
MAX_NOTES = 50
MAX_TEXT = 300




# -- records, parsed once at the edge ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SloResult:
    metric: str
    expr: str
    value: float | None
    ok: bool | None  # None: no data
    abort_on_fail: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    index: int
    start: float | None
    end: float | None
    passed: int | None
    failed: int | None
    error_rate: float | None
    throughput: float | None
    throughput_per_worker: dict[str, float | None]
    latency: dict[str, dict[str, float | None]]
    resources: dict[str, dict[str, float | None]]
    supervisor_rss_mb: float | None
    unowned_uses: float | None
    invalid_transitions: float | None
    duplicates: float | None
    worker_restarts: float | None
    idle_workers_s: float | None
    queued: float | None
    slo: tuple[SloResult, ...]


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    value: Any
    limit: Any
    ok: bool | None
    waived: bool
    reason: str | None
    measured: str | None = None  # readiness's own wording of ``value`` ("1.90x (3.2 vs 1.7 jobs/s)")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The soak's own verdict carries ``reasons``; ``readiness`` adds ``criteria`` and ``accepted_risks``."""

    go: bool | None
    criteria: tuple[Criterion, ...]
    accepted_risks: tuple[Any, ...]
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Summary:
    run_id: str
    started_at: float | None
    ended_at: float | None
    target_duration_s: float | None
    window_s: float | None
    workers: int | None
    mode: str | None
    status: str | None
    halt_reason: str | None
    cycles: int | None
    windows: tuple[Window, ...]
    aggregate: Window | None
    verdict: Verdict | None


@dataclass(frozen=True, slots=True)
class Alert:
    ts: float | None
    severity: str
    rule: str | None
    metric: str | None
    value: Any
    threshold: Any
    window: Any
    message: str | None


@dataclass(frozen=True, slots=True)
class FailureRow:
    category: str
    count: int | None
    first_seen: float | None
    last_seen: float | None
    examples: tuple[str, ...]
    root_cause: str | None
    containment: tuple[tuple[str, int | None], ...]  # (label, failures it contained when known)
    resolved: bool | None
    jobs: int | None = None
    error_class: str | None = None
    unresolved_jobs: int | None = None


@dataclass(frozen=True, slots=True)
class Drilldown:
    correlation_id: str | None
    reason: str | None
    records: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class Evidence:
    """Everything the report shows; ``None`` for a file that was not recorded."""

    run_dir: Path
    summary: Summary
    alerts: list[Alert] | None
    failures: list[FailureRow] | None
    slo_file: Any
    drilldown: Drilldown | None
    streams: dict[str, bool]
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)


def _num(v: Any) -> float | None:
    """A finite number, else None (``type`` not ``isinstance``: a bool is not a number here)."""
    kind = type(v)
    if kind is float:
        return v if math.isfinite(v) else None
    if kind is int:
        return float(v)
    return None


def _int(v: Any) -> int | None:
    f = _num(v)
    return int(f) if f is not None else None


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list:
    return v if isinstance(v, list) else []


def _slo(raw: Any) -> SloResult | None:
    if not isinstance(raw, dict):
        return None
    return SloResult(str(raw.get("metric") or "?"), str(raw.get("expr") or ""), _num(raw.get("value")),
                     _bool(raw.get("ok")), raw.get("abort_on_fail") is True)


def _window(raw: Any, fallback_index: int) -> Window:
    raw = _dict(raw)
    jobs = _dict(raw.get("jobs"))
    latency = {str(k): {p: _num(v.get(p)) for p in ("n", "p50", "p95", "p99", "max", "avg")}
               for k, v in _dict(raw.get("latency")).items() if isinstance(v, dict)}
    resources = {str(k): {r: _num(v.get(r)) for r in ("browser_uss_mb", "browser_rss_mb", "fds", "children")}
                 for k, v in _dict(raw.get("resources")).items() if isinstance(v, dict)}
    index = _int(raw.get("index"))
    partial = raw.get("partial") is True
    return Window(
        index=fallback_index if index is None else index,
        start=_num(raw.get("start")), end=_num(raw.get("end")),
        passed=_int(jobs.get("passed")), failed=_int(jobs.get("failed")),
        error_rate=_num(raw.get("error_rate")),
        # a run's last window may last seconds: a rate over it is noise, so its throughput is left out of the plots
        throughput=None if partial else _num(raw.get("throughput")),
        throughput_per_worker={} if partial else {str(k): _num(v) for k, v in
                                                  _dict(raw.get("throughput_per_worker")).items()},
        latency=latency, resources=resources,
        supervisor_rss_mb=_num(raw.get("supervisor_rss_mb")),
        unowned_uses=_num(raw.get("unowned_uses")), invalid_transitions=_num(raw.get("invalid_transitions")),
        duplicates=_num(raw.get("duplicates")), worker_restarts=_num(raw.get("worker_restarts")),
        idle_workers_s=_num(raw.get("idle_workers_s")), queued=_num(raw.get("queued")),
        slo=tuple(s for s in (_slo(x) for x in _list(raw.get("slo"))) if s is not None),
    )


def _verdict(raw: Any) -> Verdict | None:
    if not isinstance(raw, dict):
        return None
    criteria = tuple(
        Criterion(str(c.get("name") or "?"), c.get("value"), c.get("limit"), _bool(c.get("ok")),
                  c.get("waived") is True, _str(c.get("reason")), _str(c.get("measured")))
        for c in _list(raw.get("criteria")) if isinstance(c, dict))
    return Verdict(_bool(raw.get("go")), criteria, tuple(_list(raw.get("accepted_risks"))),
                   tuple(str(r) for r in _list(raw.get("reasons"))))


def _load_json(path: Path) -> Any:
    """stdlib json on purpose: a summary written by ``json.dumps`` may hold NaN, which orjson refuses."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return json.load(fh)


def load_summary(run_dir: Path) -> Summary:
    path = run_dir / "summary.json"
    if not path.is_file():
        raise ReportInputError(f"no summary.json in {run_dir}: not a soak run directory, "
                               "or the soak has not written its summary yet")
    try:
        raw = _load_json(path)
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read: {exc.strerror}") from exc
    if not isinstance(raw, dict):
        raise ReportInputError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    windows = tuple(_window(w, i) for i, w in enumerate(_list(raw.get("windows"))))
    aggregate = _window(raw["aggregate"], -1) if isinstance(raw.get("aggregate"), dict) else None
    return Summary(
        run_id=str(raw.get("run_id") or run_dir.name),
        started_at=_num(raw.get("started_at")), ended_at=_num(raw.get("ended_at")),
        target_duration_s=_num(raw.get("target_duration_s")), window_s=_num(raw.get("window_s")),
        workers=_int(raw.get("workers")), mode=_str(raw.get("mode")), status=_str(raw.get("status")),
        halt_reason=_str(raw.get("halt_reason")), cycles=_int(raw.get("cycles")), windows=windows,
        aggregate=aggregate,
        verdict=_verdict(raw.get("verdict")),
    )


def _load_alerts(run_dir: Path, ev: Evidence) -> list[Alert] | None:
    path = run_dir / "alerts.jsonl"
    if not path.is_file():
        return None
    out = []
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        ev.note(f"alerts.jsonl: cannot read ({exc.strerror}); shown as not recorded")
        return None
    with fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                ev.note(f"alerts.jsonl line {number}: not JSON (skipped)")
                continue
            if not isinstance(rec, dict):
                ev.note(f"alerts.jsonl line {number}: not an object (skipped)")
                continue
            out.append(Alert(_num(rec.get("ts")), str(rec.get("severity") or "info").lower(), _str(rec.get("rule")),
                             _str(rec.get("metric")), rec.get("value"), rec.get("threshold"), rec.get("window"),
                             _str(rec.get("message"))))
    out.sort(key=lambda a: a.ts if a.ts is not None else 0.0)
    return out


def _load_failures(run_dir: Path, ev: Evidence) -> list[FailureRow] | None:
    path = run_dir / "failure_matrix.json"
    if not path.is_file():
        return None
    try:
        raw = _load_json(path)
    except json.JSONDecodeError as exc:
        ev.note(f"failure_matrix.json: not JSON (line {exc.lineno}: {exc.msg}); shown as not recorded")
        return None
    except OSError as exc:
        ev.note(f"failure_matrix.json: cannot read ({exc.strerror}); shown as not recorded")
        return None
    if isinstance(raw, dict):  # tolerate {"rows": [...]} or {category: row}
        raw = raw.get("rows") if isinstance(raw.get("rows"), list) else [
            {"category": k, **v} for k, v in raw.items() if isinstance(v, dict)]
    rows = []
    for r in _list(raw):
        if not isinstance(r, dict):
            ev.note("failure_matrix.json: a row that is not an object (skipped)")
            continue
        labels = _list(r.get("containment")) or ([r["containment"]] if isinstance(r.get("containment"), str) else [])
        counts = _dict(r.get("containment_counts"))
        rows.append(FailureRow(
            category=str(r.get("category") or "?"), count=_int(r.get("count")),
            first_seen=_num(r.get("first_seen")), last_seen=_num(r.get("last_seen")),
            examples=tuple(str(x) for x in _list(r.get("examples")) if x),
            root_cause=_str(r.get("root_cause")),
            containment=tuple((str(x), _int(counts.get(str(x)))) for x in labels),
            resolved=_bool(r.get("resolved")), jobs=_int(r.get("jobs")), error_class=_str(r.get("error_class")),
            unresolved_jobs=_int(r.get("unresolved_jobs"))))
    # categories that failed first (unresolved, then the most frequent); the all-clear rows last
    rows.sort(key=lambda r: (r.count == 0, r.resolved is True, -(r.count or 0), r.category))
    return rows


def _load_slo_file(run_dir: Path, ev: Evidence) -> Any:
    path = run_dir / "slo.json"
    if not path.is_file():
        return None
    try:
        return _load_json(path)
    except json.JSONDecodeError as exc:
        ev.note(f"slo.json: not JSON (line {exc.lineno}: {exc.msg})")
        return None
    except OSError as exc:
        ev.note(f"slo.json: cannot read ({exc.strerror})")
        return None


def _load_drilldown(path: Path, ev: Evidence) -> Drilldown | None:
    try:
        raw = _load_json(path)
    except json.JSONDecodeError as exc:
        ev.note(f"drilldown.json: not JSON (line {exc.lineno}: {exc.msg}); left as it is")
        return None
    except OSError as exc:
        ev.note(f"drilldown.json: cannot read ({exc.strerror}); left as it is")
        return None
    if isinstance(raw, list):
        raw = {"records": raw}
    raw = _dict(raw)
    records = tuple(r for r in _list(raw.get("records")) if isinstance(r, dict))
    return Drilldown(_str(raw.get("correlation_id")), _str(raw.get("reason")), records)


# -- the drilldown -------------------------------------------------------------------------------

_ATTEMPT_ID = re.compile(r"([^/]+/[^/]+/a\d+)(?:/.*)?")


def _attempts_in_streams(run_dir: Path) -> tuple[set[str], str | None]:
    """Every attempt id the streams recorded, and the first one, in one pass.

    The domain stream logs every attempt's start, so it alone is read when
    it exists; otherwise the other streams are.
    """
    seen: set[str] = set()
    first: str | None = None
    present = [s for s in ("domain", "performance", "operational", "audit") if (run_dir / f"{s}.jsonl").is_file()]
    for stream in present[:1] if present[:1] == ["domain"] else present:
        for rec in read_stream(run_dir / f"{stream}.jsonl"):
            m = _ATTEMPT_ID.fullmatch(str(rec.get("correlation_id") or ""))
            if m:
                seen.add(m.group(1))
                first = first or m.group(1)
    return seen, first


def build_drilldown(run_dir: Path, failures: Sequence[FailureRow] | None) -> Drilldown | None:
    """One correlation chain across the four streams: a failed attempt from the matrix, else the first attempt.

    The failure rows are tried in the matrix's order (unresolved and most
    frequent first); an example is taken when the streams hold its attempt,
    so a row whose examples were never logged (or were rotated away) does
    not leave the report without a drilldown.  Then one :func:`trace`.
    """
    seen, first = _attempts_in_streams(run_dir)
    if first is None:
        return None
    chosen: tuple[str, str] | None = None
    for row in failures or ():
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


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers (a browser, a copy job) never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- building ------------------------------------------------------------------------------------


def load_evidence(run_dir: str | os.PathLike[str], *, write_drilldown: bool = True) -> Evidence:
    """Read the run's files (and write ``drilldown.json`` if it is missing and one can be built)."""
    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    ev = Evidence(run_dir, summary, None, None, None, None,
                  {s: (run_dir / f"{s}.jsonl").is_file() for s in STREAMS})
    ev.alerts = _load_alerts(run_dir, ev)
    ev.failures = _load_failures(run_dir, ev)
    ev.slo_file = _load_slo_file(run_dir, ev)
    path = run_dir / DRILLDOWN_FILE
    if path.is_file():
        ev.drilldown = _load_drilldown(path, ev)
    else:
        try:
            ev.drilldown = build_drilldown(run_dir, ev.failures)
        except OSError as exc:  # a stream file that exists but cannot be read
            ev.note(f"drilldown: cannot read the streams ({exc.strerror}: {exc.filename})")
        if ev.drilldown is not None and write_drilldown:
            doc = {"correlation_id": ev.drilldown.correlation_id, "reason": ev.drilldown.reason,
                   "run_id": summary.run_id, "generated_at": time.time(),
                   "streams": {s: sum(1 for r in ev.drilldown.records if r.get("stream") == s) for s in STREAMS},
                   "trace": _trace_hint(ev.drilldown.correlation_id or "", summary.run_id),
                   "records": list(ev.drilldown.records)}
            try:
                _write_atomic(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str))
            except OSError as exc:
                raise ReportError(f"cannot write {path}: {exc.strerror}") from exc
    return ev


def build_evidence(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.html`` (and ``drilldown.json`` when missing) into ``run_dir``; return the report's path."""
    ev = load_evidence(run_dir)
    page = render_html(ev).encode("utf-8")
    path = ev.run_dir / REPORT_FILE
    try:
        _write_atomic(path, page)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror}") from exc
    log.info("evidence report written", extra={"event": "report_written", "path": str(path), "bytes": len(page),
                                                "windows": len(ev.summary.windows)})
    return path


# -- formatting ----------------------------------------------------------------------------------


def _e(text: Any, limit: int = MAX_TEXT) -> str:
    """HTML-escaped text, cut to ``limit`` characters (every string from the data goes through here)."""
    s = "" if text is None else str(text)
    if len(s) > limit:
        s = s[:limit - 1] + "…"
    return html.escape(s, quote=True)


NA = '<span class="na">no data</span>'


def _utc(ts: float | None) -> str:
    if ts is None or not (0 <= ts < 253402300800):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def _utc_short(ts: float | None) -> str:
    """Month-day and minute: enough to place a window in a run (the full time is in its title)."""
    if ts is None or not (0 <= ts < 253402300800):
        return "—"
    return (f'<span title="{_utc(ts)}">' + time.strftime("%m-%d %H:%M", time.gmtime(ts)) + "Z</span>")


def _clock(ts: float | None) -> str:
    if ts is None or not (0 <= ts < 253402300800):
        return "—"
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {sec:02d} s"


def _fmt(v: float | None, unit: str = "", digits: int = 3, *, unit_class: str = "") -> str:
    if v is None:
        return NA
    if abs(v) >= 10 ** digits:
        text = f"{v:,.0f}"
    else:
        text = f"{v:.{digits}g}"
    if not unit:
        return text
    return f'{text}&nbsp;<span class="{unit_class}">{unit}</span>' if unit_class else f"{text}&nbsp;{unit}"


def _pct(v: float | None) -> str:
    return NA if v is None else f"{v * 100:.2f}%"


def _fmt_any(v: Any) -> str:
    if v is None:
        return NA
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return _fmt(_num(v), digits=4)
    if isinstance(v, str):
        return _e(v)
    return _e(json.dumps(v, default=str, allow_nan=True), 200)


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{_e(text, 60)}</span>'


def _ok_badge(ok: bool | None, *, waived: bool = False) -> str:
    if waived:
        return _badge("waived", "warn")
    if ok is None:
        return _badge("no data", "muted")
    return _badge("pass", "ok") if ok else _badge("fail", "bad")


def _natural(name: str) -> tuple[str, int, str]:
    m = re.fullmatch(r"(.*?)(\d+)", name)
    return (m.group(1), int(m.group(2)), "") if m else (name, -1, name)


# -- SVG plots -----------------------------------------------------------------------------------

PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5",
           "#9c6b4e", "#9498a0")
PCT_COLORS = {"p50": "#4269d0", "p95": "#efb118", "p99": "#e0403a"}
STREAM_COLORS = {"operational": "#4269d0", "performance": "#3ca951", "domain": "#a463f2", "audit": "#9c6b4e"}

_W, _H = 600, 250
_ML, _MR, _MT, _MB = 58, 16, 14, 40


@dataclass(slots=True)
class Series:
    name: str
    color: str
    points: list[tuple[float, float | None]]
    dash: str | None = None
    width: float = 2.0


@dataclass(slots=True)
class Ref:
    """A horizontal reference line (an SLO budget, a limit)."""

    value: float
    label: str
    color: str = "#c0392b"


def _nice_step(span: float, n: int) -> float:
    raw = span / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    step = _nice_step(hi - lo, n)
    start = math.floor(lo / step + 1e-9) * step
    out, t = [], start
    while t < hi - 1e-9 * step:
        out.append(t)
        t += step
    out.append(t)
    return [round(x, 10) for x in out]


def _decimals(step: float) -> int:
    """The fewest decimals that show every multiple of ``step`` exactly (0.25 -> 2, 2.5 -> 1, 200 -> 0)."""
    for d in range(7):
        scaled = step * 10 ** d
        if abs(scaled - round(scaled)) < 1e-6 * max(1.0, scaled):
            return d
    return 6


def _tick_label(v: float, step: float) -> str:
    if step >= 1000 and v != 0:  # the whole axis in thousands: 2.5k 5k 7.5k 10k
        return f"{v / 1000:g}k"
    return f"{v:.{_decimals(step)}f}"


Bucket = tuple[float, "float | None", "float | None", "float | None"]


def downsample(points: list[tuple[float, float | None]], limit: int) -> list[Bucket]:
    """At most ``limit`` buckets of consecutive points: ``(x, mean, low, high)``; no value in a bucket is a gap.

    The mean draws the line and low..high a band around it, so one bad
    window among thousands still shows (as the band's edge) without
    turning a noisy series into a solid block.
    """
    if len(points) <= limit:
        return [(x, y, y, y) for x, y in points]
    out: list[Bucket] = []
    size = len(points) / limit
    for b in range(limit):
        chunk = points[int(b * size):int((b + 1) * size)]
        if not chunk:
            continue
        vals = [y for _, y in chunk if y is not None]
        x = (chunk[0][0] + chunk[-1][0]) / 2
        out.append((x, sum(vals) / len(vals), min(vals), max(vals)) if vals else (x, None, None, None))
    return out


def _segments(points: list[tuple[float, Any]]) -> list[list[tuple[float, Any]]]:
    segs: list[list[tuple[float, Any]]] = [[]]
    for x, y in points:
        if y is None:
            if segs[-1]:
                segs.append([])
        else:
            segs[-1].append((x, y))
    return [s for s in segs if s]


def _legend(items: Iterable[tuple[str, str, str | None]]) -> str:
    keys = []
    for name, color, dash in items:
        style = f"border-top:3px {'dashed' if dash else 'solid'} {color}"
        keys.append(f'<span class="key"><i style="{style}"></i>{_e(name, 80)}</span>')
    return f'<div class="legend">{"".join(keys)}</div>'


def line_chart(chart_id: str, title: str, series: list[Series], *, x_label: str, y_label: str,
               x_max: float | None = None, refs: Sequence[Ref] = (), y_fmt_unit: str = "",
               subtitle: str = "") -> str:
    """A figure with an SVG line chart (axes, ticks, grid, legend); gaps where a value is missing."""
    series = [s for s in series if any(y is not None for _, y in s.points)]
    head = (f'<figcaption><span class="title">{_e(title, 160)}</span>'
            + (f'<span class="sub">{subtitle}</span>' if subtitle else "") + "</figcaption>")
    if not series:
        return f'<figure class="chart" id="{chart_id}">{head}<p class="empty">no data</p></figure>'
    longest = max(len(s.points) for s in series)
    bands = len(series) <= 3  # an envelope per series stays readable for a few series only
    budget = max(30, MAX_POINTS_PER_CHART // (len(series) * (3 if bands else 1)))
    buckets = {id(s): downsample(s.points, budget) for s in series}
    reduced = longest > budget
    x_unit = x_label[x_label.find("(") + 1:x_label.find(")")] if "(" in x_label else ""
    xs = [b[0] for bs in buckets.values() for b in bs]
    ys = [v for bs in buckets.values() for b in bs for v in ((b[2], b[3]) if bands else (b[1],)) if v is not None]
    x_lo, x_hi = 0.0, max(x_max or 0.0, max(xs), 1e-9)
    y_hi_data = max(ys) if ys else 1.0
    y_lo = min(0.0, min(ys))
    shown_refs, off_scale = [], []
    for r in refs:
        (shown_refs if r.value <= max(2 * y_hi_data, 1e-9) else off_scale).append(r)
    y_hi = max([y_hi_data, *[r.value for r in shown_refs]]) * 1.05 or 1.0
    yt = _ticks(y_lo, y_hi)
    xt = _ticks(x_lo, x_hi, 6)
    y_lo, y_hi = yt[0], yt[-1]
    x_hi = max(x_hi, xt[-1]) if xt[-1] <= x_hi * 1.15 else x_hi
    xt = [t for t in xt if t <= x_hi + 1e-9]
    pw, ph = _W - _ML - _MR, _H - _MT - _MB

    def sx(x: float) -> float:
        return _ML + (x - x_lo) / (x_hi - x_lo) * pw

    def sy(y: float) -> float:
        return _MT + ph - (y - y_lo) / (y_hi - y_lo) * ph

    out = [f'<svg class="plot line" id="{chart_id}-svg" viewBox="0 0 {_W} {_H}" role="img" '
           f'aria-label="{_e(title, 160)}" preserveAspectRatio="xMidYMid meet">']
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
    for t in yt:
        y = sy(t)
        out.append(f'<line class="grid" x1="{_ML}" x2="{_W - _MR}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{_ML - 6}" y="{y + 3.5:.1f}" text-anchor="end">'
                   f'{_tick_label(t, ystep)}</text>')
    for t in xt:
        x = sx(t)
        out.append(f'<line class="tickmark" x1="{x:.1f}" x2="{x:.1f}" y1="{_MT + ph}" y2="{_MT + ph + 4}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{_MT + ph + 16}" text-anchor="middle">'
                   f'{_tick_label(t, xstep)}</text>')
    out.append(f'<line class="axis" x1="{_ML}" x2="{_W - _MR}" y1="{_MT + ph}" y2="{_MT + ph}"/>'
               f'<line class="axis" x1="{_ML}" x2="{_ML}" y1="{_MT}" y2="{_MT + ph}"/>'
               f'<text class="axis-label" x="{_ML + pw / 2:.1f}" y="{_H - 6}" text-anchor="middle">'
               f'{_e(x_label)}</text>'
               f'<text class="axis-label" transform="translate(14 {_MT + ph / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{_e(y_label)}</text>')
    for r in shown_refs:
        y = sy(r.value)
        out.append(f'<line class="ref" x1="{_ML}" x2="{_W - _MR}" y1="{y:.1f}" y2="{y:.1f}" stroke="{r.color}"/>'
                   f'<text class="ref-label" x="{_W - _MR - 4}" y="{y - 4:.1f}" text-anchor="end" '
                   f'fill="{r.color}">{_e(r.label, 60)}</text>')
    if reduced and bands:
        for s in series:
            for seg in _segments([(b[0], None if b[2] is None else (b[2], b[3])) for b in buckets[id(s)]]):
                upper = " ".join(f"{sx(x):.1f},{sy(hi):.1f}" for x, (_, hi) in seg)
                lower = " ".join(f"{sx(x):.1f},{sy(lo):.1f}" for x, (lo, _) in reversed(seg))
                out.append(f'<polygon class="band" points="{upper} {lower}" fill="{s.color}"/>')
    for s in series:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        line = [(b[0], b[1]) for b in buckets[id(s)]]
        n = sum(1 for _, y in line if y is not None)
        for seg in _segments(line):
            pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in seg)
            out.append(f'<polyline class="series" data-series="{_e(s.name, 80)}" points="{pts}" '
                       f'stroke="{s.color}" stroke-width="{s.width}"{dash}/>')
            if n <= 60 or len(seg) == 1:
                for x, y in seg:
                    out.append(f'<circle class="marker" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.6" fill="{s.color}">'
                               f'<title>{_e(s.name, 80)}: {y:.4g} {_e(y_fmt_unit)} at {x:.4g} '
                               f'{_e(x_unit)}</title></circle>')
    out.append("</svg>")
    legend = _legend([(s.name, s.color, s.dash) for s in series]
                     + [(f"{r.label}", r.color, "4 3") for r in shown_refs])
    extra = (f'<p class="note">off the scale: {_e(", ".join(r.label for r in off_scale))}</p>' if off_scale else "")
    if reduced:
        figure_attrs = f' data-windows-per-point="{math.ceil(longest / budget)}"'
    else:
        figure_attrs = ""
    return f'<figure class="chart" id="{chart_id}"{figure_attrs}>{head}{legend}{"".join(out)}{extra}</figure>'


def _reduction_note(n_windows: int, charts: str) -> str:
    """Said once per section: what a point means when a plot has fewer points than the run has windows."""
    if "data-windows-per-point" not in charts:
        return ""
    return (f'<p class="note">{n_windows:,} windows: where a plot has fewer points than that, each point is the '
            'mean of consecutive windows and the shaded band (on plots of up to three lines) spans their lowest to '
            'highest value.</p>')


def bar_chart(chart_id: str, title: str, groups: list[tuple[str, dict[str, float | None]]], *,
              keys: Sequence[str], colors: dict[str, str], unit: str) -> str:
    """Horizontal grouped bars (one group per label, one bar per key) with value labels."""
    head = f'<figcaption><span class="title">{_e(title, 160)}</span></figcaption>'
    vals = [v for _, g in groups for v in g.values() if v is not None]
    if not groups or not vals:
        return f'<figure class="chart wide" id="{chart_id}">{head}<p class="empty">no data</p></figure>'
    bar_h, gap = 9, 12
    label_w = min(230, 14 + 6.6 * max(len(name[:32]) for name, _ in groups))
    w = 980
    top, bottom = 10, 40
    group_h = bar_h * len(keys) + gap
    h = top + bottom + group_h * len(groups)
    ticks = _ticks(0.0, max(vals) * 1.08)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    x0, x1 = label_w, w - 70
    hi = ticks[-1]

    def sx(v: float) -> float:
        return x0 + v / hi * (x1 - x0)

    out = [f'<svg class="plot bars" id="{chart_id}-svg" viewBox="0 0 {w} {h}" role="img" '
           f'aria-label="{_e(title, 160)}">']
    for t in ticks:
        x = sx(t)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{h - bottom}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{h - bottom + 16}" text-anchor="middle">'
                   f'{_tick_label(t, step)}</text>')
    out.append(f'<text class="axis-label" x="{(x0 + x1) / 2:.1f}" y="{h - 6}" text-anchor="middle">'
               f'{_e(unit)}</text>')
    for gi, (name, g) in enumerate(groups):
        y = top + gi * group_h + gap / 2
        out.append(f'<text class="cat" x="{x0 - 8}" y="{y + bar_h * len(keys) / 2 + 4:.1f}" text-anchor="end">'
                   f'<title>{_e(name)}</title>{_e(name, 32)}</text>')
        for ki, k in enumerate(keys):
            v = g.get(k)
            by = y + ki * bar_h
            if v is None:
                out.append(f'<text class="val" x="{x0 + 4}" y="{by + bar_h - 1:.1f}">{k}: no data</text>')
                continue
            width = max(0.5, sx(v) - x0)
            out.append(f'<rect class="bar" data-key="{k}" x="{x0}" y="{by:.1f}" width="{width:.1f}" '
                       f'height="{bar_h - 1}" fill="{colors[k]}"><title>{_e(name, 80)} {k}: '
                       f'{v:.4g} {_e(unit)}</title></rect>'
                       f'<text class="val" x="{x0 + width + 4:.1f}" y="{by + bar_h - 1.5:.1f}">{v:.4g}</text>')
    out.append(f'<line class="axis" x1="{x0}" x2="{x0}" y1="{top}" y2="{h - bottom}"/></svg>')
    legend = _legend([(k, colors[k], None) for k in keys])
    return f'<figure class="chart wide" id="{chart_id}">{head}{legend}{"".join(out)}</figure>'


def _strip(cells: list[bool | None], title: str) -> str:
    """Per-window pass/fail/no-data cells (buckets when there are many windows: a fail anywhere shows)."""
    if not cells:
        return NA
    n = len(cells)
    buckets = min(n, MAX_STRIP_CELLS)
    size = n / buckets
    w = max(3.0, min(14.0, 240 / buckets))
    out = [f'<svg class="strip" viewBox="0 0 {buckets * w:.0f} 14" width="{buckets * w:.0f}" height="14" '
           f'role="img" aria-label="{_e(title)}">']
    for b in range(buckets):
        lo, hi = int(b * size), max(int(b * size) + 1, int((b + 1) * size))
        chunk = cells[lo:hi]
        state = "fail" if False in chunk else ("pass" if True in chunk else "nodata")
        span = f"window {lo}" if hi - lo == 1 else f"windows {lo}–{hi - 1}"
        out.append(f'<rect class="cell {state}" x="{b * w:.1f}" y="0" width="{w - 1:.1f}" height="14">'
                   f'<title>{span}: {state.replace("nodata", "no data")}</title></rect>')
    out.append("</svg>")
    return "".join(out)


# -- sections ------------------------------------------------------------------------------------

_SLO_PCT = re.compile(r"p\(\s*(\d+(?:\.\d+)?)\s*\)\s*(<=|<)\s*(-?\d+(?:\.\d+)?)")
_SLO_UPPER = re.compile(r"(<=|<)\s*(-?\d+(?:\.\d+)?)")


def _timeline(summary: Summary) -> tuple[list[float], str, float | None]:
    """Each window's x (its midpoint in elapsed time), the axis label with its unit, and the axis extent.

    Windows without timestamps are placed by ``window_s``; without that
    either, by their index (and the axis says so).
    """
    windows = summary.windows
    origin = summary.started_at if summary.started_at is not None else next(
        (w.start for w in windows if w.start is not None), None)
    timed = [(w.start, w.end) for w in windows if w.start is not None and w.end is not None]
    if origin is not None and len(timed) == len(windows):
        mids = [(a + b) / 2 - origin for a, b in timed]
        span = max([b - origin for _, b in timed] + [(summary.ended_at or origin) - origin])
    elif summary.window_s:
        mids = [(i + 0.5) * summary.window_s for i in range(len(windows))]
        span = len(windows) * summary.window_s
    else:
        return [float(i) for i in range(len(windows))], "window", float(max(1, len(windows) - 1))
    if span <= 180:
        div, label = 1.0, "elapsed (s)"
    elif span <= 3 * 3600:
        div, label = 60.0, "elapsed (min)"
    else:
        div, label = 3600.0, "elapsed (h)"
    return [m / div for m in mids], label, span / div


def _section(sec_id: str, title: str, body: str, intro: str = "") -> str:
    intro_html = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{sec_id}"><h2>{_e(title)}</h2>{intro_html}{body}</section>'


def _header(ev: Evidence) -> str:
    s = ev.summary
    status = s.status or "unknown"
    kind = {"completed": "ok", "halted": "bad", "aborted": "bad", "interrupted": "warn"}.get(status, "muted")
    actual = (s.ended_at - s.started_at) if s.started_at is not None and s.ended_at is not None else None
    if s.verdict is None or s.verdict.go is None:
        verdict = ('<div class="verdict none"><span class="big">not evaluated</span>'
                   '<span>run <code>python -m engine readiness RUN_DIR</code></span></div>')
    elif s.verdict.go:
        verdict = '<div class="verdict go" id="verdict"><span class="big">GO</span><span>readiness verdict</span></div>'
    else:
        verdict = ('<div class="verdict nogo" id="verdict"><span class="big">NO-GO</span>'
                   '<span>readiness verdict</span></div>')
    if actual is not None and s.target_duration_s:
        ratio = actual / s.target_duration_s
        bar_kind = "ok" if abs(ratio - 1) <= 0.05 else ("warn" if ratio > 1 else "bad")
        progress = (f'<div class="progress {bar_kind}" title="{ratio * 100:.1f}% of target">'
                    f'<i style="width:{min(100.0, ratio * 100):.1f}%"></i></div>'
                    f'<span>{_duration(actual)} of {_duration(s.target_duration_s)} target '
                    f'({ratio * 100:.1f}%)</span>')
    elif actual is None:
        progress = f'<span>duration not recorded (target {_duration(s.target_duration_s)})</span>'
    else:
        progress = f'<span>{_duration(actual)} (no target recorded)</span>'
    halt = (f'<p class="callout bad"><b>Halted:</b> {_e(s.halt_reason, 1000)}</p>' if s.halt_reason else "")
    meta = [("Started", _utc(s.started_at)), ("Ended", _utc(s.ended_at)),
            ("Mode", _e(s.mode or "—")), ("Workers", _e(s.workers if s.workers is not None else "—")),
            ("Window", _duration(s.window_s)), ("Windows", str(len(s.windows)))]
    if s.cycles is not None:
        meta.append(("Batch cycles", f"{s.cycles:,}"))
    meta_html = "".join(f'<div><dt>{k}</dt><dd>{v}</dd></div>' for k, v in meta)
    return (f'<header id="run-header"><div class="head-main"><div class="eyebrow">Drover soak evidence</div>'
            f'<h1><span class="run-id">{_e(s.run_id, 120)}</span> {_badge(status, kind)}</h1>'
            f'<div class="duration">{progress}</div><dl class="meta">{meta_html}</dl>{halt}</div>{verdict}</header>')


def _kpis(ev: Evidence) -> str:
    agg = ev.summary.aggregate
    cards = []

    def card(label: str, value: str, sub: str = "", kind: str = "") -> None:
        cards.append(f'<div class="kpi {kind}"><div class="label">{label}</div><div class="value">{value}</div>'
                     f'<div class="sub">{sub}</div></div>')

    if agg is None:
        return '<div class="kpis"><p class="empty">aggregate figures not recorded</p></div>'
    total = (agg.passed or 0) + (agg.failed or 0)
    card("Jobs", f"{total:,}", f"{agg.passed or 0:,} passed · {agg.failed or 0:,} failed")
    card("Error rate", _pct(agg.error_rate), "whole run",
         "bad" if (agg.error_rate or 0) > 0.05 else ("warn" if (agg.error_rate or 0) > 0.01 else ""))
    per = [v for v in agg.throughput_per_worker.values() if v is not None]
    card("Throughput", _fmt(agg.throughput, "jobs/s", unit_class="unit"),
         f"{len(per)} worker{'s' if len(per) != 1 else ''} · {_fmt(sum(per) / len(per), 'jobs/s')} each"
         if per else "per worker: no data")
    flows = [(k, v.get("p95")) for k, v in agg.latency.items() if k.startswith("flow:") and v.get("p95") is not None]
    if flows:
        name, p95 = max(flows, key=lambda kv: kv[1])
        card("Slowest flow p95", _fmt(p95, "ms", unit_class="unit"), _e(name[5:], 40))
    else:
        card("Slowest flow p95", NA)
    if ev.alerts is None:
        card("Alerts", "—", "not recorded")
    else:
        by = {sev: sum(1 for a in ev.alerts if a.severity == sev) for sev in ("critical", "warn", "info")}
        card("Alerts", f"{len(ev.alerts):,}", f"{by['critical']} critical · {by['warn']} warn · {by['info']} info",
             "bad" if by["critical"] else ("warn" if by["warn"] else ""))
    safety = [("unowned uses", agg.unowned_uses), ("duplicates", agg.duplicates),
              ("invalid transitions", agg.invalid_transitions)]
    bad = any(v for _, v in safety)
    card("Safety", "clean" if not bad and all(v is not None for _, v in safety) else ("breach" if bad else "—"),
         " · ".join(f"{_fmt(v)} {n}" for n, v in safety), "bad" if bad else "")
    card("Worker restarts", _fmt(agg.worker_restarts), f"idle {_fmt(agg.idle_workers_s, 's')} · "
                                                        f"queued {_fmt(agg.queued)}",
         "warn" if (agg.worker_restarts or 0) > 3 else "")
    return f'<div class="kpis" id="kpis">{"".join(cards)}</div>'


def _verdict_section(ev: Evidence) -> str:
    v = ev.summary.verdict
    if v is None:
        return _section("readiness", "Readiness verdict",
                        '<p class="empty">not evaluated: run <code>python -m engine readiness '
                        f'{_e(ev.run_dir)}</code></p>')
    rows = "".join(
        f'<tr class="{"waived" if c.waived else ("fail" if c.ok is False else "")}"><td>{_e(c.name)}</td>'
        f'<td class="num">{_e(c.measured) if c.measured else _fmt_any(c.value)}</td>'
        f'<td class="num">{_fmt_any(c.limit)}</td>'
        f'<td>{_ok_badge(c.ok, waived=c.waived)}</td><td>{_e(c.reason or "", 500)}</td></tr>'
        for c in v.criteria)
    table = (f'<table id="readiness-criteria"><thead><tr><th>Criterion</th><th class="num">Measured</th>'
             f'<th class="num">Limit</th><th>Result</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>'
             if v.criteria else "")
    if v.reasons:
        table += (f'<h3>{"Why no-go" if v.go is False else "Reasons"}</h3><ul id="verdict-reasons">'
                  + "".join(f"<li>{_e(r, 1000)}</li>" for r in v.reasons) + "</ul>")
    elif not v.criteria:
        table += ('<p class="empty" id="verdict-reasons">'
                  + ("no reason against going live recorded" if v.go else "no criteria recorded") + "</p>")
    if not v.criteria:
        table += ('<p class="note">the soak\'s own verdict; the full readiness criteria come from '
                  f'<code>python -m engine readiness {_e(ev.run_dir)}</code></p>')
    risks = []
    for r in v.accepted_risks:
        if isinstance(r, dict):
            name = r.get("name") or r.get("criterion") or r.get("risk") or "?"
            reason = r.get("reason") or r.get("why") or ""
            risks.append(f"<li><b>{_e(name)}</b>: {_e(reason, 1000)}</li>")
        else:
            risks.append(f"<li>{_e(r, 1000)}</li>")
    risk_html = (f'<h3>Accepted risks</h3><ul id="accepted-risks">{"".join(risks)}</ul>' if risks
                 else '<h3>Accepted risks</h3><p class="empty" id="accepted-risks">none: no criterion waived</p>')
    return _section("readiness", "Readiness verdict", table + risk_html)


def _latency_section(ev: Evidence) -> str:
    s = ev.summary
    if not s.windows:
        return _section("latency-over-time", "Latency over time", '<p class="empty">no windows recorded</p>')
    xs, x_label, x_max = _timeline(s)
    flows = sorted({k for w in s.windows for k in w.latency if k.startswith("flow:")}, key=_natural)
    if not flows:
        return _section("latency-over-time", "Latency over time", '<p class="empty">no flow latency recorded</p>')
    note = ""
    if len(flows) > MAX_FLOW_CHARTS:
        agg = s.aggregate.latency if s.aggregate else {}
        flows = sorted(flows, key=lambda f: -((agg.get(f) or {}).get("p95") or 0.0))[:MAX_FLOW_CHARTS]
        note = (f'<p class="note">{MAX_FLOW_CHARTS} slowest flows (aggregate p95) of '
                f'{len({k for w in s.windows for k in w.latency if k.startswith("flow:")})}; all are in '
                'summary.json</p>')
        flows.sort(key=_natural)
    slos = _slo_defs(ev)
    charts = []
    for i, flow in enumerate(flows):
        series = [Series(p, PCT_COLORS[p], [(x, w.latency.get(flow, {}).get(p)) for x, w in zip(xs, s.windows)],
                         width=2.2 if p == "p99" else 1.8) for p in ("p50", "p95", "p99")]
        refs = []
        for metric, expr in slos:
            m = _SLO_PCT.search(expr)
            if metric == flow and m and float(m.group(1)) in (50.0, 95.0, 99.0):
                refs.append(Ref(float(m.group(3)), f"SLO p({m.group(1).rstrip('0').rstrip('.')}) "
                                                   f"{m.group(2)} {m.group(3)} ms",
                                PCT_COLORS.get(f"p{int(float(m.group(1)))}", "#c0392b")))
        n = sum(int(w.latency.get(flow, {}).get("n") or 0) for w in s.windows)
        charts.append(line_chart(f"latency-flow-{i}", flow[5:], series, x_label=x_label, y_label="latency (ms)",
                                 x_max=x_max, refs=refs, y_fmt_unit="ms", subtitle=f"{n:,} jobs"))
    body = note + _reduction_note(len(s.windows), "".join(charts)) + f'<div class="grid">{"".join(charts)}</div>'
    return _section("latency-over-time", "Latency over time", body,
                    "p50 / p95 / p99 job latency per flow, one point per window; dashed lines are SLO budgets.")


def _phase_section(ev: Evidence) -> str:
    agg = ev.summary.aggregate
    phases = {k: v for k, v in (agg.latency if agg else {}).items() if k.startswith("phase:")}
    if not phases:
        return _section("phase-percentiles", "Per-phase percentiles",
                        '<p class="empty">no phase latency recorded</p>')
    names = sorted(phases, key=lambda k: (-(phases[k].get("p95") or 0.0), k))
    note = ""
    if len(names) > MAX_PHASES:
        note = f'<p class="note">{MAX_PHASES} slowest phases of {len(names)}</p>'
        names = names[:MAX_PHASES]
    groups = [(k[6:], {p: phases[k].get(p) for p in ("p50", "p95", "p99")}) for k in names]
    chart = bar_chart("phase-percentiles-chart", "Whole run, slowest phase first", groups,
                      keys=("p50", "p95", "p99"), colors=PCT_COLORS, unit="latency (ms)")
    return _section("phase-percentiles", "Per-phase percentiles", note + chart,
                    "Step latency by navigation phase (step type) over the whole run.")


def _worker_series(names: Iterable[str], values: dict[str, list[float | None]], xs: list[float]) -> list[Series]:
    return [Series(n, PALETTE[i % len(PALETTE)], list(zip(xs, values[n])))
            for i, n in enumerate(sorted(names, key=_natural))]


def _throughput_section(ev: Evidence) -> str:
    s = ev.summary
    if not s.windows:
        return _section("throughput", "Throughput and errors", '<p class="empty">no windows recorded</p>')
    xs, x_label, x_max = _timeline(s)
    workers = {k for w in s.windows for k in w.throughput_per_worker}
    per = {n: [w.throughput_per_worker.get(n) for w in s.windows] for n in workers}
    series = _worker_series(workers, per, xs)
    series.append(Series("all workers", "#333333", [(x, w.throughput) for x, w in zip(xs, s.windows)], "6 4", 2.2))
    tp = line_chart("throughput-per-worker", "Throughput per worker", series, x_label=x_label,
                    y_label="throughput (jobs/s)", x_max=x_max, y_fmt_unit="jobs/s")
    refs = [Ref(5.0, "readiness 5% (default)", "#efb118"), Ref(10.0, "critical 10% (default)", "#e0403a")]
    for metric, expr in _slo_defs(ev):
        m = _SLO_UPPER.search(expr)
        if (metric == "error_rate" or expr.strip().startswith("error_rate")) and m:
            refs.append(Ref(float(m.group(2)) * 100, f"SLO {m.group(1)} {float(m.group(2)) * 100:g}%", "#a463f2"))
    er = line_chart("error-rate", "Error rate", [
        Series("error rate", "#e0403a", [(x, None if w.error_rate is None else w.error_rate * 100)
                                         for x, w in zip(xs, s.windows)])],
        x_label=x_label, y_label="failed jobs (%)", x_max=x_max, refs=refs, y_fmt_unit="%")
    return _section("throughput", "Throughput and errors",
                    _reduction_note(len(s.windows), tp + er) + f'<div class="grid">{tp}{er}</div>')


def _slo_defs(ev: Evidence) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    s = ev.summary
    for w in ([s.aggregate] if s.aggregate else []) + list(s.windows):
        for r in w.slo:
            seen.setdefault((r.metric, r.expr), None)
    return list(seen)


def _slo_unit(metric: str) -> str:
    if metric.startswith(("flow:", "phase:")):
        return "ms"
    if "throughput" in metric:
        return "jobs/s"
    return ""


def _slo_section(ev: Evidence) -> str:
    s = ev.summary
    defs = _slo_defs(ev)
    if not defs:
        body = '<p class="empty">no SLO evaluated</p>'
        if ev.slo_file is None:
            body += '<p class="note">slo.json: not recorded</p>'
        return _section("slo-status", "SLO status", body)
    agg = {(r.metric, r.expr): r for r in (s.aggregate.slo if s.aggregate else ())}
    per_window = [{(r.metric, r.expr): r for r in w.slo} for w in s.windows]
    rows = []
    for metric, expr in defs:
        cells: list[bool | None] = []
        for pw in per_window:
            r = pw.get((metric, expr))
            cells.append(None if r is None else r.ok)
        passed, failed = cells.count(True), cells.count(False)
        a = agg.get((metric, expr))
        a_ok = None if a is None else a.ok
        aborts = any(r.abort_on_fail for w in ([s.aggregate] if s.aggregate else []) + list(s.windows)
                     for r in w.slo if (r.metric, r.expr) == (metric, expr))
        rows.append(
            f'<tr class="{"fail" if a_ok is False or failed else ""}"><td><code>{_e(metric)}</code></td>'
            f'<td><code>{_e(expr)}</code>{" " + _badge("abort on fail", "warn") if aborts else ""}</td>'
            f'<td class="num">{_fmt(a.value if a else None, _slo_unit(metric), 4)}</td><td>{_ok_badge(a_ok)}</td>'
            f'<td class="num">{passed}</td><td class="num">{failed}</td><td class="num">{len(cells) - passed - failed}'
            f'</td><td>{_strip(cells, f"{metric} {expr} per window")}</td></tr>')
    table = (f'<table id="slo-status-table"><thead><tr><th>Metric</th><th>Budget</th><th class="num">Whole run'
             f'</th><th>Result</th><th class="num">Windows pass</th><th class="num">fail</th>'
             f'<th class="num">no data</th><th>Per window</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    detail = ""
    if 0 < len(s.windows) <= 48:
        head = "".join(f"<th class=\"num\">w{w.index}</th>" for w in s.windows)
        body_rows = []
        for metric, expr in defs:
            tds = []
            for pw in per_window:
                r = pw.get((metric, expr))
                if r is None or (r.value is None and r.ok is None):
                    tds.append('<td class="num nodata">–</td>')
                else:
                    tds.append(f'<td class="num {"pass" if r.ok else ("fail" if r.ok is False else "nodata")}">'
                               f'{_fmt(r.value, digits=4)}</td>')
            body_rows.append(f"<tr><td><code>{_e(metric)}</code> <code>{_e(expr)}</code></td>{''.join(tds)}</tr>")
        detail = (f'<details><summary>Values per window</summary><div class="scroll"><table id="slo-per-window">'
                  f'<thead><tr><th>SLO</th>{head}</tr></thead><tbody>{"".join(body_rows)}</tbody></table></div>'
                  f'</details>')
    slo_file = ""
    if ev.slo_file is not None:
        text = json.dumps(ev.slo_file, indent=2, default=str)
        slo_file = f'<details><summary>SLO file (slo.json)</summary><pre>{_e(text, 20000)}</pre></details>'
    else:
        slo_file = '<p class="note">slo.json: not recorded</p>'
    return _section("slo-status", "SLO status", table + detail + slo_file,
                    "Each budget evaluated per window and over the whole run.")


def _trace_hint(ident: str, run_id: str) -> str:
    """The command that expands ``ident``: a correlation id names its run in its first link, which ``trace`` reads."""
    if "/" in ident:
        return f"python -m engine trace {ident}"
    return f"python -m engine trace {ident} --run {run_id}"


def _failure_section(ev: Evidence) -> str:
    if ev.failures is None:
        return _section("failures", "Failure matrix", '<p class="empty" id="failure-matrix">not recorded</p>')
    if not any(r.count for r in ev.failures):
        listed = ", ".join(r.category for r in ev.failures)
        return _section("failures", "Failure matrix", '<p class="empty" id="failure-matrix">no failures recorded'
                        + (f" (categories checked: {_e(listed, 200)})" if listed else "") + "</p>")
    rows = []
    for r in ev.failures[:MAX_FAILURE_ROWS]:
        if r.count == 0:
            rows.append(f'<tr class="zero"><td>{_e(r.category, 60)}</td><td class="num">0</td>'
                        '<td colspan="6">none</td></tr>')
            continue
        examples = "".join(_example(x, ev.summary.run_id) for x in r.examples[:MAX_EXAMPLES])
        if len(r.examples) > MAX_EXAMPLES:
            examples += f'<div class="note">+{len(r.examples) - MAX_EXAMPLES} more in failure_matrix.json</div>'
        chips = "".join(f'<span class="chip">{_e(label, 60)}{f" ×{n:,}" if n is not None else ""}</span>'
                        for label, n in r.containment) or NA
        if r.resolved:
            status = _badge("resolved", "ok")
        elif r.resolved is False:
            status = _badge("unresolved", "bad") + (
                f'<div class="note">{r.unresolved_jobs:,} job(s) never passed</div>' if r.unresolved_jobs else "")
        else:
            status = _badge("not job-linked", "muted")
        cause = (f'<code>{_e(r.error_class, 80)}</code> ' if r.error_class else "") + _e(r.root_cause or "—", 600)
        jobs = f'<div class="note">{r.jobs:,} job(s)</div>' if r.jobs else ""
        rows.append(f'<tr class="{"fail" if r.resolved is False else ""}"><td><b>{_e(r.category, 60)}</b></td>'
                    f'<td class="num">{_fmt(r.count)}{jobs}</td><td>{_utc(r.first_seen)}</td>'
                    f'<td>{_utc(r.last_seen)}</td><td>{cause}</td><td>{chips}</td><td>{status}</td>'
                    f'<td>{examples or NA}</td></tr>')
    more = (f'<p class="note">{MAX_FAILURE_ROWS} of {len(ev.failures)} rows shown</p>'
            if len(ev.failures) > MAX_FAILURE_ROWS else "")
    table = (f'<div class="scroll tall"><table id="failure-matrix"><thead><tr><th>Category</th>'
             f'<th class="num">Count</th><th>First seen</th><th>Last seen</th><th>Root cause</th><th>Containment</th>'
             f'<th>Status</th><th>Examples: expand with</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    return _section("failures", "Failure matrix", table + more,
                    "Every failure by category; each example expands across the four streams with the command shown.")


def _example(ident: str, run_id: str) -> str:
    """A correlation id as the trace command that expands it; a stream location (a torn record) as itself."""
    if re.search(r"\.jsonl:\d+$", ident):
        return f'<div class="example"><code class="hint">at {_e(ident, 300)}</code></div>'
    return (f'<div class="example" title="{_e(ident, 200)}"><code class="hint">'
            f'{_e(_trace_hint(ident, run_id), 400)}</code></div>')


def _resource_section(ev: Evidence) -> str:
    s = ev.summary
    if not s.windows:
        return _section("resources", "Resource trends", '<p class="empty">no windows recorded</p>')
    xs, x_label, x_max = _timeline(s)
    workers = {k for w in s.windows for k in w.resources}
    charts = []
    # USS (memory unique to the browser's processes) when the soak recorded it: summed RSS counts shared pages
    # once per process, so it overstates and blurs a leak.
    uss = any(w.resources.get(n, {}).get("browser_uss_mb") is not None for w in s.windows for n in workers)
    memory = (("browser_uss_mb", "Browser memory (USS) per worker", "USS (MB)") if uss
              else ("browser_rss_mb", "Browser RSS per worker", "RSS (MB)"))
    for key, title, unit in (memory,
                             ("fds", "Open file descriptors per worker", "file descriptors"),
                             ("children", "Browser child processes per worker", "processes")):
        vals = {n: [w.resources.get(n, {}).get(key) for w in s.windows] for n in workers}
        charts.append(line_chart(f"resource-{key.replace('_', '-')}", title, _worker_series(workers, vals, xs),
                                 x_label=x_label, y_label=unit, x_max=x_max, y_fmt_unit=unit))
    sup = [w.supervisor_rss_mb for w in s.windows]
    known = [v for v in sup if v is not None]
    growth = f"growth {known[-1] - known[0]:+.1f} MB over the run (readiness limit 100 MB)" if len(known) > 1 else ""
    charts.append(line_chart("resource-supervisor-rss", "Supervisor RSS",
                             [Series("supervisor", "#333333", list(zip(xs, sup)))],
                             x_label=x_label, y_label="RSS (MB)", x_max=x_max, y_fmt_unit="MB",
                             subtitle=_e(growth)))
    return _section("resources", "Resource trends",
                    _reduction_note(len(s.windows), "".join(charts)) + f'<div class="grid">{"".join(charts)}</div>',
                    "Per window, for leak detection: a line that keeps rising is a leak.")


def _windows_section(ev: Evidence) -> str:
    s = ev.summary
    if not s.windows:
        return _section("windows", "Windows", '<p class="empty">no windows recorded</p>')
    shown = list(s.windows)
    note = ""
    if len(shown) > MAX_WINDOW_ROWS:
        shown = sorted(sorted(shown, key=lambda w: -(w.error_rate or 0.0))[:MAX_WINDOW_ROWS // 2],
                       key=lambda w: w.index)
        note = (f'<p class="note">the {len(shown)} windows with the highest error rate of {len(s.windows):,}; '
                'every window is in summary.json</p>')

    lengths = {None if w.start is None or w.end is None else round(w.end - w.start, 1) for w in s.windows}
    show_length = len(lengths) > 1  # all alike: the header's "Window" says it

    def row(w: Window, label: str) -> str:
        ok = sum(1 for r in w.slo if r.ok is True)
        bad = sum(1 for r in w.slo if r.ok is False)
        slo = f"{ok}/{ok + bad}" if w.slo else "—"
        cls = "fail" if bad or (w.error_rate or 0) > 0.05 or (w.duplicates or 0) or (w.unowned_uses or 0) else ""
        return (f'<tr class="{cls}"><td>{label}</td><td>{_utc_short(w.start)}</td>'
                + (f'<td class="num">{_duration(None if w.start is None or w.end is None else w.end - w.start)}</td>'
                   if show_length else "") +
                f'<td class="num">{_fmt(w.passed)}</td><td class="num">{_fmt(w.failed)}</td>'
                f'<td class="num">{_pct(w.error_rate)}</td><td class="num">{_fmt(w.throughput)}</td>'
                f'<td class="num">{_fmt(w.worker_restarts)}</td><td class="num">{_fmt(w.duplicates)}</td>'
                f'<td class="num">{_fmt(w.unowned_uses)}</td><td class="num">{_fmt(w.invalid_transitions)}</td>'
                f'<td class="num">{_fmt(w.idle_workers_s)}</td><td class="num">{_fmt(w.queued)}</td>'
                f'<td class="num">{_fmt(w.supervisor_rss_mb)}</td><td class="num">{slo}</td></tr>')

    rows = [row(w, f"w{w.index}") for w in shown]
    if s.aggregate is not None:
        rows.append(row(s.aggregate, "<b>whole run</b>").replace("<tr class=\"", "<tr class=\"total ", 1))
    table = ('<div class="scroll tall"><table id="windows-table" class="compact"><thead><tr>'
             '<th>Window</th><th>Start</th>'
             + ('<th class="num">Length</th>' if show_length else "") +
             '<th class="num">Passed</th><th class="num">Failed</th>'
             '<th class="num">Error rate</th><th class="num">Jobs/s</th><th class="num">Restarts</th>'
             '<th class="num">Duplicates</th><th class="num">Unowned</th><th class="num">Invalid</th>'
             '<th class="num">Idle s</th><th class="num">Queued</th><th class="num">Sup. MB</th>'
             f'<th class="num">SLO ok</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    return _section("windows", "Windows", note + table)


def _alerts_section(ev: Evidence) -> str:
    if ev.alerts is None:
        return _section("alerts", "Alerts", '<p class="empty" id="alerts-list">not recorded</p>')
    if not ev.alerts:
        return _section("alerts", "Alerts", '<p class="empty" id="alerts-list">no alerts raised</p>')
    rank = {"critical": 0, "warn": 1, "warning": 1, "info": 2}
    shown = ev.alerts
    note = ""
    if len(shown) > MAX_ALERT_ROWS:
        keep = sorted(range(len(shown)), key=lambda i: (rank.get(shown[i].severity, 3), -i))[:MAX_ALERT_ROWS]
        shown = [shown[i] for i in sorted(keep)]
        note = (f'<p class="note">{MAX_ALERT_ROWS} of {len(ev.alerts):,} alerts shown (the most severe, then the '
                'latest); all are in alerts.jsonl</p>')
    kinds = {"critical": "bad", "warn": "warn", "warning": "warn", "info": "info"}
    rows = "".join(
        f'<tr class="sev-{_e(a.severity, 20)}"><td>{_utc(a.ts)}</td>'
        f'<td>{_badge(a.severity, kinds.get(a.severity, "muted"))}'
        f'</td><td>{_e(a.rule or "—")}</td><td><code>{_e(a.metric or "—")}</code></td>'
        f'<td class="num">{_fmt_any(a.value)}</td><td class="num">{_fmt_any(a.threshold)}</td>'
        f'<td class="num">{_fmt_any(a.window)}</td><td>{_e(a.message or "", 600)}</td></tr>' for a in shown)
    table = (f'<div class="scroll tall"><table id="alerts-list"><thead><tr><th>Time</th><th>Severity</th>'
             f'<th>Rule</th><th>Metric</th><th class="num">Value</th><th class="num">Threshold</th>'
             f'<th class="num">Window</th><th>Message</th></tr></thead><tbody>{rows}</tbody></table></div>')
    return _section("alerts", "Alerts", note + table)


_STD_FIELDS = {"ts", "level", "stream", "logger", "message", "run_id", "correlation_id", "worker", "session",
               "taskName"}


def _drilldown_timeline(records: Sequence[dict[str, Any]]) -> str:
    """Four lanes (one per stream), a dot per record at its time since the first one."""
    tss = [_num(r.get("ts")) for r in records]
    known = [t for t in tss if t is not None]
    if not known:
        return ""
    t0, span_ms = min(known), max(1.0, (max(known) - min(known)) * 1000)
    w, lane_h, left, right, top = 980, 26, 110, 20, 8
    h = top + lane_h * len(STREAMS) + 34
    ticks = _ticks(0.0, span_ms, 8)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    hi = ticks[-1]

    def sx(ms: float) -> float:
        return left + ms / hi * (w - left - right)

    out = [f'<svg class="plot timeline" id="drilldown-timeline" viewBox="0 0 {w} {h}" role="img" '
           'aria-label="drilldown timeline">']
    for i, st in enumerate(STREAMS):
        y = top + i * lane_h
        out.append(f'<rect class="lane" x="{left}" y="{y}" width="{w - left - right}" height="{lane_h - 4}"/>'
                   f'<text class="cat" x="{left - 8}" y="{y + lane_h / 2 + 2}" text-anchor="end">{st}</text>')
    for t in ticks:
        x = sx(t)
        out.append(f'<text class="tick" x="{x:.1f}" y="{h - 20}" text-anchor="middle">{_tick_label(t, step)}</text>')
    out.append(f'<text class="axis-label" x="{(left + w - right) / 2}" y="{h - 4}" text-anchor="middle">'
               'time since the first record (ms)</text>')
    lanes = {st: i for i, st in enumerate(STREAMS)}
    for r, t in list(zip(records, tss))[:2000]:
        if t is None:
            continue
        lane = lanes.get(str(r.get("stream")))
        if lane is None:
            continue
        level = str(r.get("level") or "").upper()
        color = "#e0403a" if level in ("ERROR", "CRITICAL") else ("#efb118" if level == "WARNING"
                                                                  else STREAM_COLORS[STREAMS[lane]])
        y = top + lane * lane_h + (lane_h - 4) / 2
        out.append(f'<circle class="event" cx="{sx((t - t0) * 1000):.1f}" cy="{y:.1f}" r="4.5" fill="{color}">'
                   f'<title>+{(t - t0) * 1000:.1f} ms {_e(r.get("message"), 120)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _drilldown_section(ev: Evidence) -> str:
    d = ev.drilldown
    if d is None:
        why = ("the streams were not recorded" if not any(ev.streams.values())
               else "no correlation id with records was found")
        return _section("drilldown", "Correlation drilldown", f'<p class="empty">not recorded: {why}</p>')
    records = list(d.records)
    counts = {st: sum(1 for r in records if r.get("stream") == st) for st in STREAMS}
    hint = _trace_hint(d.correlation_id, ev.summary.run_id) if d.correlation_id else ""
    intro = (f'<p><b>Correlation id</b> <code class="cid">{_e(d.correlation_id or "—", 200)}</code> '
             f'— {_e(d.reason or "")}. Expand it yourself with <code class="hint">{_e(hint, 400)}</code>.</p>'
             '<p class="counts">' + " ".join(
                 f'<span class="chip stream-{st}">{st}: {counts[st]}</span>' for st in STREAMS) + "</p>")
    tss = [_num(r.get("ts")) for r in records]
    t0 = min([t for t in tss if t is not None], default=None)
    rows = []
    for r, t in list(zip(records, tss))[:MAX_DRILLDOWN_ROWS]:
        st = str(r.get("stream") or "?")
        level = str(r.get("level") or "")
        extra = " ".join(f"{k}={v}" for k, v in r.items() if k not in _STD_FIELDS and v is not None)
        rel = f"+{(t - t0) * 1000:,.1f}" if t is not None and t0 is not None else "—"
        rows.append(f'<tr class="lvl-{_e(level.lower(), 12)}"><td class="num">{rel}</td>'
                    f'<td class="nowrap">{_clock(t)}</td>'
                    f'<td><span class="chip stream-{_e(st, 20)}">{_e(st, 20)}</span></td><td>{_e(level, 12)}</td>'
                    f'<td>{_e(r.get("worker") or "—", 40)}</td><td>{_e(r.get("message"), 300)}</td>'
                    f'<td class="fields">{_e(extra, 400)}</td></tr>')
    more = (f'<p class="note">{MAX_DRILLDOWN_ROWS} of {len(records):,} records shown; all are in drilldown.json</p>'
            if len(records) > MAX_DRILLDOWN_ROWS else "")
    table = ('<div class="scroll tall"><table id="drilldown-records"><thead><tr><th class="num">+ms</th>'
             '<th>Time (UTC)</th><th>Stream</th><th>Level</th><th>Worker</th><th>Message</th><th>Fields</th></tr>'
             f'</thead><tbody>{"".join(rows)}</tbody></table></div>')
    return _section("drilldown", "Correlation drilldown", intro + _drilldown_timeline(records) + more + table)


def _files_section(ev: Evidence) -> str:
    files = [("summary.json", True), ("alerts.jsonl", ev.alerts is not None),
             ("failure_matrix.json", ev.failures is not None), ("slo.json", ev.slo_file is not None),
             ("drilldown.json", (ev.run_dir / DRILLDOWN_FILE).is_file())]
    files += [(f"{st}.jsonl", ev.streams[st]) for st in STREAMS]
    items = "".join(f'<li>{_badge("present", "ok") if ok else _badge("not recorded", "muted")} <code>{name}</code>'
                    f'</li>' for name, ok in files)
    notes = ("<h3>Notes on the data</h3><ul>" + "".join(f"<li>{_e(n, 400)}</li>" for n in ev.notes) + "</ul>"
             if ev.notes else "")
    return _section("files", "Evidence files", f'<ul class="files">{items}</ul>{notes}'
                    f'<p class="note">rebuild with <code>python -m engine report {_e(ev.run_dir, 400)}</code></p>')


_CSS = """
:root{--fg:#1d2430;--muted:#667085;--line:#e4e7ec;--bg:#f5f6f8;--card:#fff;--ok:#18794e;--okbg:#e3f5ec;
--bad:#b42318;--badbg:#fde8e7;--warn:#b54708;--warnbg:#fef0c7;--info:#175cd3;--infobg:#e6efff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:20px 24px 48px}
code,.cid,.hint{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
h1{font-size:22px;margin:2px 0 8px;display:flex;align-items:center;gap:10px;flex-wrap:wrap}
h2{font-size:17px;margin:0 0 4px}h3{font-size:14px;margin:16px 0 6px}
header{display:flex;gap:24px;justify-content:space-between;align-items:stretch;background:var(--card);
border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin-bottom:14px}
.head-main{flex:1;min-width:0}.eyebrow{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.08em}
.run-id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
.duration{display:flex;align-items:center;gap:10px;margin:4px 0 10px;color:var(--muted)}
.progress{width:220px;height:8px;background:var(--line);border-radius:4px;overflow:hidden}
.progress i{display:block;height:100%;background:var(--ok)}.progress.bad i{background:var(--bad)}
.progress.warn i{background:var(--warn)}
dl.meta{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0}dl.meta dt{color:var(--muted);font-size:12px}
dl.meta dd{margin:0;font-weight:600}
.verdict{min-width:190px;border-radius:10px;display:flex;flex-direction:column;align-items:center;
justify-content:center;padding:10px 18px;text-align:center;color:var(--muted)}
.verdict .big{font-size:30px;font-weight:800;letter-spacing:.04em}
.verdict.go{background:var(--okbg)}.verdict.go .big{color:var(--ok)}
.verdict.nogo{background:var(--badbg)}.verdict.nogo .big{color:var(--bad)}
.verdict.none{background:var(--bg)}.verdict.none .big{font-size:18px;color:var(--muted)}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;margin:0 0 14px;font-size:13px}
nav a{color:var(--info);text-decoration:none}nav a:hover{text-decoration:underline}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin-bottom:14px}
.kpi{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--line);border-radius:8px;
padding:10px 12px}.kpi.bad{border-left-color:var(--bad)}.kpi.warn{border-left-color:var(--warn)}
.kpi .label{color:var(--muted);font-size:12px}.kpi .value{font-size:20px;font-weight:700;margin:2px 0}
.kpi .sub{color:var(--muted);font-size:12px}.kpi .unit{font-size:13px;font-weight:600;color:var(--muted)}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin-bottom:14px}
.intro{color:var(--muted);margin:0 0 10px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:14px}
figure.chart{margin:0;border:1px solid var(--line);border-radius:8px;padding:10px 12px 6px}
figure.chart.wide{grid-column:1/-1}
figcaption{display:flex;justify-content:space-between;gap:8px;margin-bottom:2px}
figcaption .title{font-weight:600;word-break:break-all}figcaption .sub{color:var(--muted);font-size:12px}
svg.plot{display:block;width:100%;height:auto;overflow:visible}
svg text{font-size:11px;fill:#475467;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg .axis-label{font-size:11.5px;fill:#344054}svg .cat{font-size:12px;fill:#1d2430}
svg .val{font-size:10px;fill:#475467}
svg .grid{stroke:#eef0f3;stroke-width:1}svg .axis,svg .tickmark{stroke:#98a2b3;stroke-width:1}
svg .ref{stroke-width:1.3;stroke-dasharray:5 4}
svg .ref-label{font-size:10.5px;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
svg polyline.series{fill:none;stroke-linejoin:round;stroke-linecap:round}svg polygon.band{opacity:.16;stroke:none}
svg .lane{fill:#f7f8fa}svg circle.event{stroke:#fff;stroke-width:1}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px;color:#475467;margin:2px 0 4px}
.legend .key{display:inline-flex;align-items:center;gap:6px}.legend i{display:inline-block;width:18px;height:0}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;font-weight:600;color:#475467;border-bottom:1px solid #d0d5dd;padding:6px 8px;
background:#fafbfc;position:sticky;top:0}
td{border-bottom:1px solid var(--line);padding:6px 8px;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.nowrap,table.compact td,table.compact th{white-space:nowrap}table.compact td,table.compact th{padding:5px 7px}
tr.fail td:first-child{box-shadow:inset 3px 0 0 var(--bad)}
tr.waived td:first-child{box-shadow:inset 3px 0 0 var(--warn)}
tr.total td{font-weight:600;background:#fafbfc}tr.zero td{color:var(--muted);padding-top:3px;padding-bottom:3px}
td.pass{background:var(--okbg)}td.fail{background:var(--badbg)}td.nodata{color:var(--muted)}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;
white-space:nowrap;vertical-align:middle}
.badge.ok{background:var(--okbg);color:var(--ok)}.badge.bad{background:var(--badbg);color:var(--bad)}
.badge.warn{background:var(--warnbg);color:var(--warn)}.badge.info{background:var(--infobg);color:var(--info)}
.badge.muted{background:#f2f4f7;color:var(--muted)}
.chip{display:inline-block;white-space:nowrap;background:#f2f4f7;border-radius:4px;padding:0 6px;
margin:1px 4px 1px 0;font-size:12px}
.chip.stream-operational{background:#e6efff}.chip.stream-performance{background:#e3f5ec}
.chip.stream-domain{background:#f1e9ff}.chip.stream-audit{background:#f4ece6}
.example{margin-bottom:3px}.example code{display:block;white-space:nowrap;font-size:11.5px}
.hint{user-select:all}
.na{color:var(--muted);font-style:italic;font-size:12px}
.empty{color:var(--muted);font-style:italic;margin:6px 0}.note{color:var(--muted);font-size:12px;margin:6px 0}
.callout{padding:8px 12px;border-radius:6px;margin:10px 0 0}.callout.bad{background:var(--badbg);color:var(--bad)}
.scroll{overflow:auto}.scroll.tall{max-height:520px}
svg.strip{vertical-align:middle}svg.strip .pass{fill:#3ca951}svg.strip .fail{fill:#e0403a}
svg.strip .nodata{fill:#d0d5dd}
td.fields{color:var(--muted);font-size:12px;word-break:break-word;max-width:380px}
tr.lvl-error td,tr.lvl-critical td{background:#fff6f5}tr.lvl-warning td{background:#fffbf0}
pre{background:var(--bg);padding:10px;border-radius:6px;overflow:auto;max-height:360px;font-size:12px}
ul.files{list-style:none;padding:0;columns:3;margin:0}ul.files li{margin:3px 0}
details summary{cursor:pointer;color:var(--info);margin:10px 0 6px}
footer{color:var(--muted);font-size:12px;text-align:center}
@media print{body{background:#fff}section,header{break-inside:avoid}}
"""

_NAV = (("readiness", "Verdict"), ("latency-over-time", "Latency"), ("phase-percentiles", "Phases"),
        ("throughput", "Throughput"), ("slo-status", "SLOs"), ("failures", "Failures"), ("resources", "Resources"),
        ("windows", "Windows"), ("alerts", "Alerts"), ("drilldown", "Drilldown"), ("files", "Files"))


def render_html(ev: Evidence) -> str:
    """The whole dashboard as one HTML document (no external resources of any kind)."""
    s = ev.summary
    nav = "<nav>" + "".join(f'<a href="#{i}">{t}</a>' for i, t in _NAV) + "</nav>"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">",
        f"<title>Soak {_e(s.run_id, 120)} — Drover evidence</title>",
        f"<style>{_CSS}</style></head><body><main>",
        _header(ev), nav, _kpis(ev), _verdict_section(ev), _latency_section(ev), _phase_section(ev),
        _throughput_section(ev), _slo_section(ev), _failure_section(ev), _resource_section(ev),
        _windows_section(ev), _alerts_section(ev), _drilldown_section(ev), _files_section(ev),
        f'<footer>generated {_utc(time.time())} by <code>python -m engine report</code></footer>',
        "</main></body></html>",
    ]
    return "\n".join(parts)


__all__ = ["build_evidence", "load_evidence", "load_summary", "build_drilldown", "render_html", "downsample",
           "ReportError", "ReportInputError", "REPORT_FILE", "DRILLDOWN_FILE"]
