"""Issue 3 acceptance: one recorded-style flow, every step type and selector prefix, exact event log.

``flows/conformance.json`` is replayed through :class:`FlowRunner` on a real
Chromium against the bundled fixture site.  Its last step is a
``customStep`` handled by a strategy registered here that reads the page's
``window.droverEvents()`` before the runner closes the page; the log must
equal ``flows/conformance.expected.json`` exactly (it was generated once
and checked by hand against DESIGN.md, "Replay semantics to match").
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import orjson
import pytest

from navigation.flow import STEP_TYPES, load_flow
from navigation.flow.records import CustomStep, ElementStep, SelectorKind
from navigation.runner import FlowRunner
from navigation.steps import StepOutcome, StepStrategy, build_registry, default_registry

FLOWS = Path(__file__).parent / "flows"
CONFORMANCE = FLOWS / "conformance.json"
EXPECTED = FLOWS / "conformance.expected.json"

pytestmark = pytest.mark.chromium


class ConformanceSteps(StepStrategy):
    """The test's own ``customStep`` handler: ``mark`` logs into the page, ``captureEvents`` reads the log."""

    name = "conformance-test-steps"
    handles = frozenset({"customStep"})
    NAMES = ("mark", "captureEvents")

    def __init__(self) -> None:
        self.events: list[str] | None = None
        self.marks: list[object] = []

    def accepts(self, step) -> bool:
        return isinstance(step, CustomStep) and step.name in self.NAMES

    def run(self, step, ctx) -> StepOutcome:
        assert isinstance(step, CustomStep)
        if step.name == "mark":
            fields = orjson.dumps(dict(step.parameters)).decode()
            ctx.page.evaluate(f"window.droverLog('custom', 'window', {fields})", await_promise=False)
            self.marks.append(step.parameters)
        else:
            self.events = ctx.page.evaluate("window.droverEvents()", await_promise=False)
        return StepOutcome()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_conformance_flow_covers_every_step_type_and_selector_prefix():
    registry = default_registry()
    registry.register(ConformanceSteps())
    flow = load_flow(CONFORMANCE, extra_types=registry.extra_types())
    # extract makes no input events (nothing for the event log): its own tests are tests/navigation/test_extract.py
    assert {s.type for s in flow.steps} == STEP_TYPES - {"extract"}
    kinds = {part.kind for s in flow.steps if isinstance(s, ElementStep)
             for alt in s.selectors for part in alt.chain}
    assert kinds == set(SelectorKind)
    assert any(len(alt.chain) > 1 for s in flow.steps if isinstance(s, ElementStep) for alt in s.selectors)
    assert all(s.url.startswith("${BASE_URL}/") for s in flow.steps if s.type == "navigate")
    assert not flow.unknown_fields and not flow.aliases_applied
    assert registry.problems(flow) == []
    # without the test's strategy nothing runs the customSteps: no-ops, and a strict registry says so
    assert default_registry().problems(flow) == []
    problems = build_registry(strict=True).problems(flow)
    assert len(problems) == 2 and "'mark'" in problems[0] and "'captureEvents'" in problems[1]


def test_conformance_replay_matches_the_expected_event_log(conn, site, tmp_path):
    steps = ConformanceSteps()
    registry = default_registry()
    registry.register(steps)
    flow = load_flow(CONFORMANCE, extra_types=registry.extra_types())
    artifacts = tmp_path / "artifacts"
    result = FlowRunner(registry).run(flow, conn, artifacts_dir=artifacts,
                                      variables={"BASE_URL": site.base_url})
    assert result.ok, result.error
    assert [s.index for s in result.steps] == list(range(len(flow.steps)))
    assert all(s.ok and s.error is None for s in result.steps)

    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))["events"]
    assert steps.events is not None, "the captureEvents step did not run"
    assert steps.events == expected
    assert steps.marks == [{"label": "before-page2"}]

    # every step says which selector alternative matched: the stale first ones are visible
    matched = {s.index: (s.matched_index, s.matched_selector) for s in result.steps}
    alternatives = {i: s.selectors for i, s in enumerate(flow.steps) if isinstance(s, ElementStep)}
    for index, (alt_index, text) in matched.items():
        if alternatives.get(index) and alt_index is not None:  # a wait for "no such element" matches none
            assert text == next(a.text for a in alternatives[index] if a.index == alt_index)
    assert ("xpath///button[@id=\"xpath-target\"]" in result.matched_selectors.values())
    xpath_step = next(s for s in result.steps if s.matched_selector and s.matched_selector.startswith("xpath/"))
    assert xpath_step.matched_index == 1  # "#no-such-button" was tried first and missed
    for text in ('aria/Click me[role="button"]', "text/Text target", "aria/Labelled action",
                 "pierce/#shadow-btn", "#conf-shadow-host >>> #shadow-btn", "aria/Text", "pierce/button",
                 "aria/Next page", "text/Second page button", "aria/Popup button"):
        assert text in result.matched_selectors.values(), text

    # screenshot steps: the element shot has the scroller's border box, the clip the asked-for size
    shots = {p.relative_to(artifacts).as_posix(): p for p in artifacts.rglob("*.png")}
    assert set(shots) == {"conformance/scroller.png", "conformance/top-left.png", "conformance/viewport.png"}
    assert _png_size(shots["conformance/scroller.png"]) == (322, 122)
    assert _png_size(shots["conformance/top-left.png"]) == (320, 200)
    assert _png_size(shots["conformance/viewport.png"]) == (1024, 768)
    assert result.artifacts == ()  # nothing failed: no failure artifacts


# -- shadow DOM, iframe and popup fixtures, driven by recorded-style flows ------------------------

