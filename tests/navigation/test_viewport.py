"""setViewport: a width or height of 0 means "no override" for that dimension, as in the reference.

"No override" is what the reference replayer (and CDP) make of it: that
dimension is not set by the step, so it stays what it is — the window's own
size on a fresh page, the last override's after one (checked against
``@puppeteer/replay`` on the same Chromium).
"""
from __future__ import annotations

import pytest

from navigation.flow import parse_flow
from navigation.runner import FlowRunner
from navigation.steps import StepOutcome, StepStrategy, default_registry

pytestmark = pytest.mark.chromium


class Size(StepStrategy):
    name = "size"
    handles = frozenset({"readSize"})

    def __init__(self) -> None:
        self.sizes: list[list[int]] = []

    def run(self, step, ctx):
        self.sizes.append(ctx.page.evaluate("[innerWidth, innerHeight]", await_promise=False))
        return StepOutcome()


def viewport(width, height):
    return {"type": "setViewport", "width": width, "height": height, "deviceScaleFactor": 1, "isMobile": False,
            "hasTouch": False, "isLandscape": False}


def test_zero_width_or_height_is_no_override(conn, site, tmp_path):
    size = Size()
    registry = default_registry()
    registry.register(size)
    steps = [
        viewport(0, 0), {"type": "readSize"},
        {"type": "navigate", "url": "${BASE_URL}/conformance.html"},
        {"type": "readSize"},
        viewport(640, 480), {"type": "readSize"},
        viewport(0, 0), {"type": "readSize"},
        viewport(0, 500), {"type": "readSize"},
        viewport(700, 0), {"type": "readSize"},
    ]
    flow = parse_flow({"title": "viewport", "steps": steps}, source="viewport.json",
                      extra_types=registry.extra_types())
    result = FlowRunner(registry).run(flow, conn, artifacts_dir=tmp_path, variables={"BASE_URL": site.base_url})
    assert result.ok, result.error
    blank, window, overridden, kept, taller, wider = size.sizes
    assert blank == window and window != [640, 480]  # nothing overridden on a fresh page
    assert overridden == [640, 480]
    assert kept == [640, 480]
    assert taller == [640, 500]
    # Chromium's own rule, which the reference shows too: a 0 dimension falls back to the size the first
    # override gave the view, not to the last step's
    assert wider == [700, 480]
