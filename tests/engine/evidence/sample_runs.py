"""Sample soak run directories for the report's tests, reading the HTML back, and rendering it in Chromium.

The run directories are shaped like the soak writes them: a summary with
several windows, alerts, a failure matrix, and the four log streams
written through the real telemetry sinks.
"""
from __future__ import annotations

import base64
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from coordination.telemetry_context import bind, stream_logger
from engine.evidence.report import REPORT_FILE
from engine.records.streams import install

DATA = Path(__file__).parent / "data"
RUN_ID = "r20261125-102745-7f3a"
T0 = 1795571265.2
FLOWS = ("checkout", "login", "search")
PHASES = ("navigate", "click", "change", "waitForElement", "keyDown", "setViewport")


# -- building sample run directories ---------------------------------------------------------------


def window(i: int, *, start: float, length: float, rng: random.Random, flows=FLOWS, phases=PHASES,
           workers=("w0", "w1"), failed: int | None = None) -> dict:
    """One window shaped like the soak writes it: latency drifts up a little, browser RSS grows slowly."""
    passed = 110 + rng.randint(0, 20)
    failed = rng.choice((0, 1, 2, 3)) if failed is None else failed
    drift = 1 + 0.05 * math.sqrt(i)
    latency = {}
    for k, flow in enumerate(flows):
        p50 = (380 + 90 * k) * drift * rng.uniform(0.95, 1.05)
        latency[f"flow:{flow}"] = {"n": 40 + k, "p50": round(p50, 1), "p95": round(p50 * 1.8, 1),
                                   "p99": round(p50 * 2.2, 1), "max": round(p50 * 2.5, 1), "avg": round(p50 * 1.1, 1)}
    for k, phase in enumerate(phases):
        p50 = (12 + 35 * k) * rng.uniform(0.9, 1.1)
        latency[f"phase:{phase}"] = {"n": 300, "p50": round(p50, 1), "p95": round(p50 * 2.1, 1),
                                     "p99": round(p50 * 3.0, 1), "max": round(p50 * 4, 1), "avg": round(p50 * 1.2, 1)}
    jobs = passed + failed
    checkout = latency.get("flow:checkout", {}).get("p95")
    return {
        "index": i, "start": start, "end": start + length, "jobs": {"passed": passed, "failed": failed},
        "error_rate": round(failed / jobs, 4), "throughput": round(jobs / length, 4),
        "throughput_per_worker": {w: round(jobs / length / len(workers) * rng.uniform(0.9, 1.1), 4) for w in workers},
        "latency": latency,
        "resources": {w: {"browser_rss_mb": round(300 + 6 * i + 10 * n + rng.uniform(-3, 3), 1),
                          "fds": 40 + n + rng.randint(0, 2), "children": 7 + (i % 2)} for n, w in enumerate(workers)},
        "supervisor_rss_mb": round(61 + rng.uniform(-0.5, 0.5), 1), "unowned_uses": 0, "invalid_transitions": 0,
        "duplicates": 0, "worker_restarts": 1 if i == 2 else 0, "idle_workers_s": 0.0, "queued": 0,
        "slo": [{"metric": "flow:checkout", "expr": "p(95) < 800", "value": checkout,
                 "ok": None if checkout is None else checkout < 800},
                {"metric": "error_rate", "expr": "rate < 0.03", "value": round(failed / jobs, 4),
                 "ok": failed / jobs < 0.03}],
    }