class Snapshot(StepStrategy):
    """``{"type": "captureEvents", "as": NAME}``: keep the page's event log and the open page URLs."""

    name = "snapshot"
    handles = frozenset({"captureEvents"})

    def __init__(self) -> None:
        self.events: dict[str, list[str]] = {}
        self.pages: dict[str, list[str]] = {}
        self.targets: dict[str, dict[str, str | None]] = {}  # page target id -> opener's target id
        self.target_ids: dict[str, str] = {}  # the target id of the page the step ran on

    def run(self, step, ctx) -> StepOutcome:
        key = str(step.fields.get("as", "main"))
        self.events[key] = ctx.page.evaluate("window.droverEvents()", await_promise=False)
        infos = ctx.pages.connection.send("Target.getTargets")["targetInfos"]
        self.pages[key] = sorted(i["url"] for i in infos if i.get("type") == "page")
        self.targets[key] = {i["targetId"]: i.get("openerId") for i in infos if i.get("type") == "page"}
        self.target_ids[key] = ctx.page.session.target_id
        return StepOutcome()


def run_fixture_flow(conn, site, tmp_path, name):
    snap = Snapshot()
    registry = default_registry()
    registry.register(snap)
    flow = load_flow(FLOWS / name, extra_types=registry.extra_types())
    result = FlowRunner(registry).run(flow, conn, artifacts_dir=tmp_path / "artifacts",
                                      variables={"BASE_URL": site.base_url})
    return flow, result, snap


def in_order(events: list[str], wanted: list[str]) -> bool:
    """``wanted`` appears in ``events`` as an ordered subsequence."""
    it = iter(events)
    return all(any(e == w for e in it) for w in wanted)


def test_shadow_dom_and_iframe_flow(conn, site, tmp_path):
    flow, result, snap = run_fixture_flow(conn, site, tmp_path, "shadow_frame.json")
    assert result.ok, result.error
    matched = [s.matched_selector for s in result.steps if s.type in ("click", "doubleClick", "change")]
    assert matched == ["#outer >>> #inner >>> #deep-button", 'aria/Deep button[role="button"]', "aria/Deep input",
                       "text/Outer shadow root", "text/Frame button", 'xpath///button[@id="frame-button"]',
                       "aria/Frame input"]
    assert result.steps[5].matched_index == 1  # the stale first alternative was skipped, and that shows
    events = snap.events["main"]
    # shadow-root events name the innermost element; the same-origin frame logs into the same tab log
    assert in_order(events, [
        "shadow load /shadow.html",
        "frame load /frame.html",
        "shadow click #deep-button button=0 detail=1",
        "shadow click #deep-button button=0 detail=1",
        "shadow focus #deep-input",
        "shadow input #deep-input value=d",
        'shadow input #deep-input value="deep text"',
        "shadow click #outer-text button=0 detail=1",
        "frame click #frame-button button=0 detail=1",
        "frame click #frame-button button=0 detail=1",
        "frame click #frame-button button=0 detail=2",
        "frame dblclick #frame-button button=0 detail=2",
        "frame focus #frame-input",
        "frame input #frame-input value=framed",
        "frame keydown #frame-input key=Shift code=ShiftLeft shift=1",
        "frame keydown #frame-input key=X code=KeyX shift=1",
        "frame input #frame-input value=framedX",
        "frame keyup #frame-input key=Shift code=ShiftLeft",
    ]), events
    assert sum(1 for e in events if e.startswith("shadow input #deep-input")) == len("deep text")
    shot = tmp_path / "artifacts" / "frame-button.png"
    width, height = _png_size(shot)
    assert 60 < width < 200 and 10 < height < 60  # the button's box, found through the frame


def test_popup_flow_targets_the_popup_and_closes_it(conn, site, tmp_path):
    conn.send("Target.setDiscoverTargets", {"discover": True})  # to await the pages' destruction below
    try:
        flow, result, snap = run_fixture_flow(conn, site, tmp_path, "popup.json")
        assert result.ok, result.error
        popup_url = f"{site.base_url}/popup_target.html"
        assert popup_url in snap.pages["popup"]
        assert popup_url not in snap.pages["after-close"]  # the close step closed it
        # opened again (maybe still loading), and no step ever attached to it
        second = set(snap.targets["main"]) - set(snap.targets["after-close"])
        assert len(second) == 1 and snap.targets["main"][next(iter(second))] == snap.target_ids["main"]
        popup_events = snap.events["popup"]
        # the popup started with a copy of its opener's log, then went its own way
        assert popup_events[:2] == ["popup load /popup.html", "popup mousedown #open-popup button=0 detail=1"]
        assert in_order(popup_events, ["popup click #open-popup button=0 detail=1",
                                       "popup_target load /popup_target.html",
                                       "popup_target click #popup-button button=0 detail=1",
                                       "popup_target click #popup-button button=0 detail=1"])
        assert not any(e.startswith("popup_target") for e in snap.events["main"])
        assert [s.matched_selector for s in result.steps if s.type == "click"] == [
            "aria/Open popup", "text/Popup button", "#popup-button", "#open-popup"]
        assert (tmp_path / "artifacts" / "popup.png").read_bytes()[:4] == b"\x89PNG"
        # the runner closes every page the run opened, the never-attached second popup included
        still_listed = {i["targetId"] for i in conn.send("Target.getTargets")["targetInfos"]}
        ours = {snap.target_ids["main"], snap.target_ids["popup"], *second}
        for tid in ours & still_listed:
            conn.wait_for_event("Target.targetDestroyed", timeout=10,
                                predicate=lambda ev, tid=tid: ev.params.get("targetId") == tid)
    finally:
        conn.send("Target.setDiscoverTargets", {"discover": False})
