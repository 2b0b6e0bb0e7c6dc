"""Drover's differential harness: the same Recorder recordings through Drover and ``@puppeteer/replay``.

Every recording in ``recordings/`` is an ordinary Chrome DevTools Recorder
export (``${BASE_URL}`` stands for the fixture site) over the bundled
fixture pages.  The harness starts the fixture site and two Chromium
browsers with Drover's launcher (same binary, same flags, fresh profiles),
replays every recording once through Drover (:class:`FlowRunner`) and once
through the reference replayer (``reference.mjs``: ``@puppeteer/replay`` on
``puppeteer-core``, connected to the second browser), each recording in a
fresh browser context, both sides at the same time.  When a recording
ends, both read the same final state from its main page (``capture.js``:
URL, title, the fixture site's DOM event log, form controls, counters,
scroll positions, frames, viewport, focus) and the list of open pages.

:func:`compare` says, per recording, whether Drover's state equals the
reference's.  Where the reference is wrong by design (DESIGN.md, "Replay
semantics to match": offsets counted from the visible part of an element,
and a prefilled contenteditable extended at its start), ``expectations.json``
states Drover's expected values explicitly and the reference must differ
there; everything else must be equal.

Normalisation, so that only page-visible behaviour is compared, not the
replayers' speed: the fixture site's origin reads ``${BASE_URL}``; ``scroll``
log entries are compared per target as their own sequence (``scrolls:``),
apart from the other events, because a browser dispatches them at the next
animation frame, so where they fall among input events depends on how fast
the next step comes (the reference pauses 100 ms after every key step); and
a run of consecutive entries of one target counts as its last (an animated
scroll logs one entry per frame, a number that depends on the machine).

``python -m tests.conformance [NAME ...]`` prints the table.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from navigation.cdp import CDPConnection
from navigation.errors import NavigationError
from navigation.flow import parse_flow
from navigation.launcher import launch
from navigation.runner import FlowRunner
from navigation.steps import StepOutcome, StepStrategy, default_registry

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RECORDINGS = HERE / "recordings"
EXPECTATIONS = HERE / "expectations.json"
CAPTURE_JS = (HERE / "capture.js").read_text(encoding="utf-8")
MODULES_ENV = "DROVER_HARNESS_MODULES"
DEFAULT_MODULES = REPO / ".venv" / "harness" / "node_modules"
REFERENCE_TIMEOUT_S = 600.0
COMPARED = ("ok", "url", "title", "events", "scroll_events", "controls", "marks", "scrolls", "scroll", "frames", "viewport", "online",
            "focused", "pages")


@dataclass(slots=True)
class Outcome:
    """What one replayer made of one recording."""

    name: str
    ok: bool
    error: str | None = None
    state: dict[str, Any] | None = None
    pages: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Verdict:
    name: str
    drover: Outcome
    reference: Outcome
    ok: bool
    kind: str  # "same", "quirk", "differs", "quirk not shown"
    diffs: list[str] = field(default_factory=list)
    note: str = ""


# -- availability ---------------------------------------------------------------------------------

def modules_dir() -> Path:
    return Path(os.environ.get(MODULES_ENV) or DEFAULT_MODULES)


def reference_unavailable() -> str | None:
    """Why the reference replayer cannot run here (``None`` when it can)."""
    if shutil.which("node") is None:
        return "node is not installed (the reference replayer @puppeteer/replay needs it)"
    modules = modules_dir()
    for package in ("@puppeteer/replay", "puppeteer-core"):
        if not (modules / package / "package.json").is_file():
            return (f"npm package {package} is not installed in {modules} (bash .ci/bootstrap installs it when "
                    f"npm is available; or set {MODULES_ENV})")
    return None


# -- recordings -----------------------------------------------------------------------------------

def recording_names() -> list[str]:
    return sorted(p.stem for p in RECORDINGS.glob("*.json"))


def materialize(name: str, base_url: str) -> dict[str, Any]:
    """The recording with ``${BASE_URL}`` replaced: what both replayers get."""
    text = (RECORDINGS / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text.replace("${BASE_URL}", base_url))


def expectations() -> dict[str, dict[str, Any]]:
    return json.loads(EXPECTATIONS.read_text(encoding="utf-8"))


# -- Drover's side --------------------------------------------------------------------------------

class _Capture(StepStrategy):
    """The harness's last step on Drover's side: read the final state before the runner closes the pages."""

    name = "harness-capture"
    handles = frozenset({"harnessCapture"})

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.pages: list[str] = []

    def run(self, step, ctx) -> StepOutcome:
        self.state = ctx.pages.main.evaluate(CAPTURE_JS, await_promise=True, timeout=10)
        infos = ctx.pages.connection.send("Target.getTargets")["targetInfos"]
        self.pages = sorted(i["url"] for i in infos if i.get("type") == "page"
                            and i.get("browserContextId") == ctx.pages.browser_context_id)
        return StepOutcome()


def run_drover(names: Iterable[str], base_url: str, ws_url: str, artifacts: Path) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    with CDPConnection.connect(ws_url) as conn:
        for name in names:
            capture = _Capture()
            registry = default_registry()
            registry.register(capture)
            data = materialize(name, base_url)
            data["steps"] = [*data["steps"], {"type": "harnessCapture"}]
            flow = parse_flow(data, source=f"{name}.json", extra_types=registry.extra_types())
            context = conn.send("Target.createBrowserContext")["browserContextId"]
            try:
                result = FlowRunner(registry, failure_screenshots=False).run(
                    flow, conn, artifacts_dir=artifacts / name, browser_context_id=context)
            finally:
                conn.send("Target.disposeBrowserContext", {"browserContextId": context})
            error = None if result.ok else (result.error or "").split(" [artifacts:")[0]
            out[name] = Outcome(name, result.ok, error, capture.state, capture.pages)
    return out


# -- the reference's side -------------------------------------------------------------------------

class _Reference:
    """``node reference.mjs`` on its own browser, started before Drover's side and joined after it."""

    def __init__(self, names: list[str], base_url: str, ws_url: str, workdir: Path) -> None:
        self.out = workdir / "reference.jsonl"
        config = {"ws": ws_url, "modules": str(modules_dir()), "capture": CAPTURE_JS, "out": str(self.out),
                  "recordings": [{"name": n, "flow": materialize(n, base_url)} for n in names]}
        config_path = workdir / "reference-config.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        self.names = names
        self.proc = subprocess.Popen(["node", str(HERE / "reference.mjs"), str(config_path)], cwd=str(workdir),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._output: tuple[str, str] = ("", "")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        self._output = self.proc.communicate()

    def join(self, timeout: float) -> dict[str, Outcome]:
        self._reader.join(timeout)
        if self._reader.is_alive():
            self.proc.kill()
            self._reader.join(10)
            raise RuntimeError(f"the reference replayer did not finish within {timeout:.0f} s")
        if self.proc.returncode != 0:
            raise RuntimeError(f"the reference replayer failed (exit {self.proc.returncode}): "
                               f"{self._output[1].strip()[-2000:]}")
        results: dict[str, Outcome] = {}
        for line in self.out.read_text(encoding="utf-8").splitlines():
            raw = json.loads(line)
            results[raw["name"]] = Outcome(raw["name"], bool(raw["ok"]), raw.get("error"), raw.get("state"),
                                           sorted(raw.get("pages") or []))
        missing = [n for n in self.names if n not in results]
        if missing:
            raise RuntimeError(f"the reference replayer gave no result for {missing}")
        return results


# -- comparing ------------------------------------------------------------------------------------

def _unbase(value: Any, base_url: str) -> Any:
    if isinstance(value, str):
        return value.replace(base_url, "${BASE_URL}")
    if isinstance(value, list):
        return [_unbase(v, base_url) for v in value]
    if isinstance(value, dict):
        return {k: _unbase(v, base_url) for k, v in value.items()}
    return value


def _split_scrolls(events: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(the events without ``scroll`` entries, each target's scroll entries with consecutive runs collapsed)."""
    rest: list[str] = []
    scrolls: dict[str, list[str]] = {}
    previous_was_scroll: dict[str, bool] = {}
    for entry in events:
        parts = entry.split(" ")
        if len(parts) > 2 and parts[1] == "scroll":
            target = f"{parts[0]} {parts[2]}"
            seq = scrolls.setdefault(target, [])
            if previous_was_scroll.get(target) and seq:
                seq[-1] = entry
            else:
                seq.append(entry)
            previous_was_scroll[target] = True
            continue
        rest.append(entry)
        previous_was_scroll = {}
    return rest, scrolls


def normalize(outcome: Outcome, base_url: str) -> dict[str, Any]:
    state = dict(outcome.state or {})
    scroll_events = None
    if isinstance(state.get("events"), list):
        state["events"], scroll_events = _split_scrolls(state["events"])
    flat = {"ok": outcome.ok, **{k: state.get(k) for k in COMPARED if k not in ("ok", "pages", "scroll_events")},
            "scroll_events": scroll_events, "pages": sorted(outcome.pages)}
    return _unbase(flat, base_url)


def _diff(key: str, mine: Any, theirs: Any) -> str:
    if key == "events" and isinstance(mine, list) and isinstance(theirs, list):
        for i, (a, b) in enumerate(zip(mine, theirs)):
            if a != b:
                return f"events[{i}]: drover {a!r} / reference {b!r}"
        longer, who = (mine, "drover") if len(mine) > len(theirs) else (theirs, "reference")
        return f"events: {who} has {abs(len(mine) - len(theirs))} more, from {longer[min(len(mine), len(theirs))]!r}"
    if isinstance(mine, dict) and isinstance(theirs, dict):
        keys = sorted(set(mine) | set(theirs))
        parts = [f"{k}: drover {mine.get(k)!r} / reference {theirs.get(k)!r}" for k in keys
                 if mine.get(k) != theirs.get(k)]
        return f"{key}: " + "; ".join(parts[:3])
    return f"{key}: drover {mine!r} / reference {theirs!r}"


def compare(name: str, drover: Outcome, reference: Outcome, base_url: str,
            expected: Mapping[str, Any] | None = None) -> Verdict:
    """Drover's normalised state against the reference's, with a known quirk's explicit expectation."""
    mine, theirs = normalize(drover, base_url), normalize(reference, base_url)
    if not drover.ok and not reference.ok:
        return Verdict(name, drover, reference, True, "same", note="both fail")
    overrides = dict((expected or {}).get("drover") or {})
    # A recording Drover is expected to fail has no final state on Drover's side: only the declared keys count.
    expected_failure = overrides.get("ok") is False and not drover.ok
    diffs = []
    for key in COMPARED:
        if key in overrides or expected_failure:
            continue
        if mine.get(key) != theirs.get(key):
            diffs.append(_diff(key, mine.get(key), theirs.get(key)))
    if not overrides:
        return Verdict(name, drover, reference, not diffs, "same" if not diffs else "differs", diffs)
    wrong = [_diff(key, mine.get(key), value) .replace("reference", "expected")
             for key, value in overrides.items() if mine.get(key) != value]
    shown = any(theirs.get(key) != value for key, value in overrides.items())
    note = str(expected.get("quirk", "")) if expected else ""
    if diffs or wrong:
        return Verdict(name, drover, reference, False, "differs", diffs + wrong, note)
    if not shown:
        return Verdict(name, drover, reference, False, "quirk not shown",
                       ["the reference gave Drover's expected values: the quirk is gone, drop the expectation"], note)
    return Verdict(name, drover, reference, True, "quirk", [], note)


def table(verdicts: list[Verdict]) -> str:
    rows = [("recording", "drover", "reference", "verdict", "detail")]
    for v in verdicts:
        detail = "; ".join(v.diffs) if v.diffs else (v.note or "")
        if not v.drover.ok and v.drover.error and v.kind != "same":
            detail = f"drover error: {v.drover.error}; " + detail
        if not v.reference.ok and v.reference.error and v.kind != "same":
            detail = f"reference error: {v.reference.error}; " + detail
        rows.append((v.name, "ok" if v.drover.ok else "FAIL", "ok" if v.reference.ok else "FAIL", v.kind,
                     detail[:160]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [" | ".join(r[i].ljust(widths[i]) for i in range(4)) + " | " + r[4] for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths) + "-+-" + "-" * 6)
    same = sum(1 for v in verdicts if v.ok)
    lines.append(f"Drover = reference on {same} of {len(verdicts)} recordings "
                 f"({sum(1 for v in verdicts if v.kind == 'quirk')} of them documented reference quirks where Drover's "
                 "own expected state holds)")
    return "\n".join(lines)


# -- all of it ------------------------------------------------------------------------------------

def run_all(names: Iterable[str] | None = None, *, site: Any = None) -> list[Verdict]:
    """Replay ``names`` (default: every recording) on both sides and compare; needs the reference installed."""
    reason = reference_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    chosen = list(names) if names is not None else recording_names()
    own_site = None
    if site is None:
        from navigation.fixture_site import FixtureSite

        own_site = site = FixtureSite()
        site.start()
    workdir = Path(tempfile.mkdtemp(prefix="drover-conformance-"))
    try:
        ours = launch()
        try:
            theirs = launch()
            try:
                reference = _Reference(chosen, site.base_url, theirs.ws_url, workdir)
                try:
                    drover = run_drover(chosen, site.base_url, ours.ws_url, workdir / "artifacts")
                except (NavigationError, OSError):
                    reference.proc.kill()  # and let Drover's error through
                    raise
                results = reference.join(REFERENCE_TIMEOUT_S)
            finally:
                theirs.close()
        finally:
            ours.close()
        quirks = expectations()
        return [compare(n, drover[n], results[n], site.base_url, quirks.get(n)) for n in chosen]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_site is not None:
            own_site.stop()


__all__ = ["Outcome", "Verdict", "reference_unavailable", "recording_names", "materialize", "run_drover",
           "normalize", "compare", "table", "run_all", "expectations"]