def summary(n_windows: int = 6, *, window_s: float = 600.0, seed: int = 7, verdict: dict | None = None,
            **window_kw) -> dict:
    rng = random.Random(seed)
    windows = [window(i, start=T0 + i * window_s, length=window_s, rng=rng, **window_kw) for i in range(n_windows)]
    agg = window(0, start=T0, length=max(1, n_windows) * window_s, rng=rng, **window_kw)
    agg["index"] = None
    agg["jobs"] = {"passed": sum(w["jobs"]["passed"] for w in windows),
                   "failed": sum(w["jobs"]["failed"] for w in windows)}
    total, span = sum(agg["jobs"].values()), max(1, n_windows) * window_s
    agg["error_rate"] = round(agg["jobs"]["failed"] / max(1, total), 4)
    agg["throughput"] = round(total / span, 4)
    agg["throughput_per_worker"] = {w: round(agg["throughput"] / len(agg["throughput_per_worker"]), 4)
                                    for w in agg["throughput_per_worker"]}
    return {"run_id": RUN_ID, "started_at": T0, "ended_at": T0 + n_windows * window_s,
            "target_duration_s": n_windows * window_s, "window_s": window_s, "workers": 2, "mode": "parallel",
            "status": "completed", "halt_reason": None, "windows": windows, "aggregate": agg, "verdict": verdict}


VERDICT = {"go": False, "criteria": [
    {"name": "duration within 5% of target, no halt", "value": 3600.0, "limit": 3600.0, "ok": True,
     "waived": False, "reason": None},
    {"name": "error rate over the last quarter", "value": 0.021, "limit": 0.05, "ok": True, "waived": False,
     "reason": None},
    {"name": "p95 within budget", "value": 812.0, "limit": 800, "ok": False, "waived": False, "reason": None},
    {"name": "throughput >= 5x legacy", "value": 3.1, "limit": 5.0, "ok": False, "waived": True,
     "reason": "legacy baseline measured on the old host"}],
    "accepted_risks": [{"name": "throughput >= 5x legacy", "reason": "legacy baseline measured on the old host"}]}

FAILURES = [  # shaped like engine.evidence.failures.FailureRow.to_dict(): all seven categories, zero rows included
    {"category": "navigation", "count": 7, "jobs": 6, "first_seen": T0 + 200, "last_seen": T0 + 3300,
     "examples": [f"{RUN_ID}/j0002/a1", f"{RUN_ID}/j0040/a1"], "root_cause": "fixture page /flaky returned 500",
     "error_class": "NavigationFailed", "containment": ["retry"], "containment_counts": {"retry": 7},
     "resolved": True, "unresolved_jobs": 0},
    {"category": "cdp", "count": 2, "jobs": 2, "first_seen": T0 + 1300, "last_seen": T0 + 1320,
     "examples": [f"{RUN_ID}/j0077/a1"], "root_cause": "browser killed (SIGKILL) mid-step", "error_class": None,
     "containment": ["reconnect", "browser restart"], "containment_counts": {"reconnect": 2, "browser restart": 1},
     "resolved": True, "unresolved_jobs": 0},
    {"category": "auth", "count": 3, "jobs": 2, "first_seen": T0 + 900, "last_seen": T0 + 2900,
     "examples": [f"{RUN_ID}/j0005/a1", f"{RUN_ID}/j0005/a2", f"{RUN_ID}/j0005/a3", f"{RUN_ID}/j0099/a1"],
     "root_cause": "wrong password for credential site/bob", "error_class": "AuthError",
     "containment": ["quarantine"], "containment_counts": {"quarantine": 3}, "resolved": False, "unresolved_jobs": 2},
    {"category": "telemetry", "count": 1, "jobs": 0, "first_seen": T0 + 2000, "last_seen": T0 + 2000,
     "examples": ["audit.jsonl:4711"], "root_cause": "unreadable record", "error_class": None,
     "containment": ["none"], "containment_counts": {"none": 1}, "resolved": None, "unresolved_jobs": 0},
] + [{"category": c, "count": 0, "jobs": 0, "first_seen": None, "last_seen": None, "examples": [], "root_cause": None,
      "error_class": None, "containment": [], "containment_counts": {}, "resolved": None, "unresolved_jobs": 0}
     for c in ("persistence", "timeout", "input")]


