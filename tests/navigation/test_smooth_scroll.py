"""Clicks on a page whose every scroll is animated (``scroll-behavior: smooth``)."""
from __future__ import annotations

import pytest

from navigation.flow import parse_flow
from navigation.runner import FlowRunner
from navigation.page import Page
from navigation.steps import StepOutcome, StepStrategy, default_registry

from tests.navigation._capture import Capture

pytestmark = pytest.mark.chromium

OPEN = [{"type": "setViewport", "width": 800, "height": 600, "deviceScaleFactor": 1, "isMobile": False,
         "hasTouch": False, "isLandscape": False},
        {"type": "navigate", "url": "${BASE_URL}/smooth.html"}]


def test_clicks_far_below_the_fold_and_in_a_smooth_scroller(conn, site, tmp_path):
    capture = Capture()
    registry = default_registry()
    registry.register(capture)
    steps = [
        *OPEN,
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


class _PressPoint(StepStrategy):
    """Starts the page's smooth scroll and, in the same turn (before it has moved anything), asks the runtime for
    #top-button's press point; then reads what is under that point once the scroll would have run its course."""

    name = "press-point"
    handles = frozenset({"pressPointDuringScroll"})

    def __init__(self) -> None:
        self.seen: dict = {}

    def run(self, step, ctx):
        self.seen = ctx.page.evaluate(f"""(async () => {{
            window.scrollTo({{ top: document.documentElement.scrollHeight, behavior: "smooth" }});
            const hit = await {Page.RUNTIME}.prepare([], [{{ index: 0, chain: [{{ kind: "css", value: "#top-button" }}] }}],
                                                     3000, {{ mode: "centre" }});
            await new Promise((r) => setTimeout(r, 1200));
            const under = document.elementFromPoint(hit.x, hit.y);
            return {{ under: under && under.id, scrollY: window.scrollY }};
        }})()""")
        return StepOutcome()


def test_a_smooth_scroll_started_just_before_a_press_cannot_move_the_element_away(conn, site, tmp_path):
    """The page starts an animated scroll; the runtime's press point for an element still wholly in view must
    still be over that element afterwards (the pending scroll is stopped, not raced)."""
    probe = _PressPoint()
    registry = default_registry()
    registry.register(probe)
    steps = [
        *OPEN,
        {"type": "pressPointDuringScroll"},
    ]
    flow = parse_flow({"title": "press", "steps": steps}, source="press.json", extra_types=registry.extra_types())
    result = FlowRunner(registry).run(flow, conn, artifacts_dir=tmp_path, variables={"BASE_URL": site.base_url})
    assert result.ok, result.error
    assert probe.seen == {"under": "top-button", "scrollY": 0}, probe.seen
