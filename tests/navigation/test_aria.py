"""aria/ selectors through Chromium's own accessibility tree (``Accessibility.queryAXTree``).

The fixture page /aria.html holds names a hand-written approximation gets
wrong: a ``<select>`` inside its ``<label>``, an image's alt, CSS generated
content, an aria-hidden part, a title that is only a description.
"""
from __future__ import annotations

import pytest

from navigation.flow import parse_flow
from navigation.runner import FlowRunner
from navigation.steps import default_registry

from tests.navigation._capture import Capture

pytestmark = pytest.mark.chromium


def run(conn, site, tmp_path, steps):
    capture = Capture()
    registry = default_registry()
    registry.register(capture)
    flow = parse_flow({"title": "aria", "steps": steps}, source="aria.json", extra_types=registry.extra_types())
    result = FlowRunner(registry).run(flow, conn, artifacts_dir=tmp_path, variables={"BASE_URL": site.base_url})
    return result, capture.events


def test_names_and_roles_come_from_the_accessibility_tree(conn, site, tmp_path):
    result, events = run(conn, site, tmp_path, [
        {"type": "navigate", "url": "${BASE_URL}/aria.html"},
        {"type": "change", "selectors": [["aria/Country[role=\"combobox\"]"]], "value": "fr", "timeout": 2000},
        {"type": "click", "selectors": [["aria/Save"]], "timeout": 2000},
        {"type": "click", "selectors": [["aria/Go[role=\"button\"]"]], "timeout": 2000},
        {"type": "click", "selectors": [["aria/Pay"]], "timeout": 2000},
        {"type": "click", "selectors": [["aria/?[role=\"button\"]"]], "timeout": 2000},
        {"type": "click", "selectors": [["aria/Newsletter[role=\"checkbox\"]"]], "timeout": 2000},
        {"type": "waitForElement", "selectors": [["aria/Billing[role=\"region\"]"]], "timeout": 2000},
        # a title is a description, not the name; a display:none button is not in the tree
        {"type": "waitForElement", "selectors": [["aria/Help"]], "operator": "==", "count": 0, "timeout": 2000},
        {"type": "waitForElement", "selectors": [["aria/Hidden action"]], "operator": "==", "count": 0,
         "visible": True, "timeout": 2000},
        {"type": "captureEvents"},
    ])
    assert result.ok, result.error
    clicks = [e.split(" ")[2] for e in events if e.split(" ")[1] == "click"]
    assert clicks == ["#save-icon", "#go", "#pay", "#help", "#news"], events  # the image is topmost in #save
    assert "aria change #country value=fr" in events


def test_aria_inside_a_shadow_root_and_a_frame(conn, site, tmp_path):
    result, events = run(conn, site, tmp_path, [
        {"type": "navigate", "url": "${BASE_URL}/shadow.html"},
        {"type": "click", "selectors": [["#outer", "aria/Deep button[role=\"button\"]"]], "timeout": 2000},
        {"type": "click", "frame": [0], "selectors": [["aria/Frame button"]], "timeout": 3000},
        {"type": "captureEvents"},
    ])
    assert result.ok, result.error
    assert [s.matched_selector for s in result.steps[1:3]] == [
        '#outer >>> aria/Deep button[role="button"]', "aria/Frame button"]
    assert "shadow click #deep-button button=0 detail=1" in events
    assert "frame click #frame-button button=0 detail=1" in events


def test_aria_waits_for_an_element_that_appears_later(conn, site, tmp_path):
    result, _ = run(conn, site, tmp_path, [
        {"type": "navigate", "url": "${BASE_URL}/aria.html"},
        {"type": "waitForExpression", "expression": "(setTimeout(() => { const b = document.createElement('button');"
                                                    " b.textContent = 'Late'; b.id = 'late';"
                                                    " document.body.append(b); }, 300), true)"},
        {"type": "click", "selectors": [["aria/Late[role=\"button\"]"]], "timeout": 3000},
    ])
    assert result.ok, result.error


def test_an_aria_selector_that_never_matches_times_out_naming_it(conn, site, tmp_path):
    result, _ = run(conn, site, tmp_path, [
        {"type": "navigate", "url": "${BASE_URL}/aria.html"},
        {"type": "click", "selectors": [["aria/No such name"]], "timeout": 400},
    ])
    assert not result.ok and result.failed_step == 1
    assert "no selector matched a visible element within 400 ms" in result.error