def alerts(n: int = 4) -> list[dict]:
    base = [
        {"ts": T0 + 1810, "severity": "warn", "rule": "slo", "metric": "flow:checkout", "value": 812.0,
         "threshold": 800, "window": 3, "message": "flow:checkout p(95) < 800 breached: 812 ms"},
        {"ts": T0 + 1320, "severity": "info", "rule": "worker_restart", "metric": "worker_restarts", "value": 1,
         "threshold": 5, "window": 2, "message": "worker w1 restarted after its browser died"},
        {"ts": T0 + 2900, "severity": "critical", "rule": "error_rate", "metric": "error_rate", "value": 0.12,
         "threshold": 0.1, "window": 4, "message": "error rate above 10% for 3 consecutive windows"},
        {"ts": T0 + 3000, "severity": "warn", "rule": "slo", "metric": "error_rate", "value": 0.031,
         "threshold": 0.03, "window": 5, "message": "error_rate < 0.03 breached"},
    ]
    return [dict(base[i % len(base)], ts=base[i % len(base)]["ts"] + i) for i in range(n)]


def write_streams(run_dir: Path, run_id: str = RUN_ID, *, failing_job: str = "j0002") -> None:
    """A few jobs through the four real sinks: one fails its first attempt and passes its second."""
    ops = stream_logger("operational", "tests.report")
    perf = stream_logger("performance", "tests.report")
    domain = stream_logger("domain", "tests.report")
    audit = stream_logger("audit", "tests.report")
    telemetry = install(run_dir)
    try:
        with bind(run_id=run_id, correlation_id=run_id, worker="supervisor"):
            ops.info("run started", extra={"event": "run_started", "jobs": 3})
        for job, attempts in (("j0001", 1), (failing_job, 2), ("j0003", 1)):
            with bind(run_id=run_id, correlation_id=f"{run_id}/{job}", worker="supervisor"):
                ops.info("job assigned", extra={"event": "job_assigned", "job_id": job, "worker_index": 1})
            for a in range(1, attempts + 1):
                cid = f"{run_id}/{job}/a{a}"
                with bind(run_id=run_id, correlation_id=cid, worker="w1", session="s1", job_id=job):
                    audit.info("credential lock acquired", extra={"event": "lock_acquired", "scope": "site/alice"})
                    audit.info("session slot owned", extra={"event": "slot_owned", "slot": 1, "epoch": 3})
                    domain.info("attempt started", extra={"event": "attempt_started", "job_id": job, "attempt": a})
                    for s, step in enumerate(("navigate", "click", "waitForElement")):
                        time.sleep(0.002)
                        with bind(correlation_id=f"{cid}/s{s}"):
                            perf.info("step timing", extra={"event": "step_timing", "step": s, "type": step,
                                                            "duration_ms": 12.5 + s})
                    fail = job == failing_job and a == 1
                    if fail:
                        domain.warning("step failed", extra={"event": "step_failed", "step": 2,
                                                             "error_category": "navigation",
                                                             "error": "HTTP 500 on /flaky"})
                    perf.info("attempt timing", extra={"event": "attempt_timing", "duration_ms": 420.0,
                                                       "ok": not fail})
                    if fail:
                        domain.warning("attempt failed, will retry", extra={"event": "attempt_failed",
                                                                             "error_category": "navigation"})
                        ops.info("job retry scheduled", extra={"event": "retry", "delay_s": 0.2})
                    else:
                        domain.info("job finished", extra={"event": "job_finished", "outcome": "passed"})
                    audit.info("session slot released", extra={"event": "slot_released", "slot": 1})
                    audit.info("credential lock released", extra={"event": "lock_released", "scope": "site/alice"})
    finally:
        telemetry.close()


