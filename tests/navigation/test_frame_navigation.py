"""assertedEvents navigation on a child-frame step: the step's own frame is watched, not the main frame."""
from __future__ import annotations

import pytest

from navigation.flow import parse_flow
from navigation.runner import FlowRunner
from navigation.steps import default_registry

pytestmark = pytest.mark.chromium


def run(conn, site, tmp_path, steps):
    flow = parse_flow({"title": "frames", "steps": steps}, source="frames.json")
    return FlowRunner(default_registry()).run(flow, conn, artifacts_dir=tmp_path,
                                              variables={"BASE_URL": site.base_url})


def nav_event(**fields):
    return [{"type": "navigation", **fields}]


def test_a_click_that_navigates_its_frame_passes_its_asserted_navigation(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        {"type": "navigate", "url": "${BASE_URL}/frames.html"},
        {"type": "click", "frame": [0], "selectors": [["#frame-next"]], "timeout": 4000,
         "assertedEvents": nav_event(url="${BASE_URL}/frame_next.html", title="Drover frame next")},
        {"type": "click", "frame": [0], "selectors": [["#next-button"]], "timeout": 2000},
        # a nested same-origin frame: [0, 0]
        {"type": "navigate", "url": "${BASE_URL}/frames.html"},
        {"type": "click", "frame": [0, 0], "selectors": [["#leaf-next"]], "timeout": 4000,
         "assertedEvents": nav_event(url="${BASE_URL}/frame_next.html", title="Drover frame next")},
        {"type": "waitForExpression", "expression": "location.pathname === '/frames.html'", "timeout": 1000},
    ])
    assert result.ok, result.error


def test_a_frame_navigation_to_another_url_fails_naming_both(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        {"type": "navigate", "url": "${BASE_URL}/frames.html"},
        {"type": "click", "frame": [0], "selectors": [["#frame-next"]], "timeout": 4000,
         "assertedEvents": nav_event(url="${BASE_URL}/elsewhere.html")},
    ])
    assert not result.ok and result.failed_step == 1 and result.error_category == "navigation"
    assert "frame_next.html" in result.error and "elsewhere.html" in result.error


def test_a_frame_step_that_does_not_navigate_fails_its_assertion(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        {"type": "navigate", "url": "${BASE_URL}/frames.html"},
        {"type": "click", "frame": [0, 0], "selectors": [["body"]], "timeout": 800,
         "assertedEvents": nav_event()},
    ])
    assert not result.ok and result.failed_step == 1
    assert "expected a navigation" in result.error
