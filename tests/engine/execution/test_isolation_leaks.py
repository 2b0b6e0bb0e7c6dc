"""The proof that a job-isolation mode isolates: job A writes every kind of browser state, job B reads it.

Both jobs run through the real engine (supervisor, one forked worker, one
Chromium, the executor's isolation) on the fixture site's
``/isolation.html``.  Job A's page sets cookies (one from script, one from
a response header on a second ``127.0.0.1`` port reached through an
iframe), localStorage, sessionStorage, IndexedDB and Cache Storage on both
origins, a service worker, ``window.name``, history entries, a clipboard
grant (the ``clip`` step), viewport and touch emulation, network
conditions, a popup, and a cacheable response; job B's page reports what
it finds, and the second origin's server tells which cookies came back and
whether the cacheable response was fetched again.

``context`` and ``reset`` must show nothing of job A; ``page`` must show
exactly :data:`PAGE_LEAKS` (README: "Isolation modes"), so a change in
what ``page`` shares fails here too.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.config import Settings
from engine.execution.runs import RunRequest, execute, prepare

WRITE_FLOW = {"title": "isolation write", "steps": [
    {"type": "setViewport", "width": 555, "height": 444, "deviceScaleFactor": 1, "isMobile": True,
     "hasTouch": True, "isLandscape": False},
    {"type": "navigate", "url": "${BASE_URL}/isolation.html?do=write&other=${OTHER}"},
    {"type": "waitForExpression", "expression": "window.droverWritten === true || !!window.droverError",
     "timeout": 15000},
    {"type": "waitForExpression", "expression": "window.droverWritten === true", "timeout": 1000},
    {"type": "clip", "value": "drover-leak"},
    {"type": "click", "selectors": [["#open-popup"]]},
    {"type": "waitForExpression", "expression": "window.droverPopupReady === true", "timeout": 10000},
    {"type": "emulateNetworkConditions", "download": 50000, "upload": 50000, "latency": 1234},
]}
READ_FLOW = {"title": "isolation read", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/isolation.html?do=read&other=${OTHER}", "timeout": 20000},
    {"type": "waitForExpression", "expression": "window.droverReported === true || !!window.droverError",
     "timeout": 20000},
    {"type": "waitForExpression", "expression": "window.droverReported === true", "timeout": 1000},
]}

# What job B sees of job A under ``page`` isolation (one browser context shared by every job; a new
# page per job): the context's storage, its grants and its HTTP cache.  Per-page state is not shared.
PAGE_LEAKS = frozenset({
    "cookie_js", "cookie_header", "local_storage", "indexed_db", "cache_storage", "service_worker",
    "permission", "http_cache",
    "other:local_storage", "other:indexed_db", "other:cache_storage",
})

FRESH_HISTORY_LENGTH = 2  # a new page's about:blank, then the reader

_OTHER_WRITE = b"""<!doctype html><html><head><title>Drover isolation frame</title>
<script src="/cached.js"></script></head><body><script>
localStorage.setItem("drover_leak", "1");
var req = indexedDB.open("drover_leak", 1);
req.onupgradeneeded = function () { req.result.createObjectStore("s"); };
req.onsuccess = function () {
  req.result.close();
  caches.open("drover_leak").then(function (c) { return c.put("/x", new Response("x")); })
    .then(function () { parent.postMessage("written", "*"); });
};
</script></body></html>"""
_OTHER_READ = b"""<!doctype html><html><head><title>Drover isolation frame</title>
<script src="/cached.js"></script></head><body><script>
var out = {local_storage: localStorage.getItem("drover_leak") !== null};
Promise.all([
  indexedDB.databases().then(function (d) { out.indexed_db = d.some(function (x) { return x.name === "drover_leak"; }); }),
  caches.has("drover_leak").then(function (v) { out.cache_storage = v; }),
]).then(function () { parent.postMessage(out, "*"); });
</script></body></html>"""


class _Other(ThreadingHTTPServer):
    """The second origin (another 127.0.0.1 port): a header cookie, a cacheable script, the report sink."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OtherHandler)
        self.lock = threading.Lock()
        self.cached_hits = 0
        self.cookies: list[str] = []  # Cookie header of each /frame?do=read
        self.reports: list[dict] = []

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _OtherHandler(BaseHTTPRequestHandler):
    server: _Other

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # the test's own server: nothing on stderr

    def _send(self, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/frame?do=write":
            self._send(_OTHER_WRITE, "text/html", {
                "Cache-Control": "no-store",
                "Set-Cookie": "hdr_cookie=1; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"})
        elif self.path == "/frame?do=read":
            with self.server.lock:
                self.server.cookies.append(self.headers.get("Cookie") or "")
            self._send(_OTHER_READ, "text/html", {"Cache-Control": "no-store"})
        elif self.path == "/cached.js":
            with self.server.lock:
                self.server.cached_hits += 1
            self._send(b"window.droverCached = true;", "text/javascript", {"Cache-Control": "max-age=3600"})
        else:
            self.send_error(404)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 65536))
        if self.path == "/report":
            with self.server.lock:
                self.server.reports.append(json.loads(body))
        self._send(b"", "text/plain", {"Cache-Control": "no-store"})


