"""Clicks on a page whose every scroll is animated (``scroll-behavior: smooth``)."""
from __future__ import annotations

import pytest

from navigation.flow import parse_flow
from navigation.runner import FlowRunner
from navigation.steps import default_registry

from tests.navigation._capture import Capture

pytestmark = pytest.mark.chromium


def test_clicks_far_below_the_fold_and_in_a_smooth_scroller(conn, site, tmp_path):
    capture = Capture()
    registry = default_registry()
    registry.register(capture)
    steps = [
        {"type": "setViewport", "width": 800, "height": 600, "deviceScaleFactor": 1, "isMobile": False,
         "hasTouch": False, "isLandscape": False},
        {"type": "navigate", "url": "${BASE_URL}/smooth.html"},
        {"type": "click", "selectors": [["#far"]], "timeout": 3000},
        {"type": "click", "selectors": [["#box-far"]], "timeout": 3000},
        # the page animates a scroll to its bottom; the click on the top button must wait it out and land
        {"type": "click", "selectors": [["#top-button"]], "timeout": 3000},
        {"type": "click", "selectors": [["#top-button"]], "timeout": 3000},
        {"type": "click", "selectors": [["#far"]], "timeout": 3000},
        {"type": "waitForElement", "selectors": [["#far"]], "attributes": {"data-clicks": "2"}, "timeout": 1000},
        {"type": "captureEvents"},
    ]
    flow = parse_flow({"title": "smooth", "steps": steps}, source="smooth.json", extra_types=registry.extra_types())
    result = FlowRunner(registry).run(flow, conn, artifacts_dir=tmp_path, variables={"BASE_URL": site.base_url})
    assert result.ok, result.error
    clicks = [e.split(" ")[2] for e in capture.events if e.split(" ")[1] == "click"]
    assert clicks == ["#far", "#box-far", "#top-button", "#top-button", "#far"], capture.events
