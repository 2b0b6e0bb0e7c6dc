"""The built-in strategies: the 14 Recorder step types and Drover's clip, longPress, screenshot, extract.

Each strategy sends as few CDP commands as the semantics allow: element
work (find, wait visible, scroll the press point into view, wait stable)
is one in-page call, followed by the real input events.
"""
from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import orjson

from navigation.credentials import Redactor
from navigation.errors import AssertionFailed, CDPResponseError, CDPTargetClosed, StepError
from navigation.flow.records import (
    ChangeStep, ClipStep, CloseStep, DoubleClickStep, ElementStep, EmulateNetworkConditionsStep, ExtractStep,
    HoverStep, KeyDownStep, KeyStep, KeyUpStep, LongPressStep, NavigateStep, PointerStep, ScreenshotStep,
    ScrollStep, SecretRef, SetViewportStep, Step, WaitForElementStep, WaitForExpressionStep,
)
from navigation.keys import KEYS, key_event, press
from navigation.page import Page
from navigation.redaction import capture_png, mark_secret_field
from navigation.steps.registry import StepContext, StepOutcome, StepStrategy, StrategyRegistry

_CDP_BUTTON = {"primary": "left", "auxiliary": "middle", "secondary": "right", "back": "back",
               "forward": "forward"}
_BUTTON_MASK = {"primary": 1, "secondary": 2, "auxiliary": 4, "back": 8, "forward": 16}


def alternatives(step: ElementStep) -> list[dict]:
    """Selector alternatives as plain JSON for the in-page runtime."""
    return [{"index": alt.index, "chain": [{"kind": str(s.kind), "value": s.value} for s in alt.chain]}
            for alt in step.selectors]


def _offset(step: PointerStep) -> dict:
    if step.offset_x is not None and step.offset_y is not None:
        return {"mode": "offset", "x": step.offset_x, "y": step.offset_y}
    if step.rx is not None and step.ry is not None:
        return {"mode": "ratio", "x": step.rx, "y": step.ry}
    return {"mode": "centre"}


def _point(step: ElementStep, ctx: StepContext, offset: dict | None = None) -> tuple[int | None, float, float]:
    hit = ctx.page.find("prepare", list(step.frame), alternatives(step), ctx.remaining_ms,
                        offset if offset is not None else _offset(step))  # type: ignore[arg-type]
    return hit["index"], hit["x"], hit["y"]


def _click_at(page: Page, x: float, y: float) -> None:
    """One primary click at (x, y): move, press, release."""
    _mouse(page, "mouseMoved", x, y)
    _mouse(page, "mousePressed", x, y, "left", 1, 1)
    _mouse(page, "mouseReleased", x, y, "left", 1, 0)


def _mouse(page: Page, kind: str, x: float, y: float, button: str = "none", count: int = 0,
           buttons: int = 0) -> None:
    params = {"type": kind, "x": x, "y": y, "modifiers": page.modifiers}
    if button != "none":
        params.update(button=button, clickCount=count, buttons=buttons)
    page.send("Input.dispatchMouseEvent", params)