def make_run(root: Path, *, name: str = "run", doc: dict | None = None, with_alerts: list[dict] | None = None,
             failures: list[dict] | None = None, streams: bool = True, slo: bool = True) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary(verdict=VERDICT) if doc is None else doc))
    if with_alerts is not None:
        (run_dir / "alerts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in with_alerts))
    if failures is not None:
        (run_dir / "failure_matrix.json").write_text(json.dumps(failures))
    if slo:
        shutil.copy(DATA / "soak_run" / "slo.json", run_dir / "slo.json")
    if streams:
        write_streams(run_dir, (doc or {}).get("run_id", RUN_ID))
    return run_dir


# -- reading the HTML back -------------------------------------------------------------------------

_VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base"}


class Page(HTMLParser):
    """Elements with their attributes and text; raises on a closing tag that does not match."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.feed(text)
        self.close()
        assert self.stack == [], f"unclosed elements: {self.stack[-5:]}"

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def by_id(self, ident: str) -> tuple[str, dict[str, str]]:
        found = [e for e in self.elements if e[1].get("id") == ident]
        assert len(found) == 1, f"id {ident!r} found {len(found)} times"
        return found[0]

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and (cls is None or cls in a.get("class", "").split())]

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def read_page(run_dir: Path) -> tuple[str, Page]:
    text = (run_dir / REPORT_FILE).read_text()
    return text, Page(text)


def points(attrs: dict[str, str]) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in attrs["points"].split()]


# -- in a real browser -----------------------------------------------------------------------------


_MEASURE = """(() => {
  const box = el => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const plots = [...document.querySelectorAll('svg.plot')].map(s => ({
    id: s.id, size: box(s),
    polylines: [...s.querySelectorAll('polyline')].map(p => p.points.numberOfItems),
    lineSizes: [...s.querySelectorAll('polyline')].map(p => { const b = p.getBBox(); return b.width + b.height; }),
    bars: s.querySelectorAll('rect.bar').length,
    events: s.querySelectorAll('circle.event').length }));
  const matrix = document.getElementById('failure-matrix');
  return { plots, matrix: matrix ? { size: box(matrix), rows: matrix.querySelectorAll('tbody tr').length } : null,
           height: document.documentElement.scrollHeight,
           overflow: document.documentElement.scrollWidth > document.documentElement.clientWidth };
})()"""


@dataclass
class Rendered:
    """What a report looked like in Chromium: measurements, page problems, requests, a full-page PNG."""

    got: dict
    problems: tuple[list, list, list]  # console errors/warnings, exceptions thrown, log entries
    requests: set
    png: bytes


def render_in_chromium(browser, report: Path) -> Rendered:
    """Open ``report`` in the test browser through our own CDP client, measure it, screenshot the whole page."""
    from navigation.cdp import CDPConnection

    url = report.resolve().as_uri()
    with CDPConnection.connect(browser.ws_url) as conn:
        page = conn.new_page()
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                page.send(f"{domain}.enable")
            page.send("Emulation.setDeviceMetricsOverride",
                      {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
            page.send("Page.navigate", {"url": url})
            page.wait_for_event("Page.loadEventFired", timeout=20)
            got = page.evaluate(_MEASURE)
            console = [e.params for e in page.pop_events("Runtime.consoleAPICalled")
                       if e.params.get("type") in ("error", "warning", "assert")]
            thrown = [e.params for e in page.pop_events("Runtime.exceptionThrown")]
            logged = [e.params["entry"] for e in page.pop_events("Log.entryAdded")
                      if e.params["entry"].get("level") in ("error", "warning")]
            requests = {e.params["request"]["url"] for e in page.pop_events("Network.requestWillBeSent")}
            page.send("Emulation.setDeviceMetricsOverride",
                      {"width": 1280, "height": min(16000, int(got["height"])), "deviceScaleFactor": 1,
                       "mobile": False})
            png = base64.b64decode(page.send("Page.captureScreenshot", {"format": "png"}, timeout=30)["data"])
        finally:
            page.close()
    return Rendered(got, (console, thrown, logged), requests, png)
