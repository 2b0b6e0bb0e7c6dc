"""A step that reads the fixture site's DOM event log (``window.droverEvents()``) into the test."""
from __future__ import annotations

from navigation.steps import StepOutcome, StepStrategy


class Capture(StepStrategy):
    name = "capture"
    handles = frozenset({"captureEvents"})

    def __init__(self) -> None:
        self.events: list[str] = []

    def run(self, step, ctx):
        self.events = ctx.page.evaluate("window.droverEvents()", await_promise=False)
        return StepOutcome()


__all__ = ["Capture"]