class ClickStrategy(StepStrategy):
    name = "click"
    handles = frozenset({"click", "doubleClick", "longPress"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, PointerStep)
        index, x, y = _point(step, ctx)
        page, button = ctx.page, _CDP_BUTTON[step.button]
        mask = _BUTTON_MASK[step.button]
        _mouse(page, "mouseMoved", x, y)
        hold = (step.duration if step.duration is not None else 1000.0) if isinstance(step, LongPressStep) \
            else (step.duration or 0.0)
        presses = 2 if isinstance(step, DoubleClickStep) else 1
        try:
            for count in range(1, presses + 1):
                _mouse(page, "mousePressed", x, y, button, count, mask)
                if hold:
                    time.sleep(min(hold, ctx.remaining_ms) / 1000)
                _mouse(page, "mouseReleased", x, y, button, count, 0)
        except CDPTargetClosed:
            # The click closed its own page (window.close in a handler): the click happened.
            ctx.pages.forget(page)
            return StepOutcome(matched_index=index, detail={"closed_page": True})
        return StepOutcome(matched_index=index, detail={"x": round(x, 1), "y": round(y, 1)})


class HoverStrategy(StepStrategy):
    name = "hover"
    handles = frozenset({"hover"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, HoverStep)
        hit = ctx.page.find("prepare", list(step.frame), alternatives(step), ctx.remaining_ms,
                            {"mode": "centre"})
        _mouse(ctx.page, "mouseMoved", hit["x"], hit["y"])
        return StepOutcome(matched_index=hit["index"])


def type_text(page: Page, text: str) -> None:
    """Type one key at a time (keyDown with text, keyUp): one ``input`` event per character.

    A character with no key on the US layout (``é``, ``€``) is inserted as
    text (``Input.insertText``: an ``input`` event, no key events), as the
    reference replayer types it.
    """
    for ch in text:
        if ch in KEYS:
            page.send("Input.dispatchKeyEvent", key_event(ch, "down", page.modifiers))
            page.send("Input.dispatchKeyEvent", key_event(ch, "up", page.modifiers))
        else:
            page.send("Input.insertText", {"text": ch})


class ChangeStrategy(StepStrategy):
    name = "change"
    handles = frozenset({"change"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, ChangeStep)
        value = ctx.value(step.value)
        plan = ctx.page.find("prepareChange", list(step.frame), alternatives(step), ctx.remaining_ms, value)
        if isinstance(step.value, SecretRef) and plan["mode"] in ("type", "set"):
            mark_secret_field(ctx.page)  # focused by prepareChange: screenshots hide its whole value
        if plan["mode"] == "type":
            type_text(ctx.page, plan["text"])
        elif plan["mode"] == "toggle":  # a checkbox, radio or switch in the other state: click it
            _, x, y = _point(step, ctx, {"mode": "centre"})
            _click_at(ctx.page, x, y)
        return StepOutcome(matched_index=plan["index"], detail={"mode": plan["mode"]})


class KeyStrategy(StepStrategy):
    name = "key"
    handles = frozenset({"keyDown", "keyUp"})

    def problems(self, step: Step) -> list[str]:
        assert isinstance(step, KeyStep)
        key = step.key
        if isinstance(key, SecretRef) or "${" in key or len(key) == 1 or key in KEYS:
            return []
        return [f'"key" {key!r} is not a key name of the US keyboard layout (a key value such as "Shift" '
                'or "a", or a code such as "ShiftLeft" or "KeyA")']

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, KeyStep)
        key = ctx.value(step.key)
        page = ctx.page
        down = isinstance(step, KeyDownStep)
        if isinstance(step.key, SecretRef) and len(key) > 1 and key not in KEYS:
            # A secret in a key step is a key sequence (a PIN, a canvas password): keyDown types
            # it one key at a time; the matching keyUp has nothing left to release.
            if down:
                mark_secret_field(page)
                type_text(page, key)
            return StepOutcome()
        try:
            params = press(page.keyboard, key, "down" if down else "up")
        except KeyError as exc:
            shown = "" if isinstance(step.key, SecretRef) else f" {key!r}"
            raise StepError(f"unknown key name{shown} (not in the US keyboard layout)") from exc
        page.send("Input.dispatchKeyEvent", params)
        return StepOutcome()


class ScrollStrategy(StepStrategy):
    name = "scroll"
    handles = frozenset({"scroll"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, ScrollStep)
        hit = ctx.page.find("scroll", list(step.frame), alternatives(step), ctx.remaining_ms, step.x, step.y)
        return StepOutcome(matched_index=hit.get("index"))


class WaitForElementStrategy(StepStrategy):
    name = "waitForElement"
    handles = frozenset({"waitForElement"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, WaitForElementStep)
        spec = {"operator": step.operator, "count": step.count, "visible": step.visible,
                "properties": dict(step.properties) if step.properties else None,
                "attributes": dict(step.attributes) if step.attributes else None}
        try:
            hit = ctx.page.find("waitForElement", list(step.frame), alternatives(step), ctx.remaining_ms, spec)
        except StepError as exc:
            raise AssertionFailed(str(exc)) from exc
        return StepOutcome(matched_index=hit["index"], detail={"count": hit["count"]})


class WaitForExpressionStrategy(StepStrategy):
    name = "waitForExpression"
    handles = frozenset({"waitForExpression"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, WaitForExpressionStep)
        expression = ctx.text(step.expression)
        if step.frame:
            expression = (f"globalThis[Symbol.for('drover.runtime')].frameWindow({list(step.frame)})"
                          f".eval({expression!r})")
        delay = 0.01
        last = None
        while True:
            last = ctx.page.evaluate(f"(async () => !!(await ({expression})))()",
                                     timeout=ctx.remaining_ms / 1000 + 1)
            if last:
                return StepOutcome()
            if ctx.remaining_ms <= 0:
                raise AssertionFailed(f"expression stayed falsy for {step.timeout:.0f} ms")
            time.sleep(min(delay, ctx.remaining_ms / 1000))
            delay = min(delay * 2, 0.1)


class NavigateStrategy(StepStrategy):
    name = "navigate"
    handles = frozenset({"navigate"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, NavigateStep)
        url = ctx.text(step.url)
        page = ctx.page
        page.session.pop_events("Page.loadEventFired")
        result = page.send("Page.navigate", {"url": url}, timeout=ctx.remaining_ms / 1000 + 1)
        if result.get("errorText"):
            raise StepError(f"navigation to {url} failed: {result['errorText']}")
        page.wait_for_load(ctx.remaining_ms / 1000)
        return StepOutcome(navigated=True)


class SetViewportStrategy(StepStrategy):
    name = "setViewport"
    handles = frozenset({"setViewport"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, SetViewportStep)
        orientation = ({"type": "landscapePrimary", "angle": 90} if step.is_landscape
                       else {"type": "portraitPrimary", "angle": 0})
        ctx.page.send("Emulation.setDeviceMetricsOverride", {
            "width": step.width, "height": step.height, "deviceScaleFactor": step.device_scale_factor,
            "mobile": step.is_mobile, "screenOrientation": orientation})
        ctx.page.send("Emulation.setTouchEmulationEnabled",
                      {"enabled": step.has_touch, **({"maxTouchPoints": 1} if step.has_touch else {})})
        emulation = (step.is_mobile, step.has_touch)
        if emulation == ctx.page.emulation:
            return StepOutcome()
        # A page reads "mobile" and touch support when it loads (meta viewport, pointer media queries,
        # ontouchstart), so, as the reference replayer does, a change of either reloads the page.
        ctx.page.emulation = emulation
        page = ctx.page
        page.session.pop_events("Page.loadEventFired")
        page.send("Page.reload", timeout=ctx.remaining_ms / 1000 + 1)
        page.wait_for_load(ctx.remaining_ms / 1000)
        return StepOutcome(navigated=True, detail={"reloaded": True})


class EmulateNetworkStrategy(StepStrategy):
    name = "emulateNetworkConditions"
    handles = frozenset({"emulateNetworkConditions"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, EmulateNetworkConditionsStep)
        page = ctx.page
        if not page.network_enabled:
            page.send("Network.enable")
            page.network_enabled = True
        page.send("Network.emulateNetworkConditions", {
            "offline": step.offline, "latency": step.latency,
            "downloadThroughput": step.download, "uploadThroughput": step.upload})
        return StepOutcome()


class CloseStrategy(StepStrategy):
    name = "close"
    handles = frozenset({"close"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, CloseStep)
        ctx.pages.close(ctx.page, timeout=ctx.remaining_ms / 1000 + 1)
        return StepOutcome()


class ClipStrategy(StepStrategy):
    """Put a value on the clipboard so a later step can paste it (canvas on-screen keyboards)."""

    name = "clip"
    handles = frozenset({"clip"})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, ClipStep)
        value = ctx.value(step.value)
        page = ctx.page
        href, _title = page.location()
        parts = urllib.parse.urlsplit(href)
        origin = f"{parts.scheme}://{parts.netloc}"
        grant = {"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}
        if ctx.pages.browser_context_id is not None:
            grant["browserContextId"] = ctx.pages.browser_context_id
        page.session.connection.send("Browser.grantPermissions", grant)
        ok = page.evaluate(
            f"(async (v) => {{ await navigator.clipboard.writeText(v);"
            f" return (await navigator.clipboard.readText()) === v; }})({_js_string(value)})",
            timeout=ctx.remaining_ms / 1000 + 1, user_gesture=True)
        if ok is not True:
            raise StepError("the clipboard did not take the value (read-back differs)")
        return StepOutcome(detail={"origin": origin, "length": len(value)})


class ScreenshotStrategy(StepStrategy):
    name = "screenshot"
    handles = frozenset({"screenshot"})

    def problems(self, step: Step) -> list[str]:
        assert isinstance(step, ScreenshotStep)
        name = step.name
        if name and (Path(name).is_absolute() or ".." in Path(name).parts):
            return [f'"name" must be a relative path inside the artifact folder, got {name!r}']
        return []

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, ScreenshotStep)
        params: dict = {"format": "png"}
        index = None
        if step.selectors:
            rect = ctx.page.find("pageRect", list(step.frame), alternatives(step), ctx.remaining_ms)
            index = rect.pop("index")
            params["clip"] = {**rect, "scale": 1}
            params["captureBeyondViewport"] = True
        elif step.clip is not None:
            c = step.clip
            params["clip"] = {"x": c.x, "y": c.y, "width": c.width, "height": c.height, "scale": 1}
            params["captureBeyondViewport"] = True
        elif step.full_page:
            params["captureBeyondViewport"] = True
            w, h = ctx.page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]",
                                     await_promise=False)
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
        # The run's secrets are hidden on the page for the capture (ScreenshotRefused if they cannot be).
        png = capture_png(ctx.page, ctx.secret_forms(), params, timeout=ctx.remaining_ms / 1000 + 5)
        name = step.name or f"step-{step.index:02d}-screenshot.png"
        path = ctx.artifacts_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return StepOutcome(matched_index=index, detail={"artifact": str(path)})


MAX_EXTRACTED_BYTES = 64 * 1024
"""The cap on one job's extracted data: the UTF-8 JSON encoding of all its names and values together."""


class ExtractTooLarge(StepError):
    """The job's extracted data would exceed the cap; nothing of the step is kept.

    ``input``: the flow asks for more than a result row holds, and a retry
    would extract the same again.
    """

    category = "input"


class ExtractStrategy(StepStrategy):
    """Evaluate an expression in the page (a promise is awaited) and keep its JSON value under ``name``.

    The page encodes the value (``JSON.stringify``: what a page's own
    ``fetch`` body would be; ``undefined`` becomes ``null``) and refuses a
    string over the cap before it crosses CDP, so a page cannot push
    megabytes through the socket.  Secrets the run has used so far are
    masked here, and the runner masks the whole data again at the end of
    the flow with every secret the flow used (a secret typed after the
    extract is masked too).  The cap (``max_bytes``) applies to the job's
    data as a whole after masking; over it the step fails and the data is
    left as it was before the step.
    """

    name = "extract"
    handles = frozenset({"extract"})

    def __init__(self, max_bytes: int = MAX_EXTRACTED_BYTES) -> None:
        if not isinstance(max_bytes, int) or max_bytes < 2:
            raise ValueError(f"max_bytes must be a whole number >= 2, got {max_bytes!r}")
        self.max_bytes = max_bytes

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, ExtractStep)
        expression = ctx.text(step.expression)
        if step.frame:
            expression = (f"globalThis[Symbol.for('drover.runtime')].frameWindow({list(step.frame)})"
                          f".eval({expression!r})")
        script = (f"(async () => {{ const v = await ({expression}); const s = JSON.stringify(v);"
                  f" if (s === undefined) return 'null';"
                  f" return s.length > {self.max_bytes} ? {{tooLarge: new TextEncoder().encode(s).length}} : s; }})()")
        try:
            encoded = ctx.page.evaluate(script, timeout=ctx.remaining_ms / 1000 + 1)
        except CDPResponseError as exc:
            if exc.code != -1:  # a protocol error, not the page's exception: the cdp category it is
                raise
            raise StepError(f'extract "{step.name}": the expression failed in the page: '
                            f"{exc.cdp_message}") from exc
        if isinstance(encoded, dict) and "tooLarge" in encoded:
            raise ExtractTooLarge(f'extract "{step.name}": the value is {encoded["tooLarge"]} bytes of JSON; '
                                  f"the cap is {self.max_bytes} bytes per job")
        if not isinstance(encoded, str):
            raise StepError(f'extract "{step.name}": the page returned no JSON text')
        try:
            decoded = orjson.loads(encoded)
        except orjson.JSONDecodeError as exc:  # a page that replaced JSON.stringify
            raise StepError(f'extract "{step.name}": the page returned text that is not JSON ({exc.msg})') from exc
        value = Redactor(ctx.secret_forms()).mask_data(decoded)
        data = {**ctx.extracted, step.name: value}
        size = len(orjson.dumps(data))
        if size > self.max_bytes:
            raise ExtractTooLarge(f'extract "{step.name}": the job\'s extracted data would be {size} bytes of '
                                  f"JSON; the cap is {self.max_bytes} bytes per job")
        ctx.extracted[step.name] = value
        return StepOutcome(detail={"name": step.name, "bytes": size})


def _js_string(value: str) -> str:
    return orjson.dumps(value).decode()


BUILTIN_STRATEGIES: tuple[type[StepStrategy], ...] = (
    SetViewportStrategy, NavigateStrategy, ClickStrategy, HoverStrategy, ChangeStrategy, KeyStrategy,
    ScrollStrategy, WaitForElementStrategy, WaitForExpressionStrategy, EmulateNetworkStrategy,
    CloseStrategy, ClipStrategy, ScreenshotStrategy, ExtractStrategy,
)


def default_registry() -> StrategyRegistry:
    """A fresh registry with every built-in strategy (``customStep`` needs a registered handler)."""
    return StrategyRegistry(cls() for cls in BUILTIN_STRATEGIES)


__all__ = ["BUILTIN_STRATEGIES", "default_registry", "alternatives", "type_text", "MAX_EXTRACTED_BYTES",
           "ExtractTooLarge"] + [
    cls.__name__ for cls in BUILTIN_STRATEGIES]
