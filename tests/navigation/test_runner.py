"""The flow runner on a real Chromium and the bundled fixture site."""
from __future__ import annotations

import time

import pytest

from navigation.errors import FlowValidationError
from navigation.flow import parse_flow
from navigation.flow.records import SecretRef
from navigation.runner import FlowRunner
from navigation.steps import StepOutcome, StepStrategy, default_registry

SECRET = "s3cr3t-Value-42"


def run(conn, site, tmp_path, steps, *, registry=None, secrets=None, title="t"):
    registry = registry or default_registry()
    flow = parse_flow({"title": title, "steps": steps}, source="test-flow.json",
                      extra_types=registry.extra_types())

    def resolve(ref: SecretRef) -> str:
        return (secrets or {})[ref.name]

    runner = FlowRunner(registry, resolve_secret=resolve)
    return runner.run(flow, conn, artifacts_dir=tmp_path / "artifacts", variables={"BASE_URL": site.base_url})


def nav(path, **extra):
    return {"type": "navigate", "url": "${BASE_URL}" + path, **extra}


def test_form_flow_records_matched_alternative_and_phases(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        nav("/form.html", assertedEvents=[{"type": "navigation", "url": "${BASE_URL}/form.html",
                                           "title": "Drover form"}]),
        {"type": "change", "selectors": [["#missing"], ["aria/Name[role=\"textbox\"]"]], "value": "Ada",
         "phase": "Fill"},
        {"type": "change", "selectors": ["#city"], "value": "Paris", "phase": "Fill"},
        {"type": "click", "selectors": [["aria/Send the form"]], "phase": "Submit",
         "assertedEvents": [{"type": "navigation", "title": "Drover result"}]},
        {"type": "waitForExpression",
         "expression": "document.querySelector('#out-name').textContent === 'Ada' && "
                       "document.querySelector('#out-city').textContent === 'Paris'"},
    ])
    assert result.ok, result.error
    assert result.steps[1].matched_selector == 'aria/Name[role="textbox"]' and result.steps[1].matched_index == 1
    assert set(result.phase_ms) == {"Fill", "Submit"}
    assert [s.timing_key for s in result.steps] == ["0:navigate", "1:change", "2:change", "3:click",
                                                    "4:waitForExpression"]


def test_asserted_navigation_title_mismatch_fails(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        nav("/form.html", assertedEvents=[{"type": "navigation", "title": "Not the title"}]),
    ])
    assert not result.ok and result.failed_step == 0
    assert "expected 'Not the title'" in result.error and result.error_category == "navigation"


def test_shadow_chain_pierce_and_iframe(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        nav("/shadow.html"),
        {"type": "click", "selectors": [["#outer", "#inner", "#deep-button"]]},
        {"type": "change", "selectors": [["pierce/#deep-input"]], "value": "deep"},
        {"type": "click", "frame": [0], "selectors": [["#frame-button"]]},
        {"type": "change", "frame": [0], "selectors": [["#frame-input"]], "value": "framed"},
        {"type": "waitForExpression",
         "expression": "document.querySelector('#frame').contentDocument.querySelector('#frame-input').value"
                       " === 'framed'"},
    ])
    assert result.ok, result.error
    assert [s.matched_selector for s in result.steps[1:5]] == [
        "#outer >>> #inner >>> #deep-button", "pierce/#deep-input", "#frame-button", "#frame-input"]


def test_popup_target_by_url(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        nav("/popup.html"),
        {"type": "click", "selectors": [["#open-popup"]]},
        {"type": "click", "target": "${BASE_URL}/popup_target.html", "selectors": [["#popup-button"]]},
    ])
    assert result.ok, result.error
    assert result.steps[2].matched_selector == "#popup-button"


