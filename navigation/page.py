"""Pages as a flow sees them: the main page, popups found by URL, and the in-page runtime.

Why it is lean: Chromium, not the client, is the bottleneck on a busy
machine, so a page is set up with the fewest commands that work (Page
domain for load events, the runtime script for every new document, focus
emulation so the clipboard works headless) and nothing else is enabled
unless a step needs it.
"""
from __future__ import annotations

import time
from importlib import resources
from typing import Any

import orjson

from navigation.cdp import CDPConnection, CDPSession
from navigation.errors import CDPResponseError, SelectorNotFound, StepError, StepTimeout

_RUNTIME_JS = resources.files("navigation").joinpath("js/runtime.js").read_text(encoding="utf-8")
_INVALID_PARAMS = -32602
_RUNTIME = "globalThis[Symbol.for('drover.runtime')]"


class Page:
    """One attached page target with Drover's runtime installed."""

    __slots__ = ("session", "url_hint", "modifiers", "network_enabled")

    def __init__(self, session: CDPSession, url_hint: str = "") -> None:
        self.session = session
        self.url_hint = url_hint
        self.modifiers = 0
        self.network_enabled = False

    @classmethod
    def setup(cls, session: CDPSession, url_hint: str = "") -> "Page":
        session.send("Page.enable")
        session.send("Page.addScriptToEvaluateOnNewDocument", {"source": _RUNTIME_JS})
        session.send("Emulation.setFocusEmulationEnabled", {"enabled": True})
        session.send("Runtime.evaluate", {"expression": _RUNTIME_JS})
        return cls(session, url_hint)

    def send(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> dict:
        return self.session.send(method, params, timeout=timeout)

    def evaluate(self, expression: str, *, timeout: float | None = None, await_promise: bool = True,
                 user_gesture: bool = False) -> Any:
        return self.session.evaluate(expression, await_promise=await_promise, timeout=timeout,
                                     user_gesture=user_gesture)

    def call(self, fn: str, *args: Any, timeout_ms: float) -> Any:
        """Call a runtime function with JSON arguments; in-page failures become typed step errors."""
        arglist = ",".join(orjson.dumps(a).decode() for a in args)
        expression = f"{_RUNTIME}.{fn}({arglist})"
        try:
            return self.session.evaluate(expression, await_promise=True, timeout=timeout_ms / 1000 + 5)
        except CDPResponseError as exc:
            message = exc.cdp_message
            if "DROVER_TIMEOUT" in message:
                detail = message.split("DROVER_TIMEOUT", 1)[1].strip()
                if "matched" in detail:
                    raise SelectorNotFound(f"{detail} within {timeout_ms:.0f} ms") from exc
                raise StepTimeout(f"{detail} within {timeout_ms:.0f} ms") from exc
            if "DROVER_" in message:
                raise StepError(message.split("DROVER_", 1)[1]) from exc
            raise

    def wait_for_load(self, timeout: float) -> None:
        """Wait for the main frame's load event."""
        self.session.wait_for_event("Page.loadEventFired", timeout=timeout)

    def location(self) -> tuple[str, str]:
        """(URL, title) of the main frame."""
        href, title = self.evaluate("[location.href, document.title]", await_promise=False)
        return href, title


class Pages:
    """The pages of one flow run: ``main`` plus popups attached on first use by exact URL."""

    def __init__(self, connection: CDPConnection, main: Page, browser_context_id: str | None = None) -> None:
        self.connection = connection
        self.main = main
        self.browser_context_id = browser_context_id
        self._by_url: dict[str, Page] = {}

    @classmethod
    def open(cls, connection: CDPConnection, *, browser_context_id: str | None = None) -> "Pages":
        session = connection.new_page("about:blank", browser_context_id=browser_context_id)
        return cls(connection, Page.setup(session), browser_context_id)

    def get(self, target: str, timeout: float) -> Page:
        """The page for a step's ``target``: ``main`` or the page whose URL matches exactly."""
        if target == "main":
            return self.main
        self._prune_closed()
        page = self._by_url.get(target)
        if page is not None:
            return page
        deadline = time.monotonic() + timeout
        while True:
            for info in self.connection.send("Target.getTargets")["targetInfos"]:
                if info.get("type") == "page" and info.get("url") == target:
                    page = Page.setup(self.connection.attach(info["targetId"]), target)
                    self._by_url[target] = page
                    return page
            if time.monotonic() >= deadline:
                raise StepTimeout(f"no page with URL {target!r} appeared")
            time.sleep(0.05)

    def _prune_closed(self) -> None:
        """Drop popups whose target has detached (closed by the page itself, e.g. window.close)."""
        gone = {ev.params.get("sessionId") for ev in self.connection.pop_events("Target.detachedFromTarget")}
        if gone:
            self._by_url = {url: p for url, p in self._by_url.items() if p.session.session_id not in gone}

    def forget(self, page: Page) -> None:
        if page is self.main:
            return
        self._by_url = {url: p for url, p in self._by_url.items() if p is not page}

    def close_all(self) -> None:
        """Close every page this run opened (popups and main)."""
        main = self.main.session.target_id
        popups = [p.session.target_id for p in self._by_url.values()]
        # Popups no step attached to (opened by our pages, or by their popups) would outlive the run.
        infos = [i for i in self.connection.send("Target.getTargets", timeout=5)["targetInfos"]
                 if i.get("type") == "page"]
        ours = {main, *popups}
        while found := {i["targetId"] for i in infos if i.get("openerId") in ours} - ours:
            ours |= found
        for target_id in [*(ours - {main, *popups}), *popups, main]:
            try:
                self.connection.send("Target.closeTarget", {"targetId": target_id}, timeout=5)
            except CDPResponseError as exc:
                if exc.code != _INVALID_PARAMS:  # -32602: target already closed by the flow
                    raise
        self._by_url.clear()


__all__ = ["Page", "Pages"]