@pytest.fixture()
def other():
    server = _Other()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _batch(tmp_path: Path, base_url: str, other_origin: str) -> Path:
    for flow, name in ((WRITE_FLOW, "write.json"), (READ_FLOW, "read.json")):
        (tmp_path / name).write_text(json.dumps(flow))
    batch = tmp_path / "batch.jsonl"
    variables = {"BASE_URL": base_url, "OTHER": other_origin}
    batch.write_text("".join(json.dumps({"id": f"job-{i}", "flow": name, "retries": 0, "vars": variables}) + "\n"
                             for i, name in enumerate(("write.json", "read.json"))))
    return batch


def leaks(report: dict, server: _Other) -> set[str]:
    """What of job A job B saw, by name (see :data:`PAGE_LEAKS`)."""
    found = {k for k in ("cookie_js", "cookie_header_visible", "local_storage", "session_storage", "indexed_db",
                         "cache_storage", "service_worker", "window_name", "touch", "popup") if report[k]}
    found |= {f"other:{k}" for k, v in report["other"].items() if v}
    if report["permission"] == "granted":
        found.add("permission")
    if report["history_length"] != FRESH_HISTORY_LENGTH:
        found.add(f"history_length={report['history_length']}")
    if report["viewport"] == [555, 444]:
        found.add("viewport")
    if report["network_rtt"] is not None and report["network_rtt"] >= 1000:
        found.add("network_conditions")
    if report["has_focus"] is not True:  # a fresh page has focus emulation on: the reader must see focus
        found.add("focus_emulation_off")
    if "hdr_cookie=1" in server.cookies[-1]:
        found.add("cookie_header")
    if server.cached_hits < 2:  # job B took /cached.js from job A's HTTP cache
        found.add("http_cache")
    return found


@pytest.mark.parametrize("isolation, expected, binary", [
    ("context", frozenset(), ""),
    ("reset", frozenset(), ""),
    ("page", PAGE_LEAKS, ""),
    # the headless shell ([browser] binary): the same guarantees (it gets Chrome's site isolation from Drover)
    ("context", frozenset(), "chromium-headless-shell"),
    ("reset", frozenset(), "chromium-headless-shell"),
], ids=["context", "reset", "page", "context-headless-shell", "reset-headless-shell"])
def test_job_b_sees_nothing_of_job_a_except_what_the_mode_documents(tmp_path, site, other, isolation, expected,
                                                                    binary):
    batch = _batch(tmp_path, site.base_url, other.origin)
    settings = Settings(workers=1, state_dir=str(tmp_path / "state"), job_isolation=isolation,
                        browser_binary=binary)
    req = RunRequest(str(batch), settings)
    prepared = prepare(req)
    summary = execute(req, prepared)
    assert summary.outcomes == {"passed": 2, "failed": 0, "pending": 0}, summary.outcomes
    assert len(other.reports) == 1 and len(other.cookies) == 1, (other.reports, other.cookies)
    report = other.reports[0]
    assert leaks(report, other) == set(expected), report
    ops = [json.loads(line) for line in (prepared.run_dir / "operational.jsonl").read_text().splitlines() if line]
    # reset really reused its warm page (no fresh context in its place), and the browser started once
    assert [r.get("reason") for r in ops if r.get("event") == "isolation_fallback"] == []
    assert [r.get("message") for r in ops].count("browser started") == 1


# Everything job A leaves on its own page, seen by reading on that same page: the control that shows each
# detector above can fire (a test that only ever finds nothing would prove nothing).
SAME_PAGE = PAGE_LEAKS | {"session_storage", "window_name", "touch", "popup", "viewport", "network_conditions",
                          "history_length=5"}


def test_the_reader_finds_every_kind_of_state_when_it_reads_job_a_own_page(tmp_path, site, other):
    (tmp_path / "both.json").write_text(json.dumps({"title": "isolation both",
                                                     "steps": WRITE_FLOW["steps"] + READ_FLOW["steps"]}))
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"id": "job-0", "flow": "both.json", "retries": 0,
                                 "vars": {"BASE_URL": site.base_url, "OTHER": other.origin}}) + "\n")
    req = RunRequest(str(batch), Settings(workers=1, state_dir=str(tmp_path / "state")))
    assert execute(req, prepare(req)).outcomes == {"passed": 1, "failed": 0, "pending": 0}
    assert leaks(other.reports[0], other) == set(SAME_PAGE), other.reports[0]