def test_shift_held_over_key_a_types_capital_and_viewport_applies(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        {"type": "setViewport", "width": 640, "height": 480, "deviceScaleFactor": 1, "isMobile": False,
         "hasTouch": False, "isLandscape": False},
        nav("/form.html"),
        {"type": "click", "selectors": [["#name"]]},
        {"type": "keyDown", "key": "Shift"},
        {"type": "keyDown", "key": "KeyA"},
        {"type": "keyUp", "key": "KeyA"},
        {"type": "keyUp", "key": "Shift"},
        {"type": "keyDown", "key": "b"},
        {"type": "keyUp", "key": "b"},
        {"type": "waitForExpression", "expression": "document.querySelector('#name').value === 'Ab'"},
        {"type": "waitForExpression", "expression": "innerWidth === 640 && innerHeight === 480"},
    ])
    assert result.ok, result.error


def test_custom_strategy_registers_without_touching_the_runner(conn, site, tmp_path):
    seen = []

    class Stamp(StepStrategy):
        name = "stamp"
        handles = frozenset({"stamp"})

        def run(self, step, ctx):
            seen.append(dict(step.fields))
            ctx.page.evaluate(f"document.title = {step.fields['text']!r}", await_promise=False)
            return StepOutcome()

    registry = default_registry()
    with pytest.raises(FlowValidationError, match=r"step 1 \(stamp\)"):
        parse_flow({"title": "t", "steps": [nav("/form.html"), {"type": "stamp", "text": "x"}]},
                   source="f.json", extra_types=registry.extra_types())
    registry.register(Stamp())
    result = run(conn, site, tmp_path, [
        nav("/form.html"),
        {"type": "stamp", "text": "stamped"},
        {"type": "waitForExpression", "expression": "document.title === 'stamped'"},
    ], registry=registry)
    assert result.ok, result.error
    assert seen == [{"text": "stamped"}]


def test_custom_step_without_handler_is_named_before_running_when_strict(conn, site, tmp_path):
    registry = default_registry()
    flow = parse_flow({"title": "t", "steps": [{"type": "customStep", "name": "doMagic", "parameters": {}}]},
                      source="f.json")
    with pytest.raises(FlowValidationError, match="doMagic"):
        FlowRunner(registry, strict=True).run(flow, conn, artifacts_dir=tmp_path)


def test_failure_writes_screenshot_and_dom_and_masks_secrets(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        nav("/form.html"),
        {"type": "change", "selectors": [["#name"]], "value": {"secret": "pw"}},
        {"type": "click", "selectors": [["#submit"]],
         "assertedEvents": [{"type": "navigation", "title": "Drover result"}]},
        {"type": "waitForElement", "selectors": [["#never-there"]], "timeout": 300},
    ], secrets={"pw": SECRET})
    assert not result.ok and result.failed_step == 3
    assert result.error_category == "navigation"
    assert result.error.startswith("step 3 (waitForElement): ")
    names = sorted(p.rsplit("/", 1)[1] for p in result.artifacts)
    assert names == ["step-03-waitForElement-failure.html", "step-03-waitForElement-failure.png"]
    for path in result.artifacts:
        assert path in result.error
        data = open(path, "rb").read()
        assert SECRET.encode() not in data
    dom = open([p for p in result.artifacts if p.endswith(".html")][0], encoding="utf-8").read()
    assert "***" in dom  # the result page echoed the secret: it is masked in the DOM snapshot
    assert SECRET not in repr(result)


def test_click_that_closes_its_own_page_succeeds_promptly(conn, site, tmp_path):
    # The button's handler calls window.close(): the click's mouseReleased may never be answered.
    # The client must notice the target detaching instead of waiting for its timeout.
    steps = [nav("/popup.html")]
    for _ in range(5):
        steps += [
            {"type": "click", "selectors": [["#open-popup"]]},
            {"type": "click", "target": "${BASE_URL}/popup_target.html", "selectors": [["aria/Close"], ["#close-popup"]],
             "timeout": 8000},
            {"type": "waitForExpression", "expression": "true"},
        ]
    started = time.monotonic()
    result = run(conn, site, tmp_path, steps)
    assert result.ok, result.error
    assert time.monotonic() - started < 30
    popups = [t for t in conn.send("Target.getTargets")["targetInfos"] if "popup_target" in t.get("url", "")]
    assert popups == []
