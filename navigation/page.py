"""Pages as a flow sees them: the main page, popups found by URL, and the in-page runtime.

Why it is lean: Chromium, not the client, is the bottleneck on a busy
machine, so a page is set up with the fewest commands that work (Page
domain for load events, the runtime script for every new document, focus
emulation so the clipboard works headless) and nothing else is enabled
unless a step needs it.
"""
from __future__ import annotations

import time
import urllib.parse
from importlib import resources
from typing import Any

import orjson

from coordination.telemetry_context import current, stream_logger
from navigation.aria import Retry, aria_values, call_with_aria
from navigation.cdp import CDPConnection, CDPEvent, CDPSession
from navigation.errors import (
    CDPResponseError, CDPTargetClosed, CDPTimeout, NavigationError, SelectorNotFound, StepError, StepTimeout,
)
from navigation.keys import KeyboardState, press

_RUNTIME_JS = resources.files("navigation").joinpath("js/runtime.js").read_text(encoding="utf-8")
_INVALID_PARAMS = -32602
_NO_SESSION = -32001  # "Session with given id not found"
_RUNTIME = "globalThis[Symbol.for('drover.runtime')]"
_log = stream_logger("operational", __name__)


class Page:
    """One attached page target with Drover's runtime installed."""

    __slots__ = ("session", "url_hint", "keyboard", "network_enabled", "emulation", "origins", "overrides")

    def __init__(self, session: CDPSession, url_hint: str = "") -> None:
        self.session = session
        self.url_hint = url_hint
        self.keyboard = KeyboardState()  # held modifiers and keys, kept across steps
        self.network_enabled = False
        self.emulation = (False, False)  # (mobile, touch) as the last setViewport left them
        # What ``reset`` isolation must undo: every origin a frame of this page showed, and the
        # per-target overrides steps sent (Emulation.*, Network.emulateNetworkConditions).
        self.origins: set[str] = set()
        self.overrides: set[str] = set()

    @property
    def modifiers(self) -> int:
        """The modifier bits held right now (mouse events carry them too)."""
        return self.keyboard.modifiers

    @classmethod
    def setup(cls, session: CDPSession, url_hint: str = "") -> "Page":
        session.send("Page.enable")
        session.send("Page.addScriptToEvaluateOnNewDocument", {"source": _RUNTIME_JS})
        session.send("Emulation.setFocusEmulationEnabled", {"enabled": True})
        session.send("Runtime.evaluate", {"expression": _RUNTIME_JS})
        return cls(session, url_hint)

    def send(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> dict:
        if method in _OVERRIDES:
            self.overrides.add(method)
        return self.session.send(method, params, timeout=timeout)

    def note_navigations(self) -> None:
        """Take this page's buffered ``Page.frameNavigated`` events, remembering each frame's origin.

        Why here: a navigation watch discards earlier navigation events, and ``reset`` isolation needs
        every origin a job's frames showed (redirect hops leave only cookies and cache, which it clears
        for the whole context)."""
        for ev in self.session.pop_events("Page.frameNavigated"):
            self.note_frame(ev.params.get("frame"))

    def note_frame(self, frame: Any) -> None:
        if isinstance(frame, dict):
            origin = frame.get("securityOrigin") or origin_of(str(frame.get("url") or ""))
            if origin and origin != "://" and origin != "null":
                self.origins.add(origin)

    def evaluate(self, expression: str, *, timeout: float | None = None, await_promise: bool = True,
                 user_gesture: bool = False) -> Any:
        return self.session.evaluate(expression, await_promise=await_promise, timeout=timeout,
                                     user_gesture=user_gesture)

    RUNTIME = _RUNTIME

    def call(self, fn: str, *args: Any, timeout_ms: float) -> Any:
        """Call a runtime function with JSON arguments; in-page failures become typed step errors."""
        arglist = ",".join(orjson.dumps(a).decode() for a in args)
        expression = f"{_RUNTIME}.{fn}({arglist})"
        try:
            return self.session.evaluate(expression, await_promise=True, timeout=timeout_ms / 1000 + 5)
        except CDPResponseError as exc:
            raise self._step_error(exc, timeout_ms) from exc

    def find(self, fn: str, path: list[int], alternatives: list[dict], timeout_ms: float, *rest: Any) -> Any:
        """Call an element entry point of the runtime (``prepare``, ``waitForElement`` ...).

        Steps with ``aria/`` parts get them looked up in Chromium's
        accessibility tree first (:mod:`navigation.aria`); the rest is one
        in-page call that waits by itself.
        """
        values = aria_values(alternatives)
        if not values:
            return self.call(fn, path, alternatives, timeout_ms, *rest, timeout_ms=timeout_ms)
        return call_with_aria(self, fn, path, alternatives, timeout_ms, rest, values)

    def call_on(self, object_id: str, declaration: str, args: list[Any], objects: list[str], *,
                timeout_ms: float) -> Any:
        """``Runtime.callFunctionOn`` with JSON ``args`` then ``objects`` (object ids) as arguments.

        A ``DROVER_RETRY`` from the page is raised as :class:`navigation.aria.Retry`; other in-page
        failures as typed step errors, as :meth:`call` does.
        """
        params = {"objectId": object_id, "functionDeclaration": declaration, "awaitPromise": True,
                  "returnByValue": True,
                  "arguments": [*({"value": a} for a in args), *({"objectId": o} for o in objects)]}
        result = self.session.send("Runtime.callFunctionOn", params, timeout=timeout_ms / 1000 + 5)
        details = result.get("exceptionDetails")
        if details is None:
            return result.get("result", {}).get("value")
        text = str(details.get("exception", {}).get("description") or details.get("text", "exception"))
        message = text.splitlines()[0]
        if "DROVER_RETRY" in message:
            raise Retry(message.split("DROVER_RETRY", 1)[1].strip())
        raise self._step_error(CDPResponseError("Runtime.callFunctionOn", -1, message), timeout_ms)

    @staticmethod
    def timeout_error(detail: str, timeout_ms: float) -> NavigationError:
        """The error of an in-page wait that ran out of time (``detail``: what it waited for)."""
        if "matched" in detail:
            return SelectorNotFound(f"{detail} within {timeout_ms:.0f} ms")
        return StepTimeout(f"{detail} within {timeout_ms:.0f} ms")

    @classmethod
    def _step_error(cls, exc: CDPResponseError, timeout_ms: float) -> NavigationError:
        message = exc.cdp_message
        if "DROVER_TIMEOUT" in message:
            return cls.timeout_error(message.split("DROVER_TIMEOUT", 1)[1].strip(), timeout_ms)
        if "DROVER_" in message:
            return StepError(message.split("DROVER_", 1)[1])
        return exc

    def wait_for_load(self, timeout: float) -> None:
        """Wait for the main frame's load event."""
        self.session.wait_for_event("Page.loadEventFired", timeout=timeout)

    def location(self, path: tuple[int, ...] | list[int] = ()) -> tuple[str, str]:
        """(URL, title) of the main frame, or of the child frame at index ``path``."""
        doc = "document" if not path else f"{_RUNTIME}.frameWindow({list(path)}).document"
        href, title = self.evaluate(f"[{doc}.location.href, {doc}.title]", await_promise=False)
        return href, title

    def frame_id(self, path: tuple[int, ...] | list[int]) -> str:
        """The CDP frame id of the frame at index ``path`` (``()``: the main frame).

        Child frames are counted in the frame tree's order, as the
        reference replayer counts them (``frame.childFrames()[i]``).
        """
        if not path:
            return self.session.target_id  # a page target's id is its main frame's id, for the target's life
        node = self.send("Page.getFrameTree")["frameTree"]
        for depth, index in enumerate(path):
            children = node.get("childFrames") or []
            if index >= len(children):
                raise StepError(f"no frame at index path [{','.join(map(str, path[:depth + 1]))}]")
            node = children[index]
        return node["frame"]["id"]


_NAV_EVENTS = ("Page.navigatedWithinDocument", "Page.frameStoppedLoading")
# Per-target overrides a step may send; ``reset`` isolation undoes those a job sent.
_OVERRIDES = frozenset({"Emulation.setDeviceMetricsOverride", "Emulation.setTouchEmulationEnabled",
                        "Network.emulateNetworkConditions"})


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL; "" for about:, data:, blob: and the like."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


class NavigationWatch:
    """Started before a step with an asserted navigation; :meth:`wait` waits for *that step's frame*.

    Why a frame id and events, not the main frame's load event: a click in
    frame ``[0]`` navigates that frame only, and the main frame never
    loads again (DESIGN.md: "wait for the step's frame to navigate").  A
    navigation is the frame's ``Page.frameNavigated`` followed by its
    ``Page.frameStoppedLoading``, or a same-document navigation
    (``Page.navigatedWithinDocument``).
    """

    __slots__ = ("page", "path", "frame_id")

    def __init__(self, page: Page, path: tuple[int, ...]) -> None:
        self.page = page
        self.path = tuple(path)
        self.frame_id = page.frame_id(self.path)
        page.note_navigations()
        for method in _NAV_EVENTS:
            page.session.pop_events(method)  # events of earlier navigations say nothing about this step

    def _mine(self, event: Any) -> bool:
        frame = event.params.get("frame")
        return (frame.get("id") if isinstance(frame, dict) else event.params.get("frameId")) == self.frame_id

    def wait(self, timeout: float, *, started: bool = False) -> tuple[str, str]:
        """Wait for the navigation (``started``: it is known to have happened) and return (URL, title)."""
        deadline = time.monotonic() + timeout
        session = self.page.session
        if not started:
            first = session.wait_for_event(("Page.frameNavigated", "Page.navigatedWithinDocument"), self._mine,
                                           timeout=max(0.0, deadline - time.monotonic()))
            if first.method == "Page.frameNavigated":
                self.page.note_frame(first.params.get("frame"))
                session.wait_for_event("Page.frameStoppedLoading", self._mine,
                                       timeout=max(0.0, deadline - time.monotonic()))
        return self.page.location(self.path)


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

    @classmethod
    def around(cls, page: Page, *, browser_context_id: str | None = None) -> "Pages":
        """The pages of a run on a page its caller owns (a warm page, or one opened ahead of the job)."""
        return cls(page.session.connection, page, browser_context_id)

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
                    page.note_frame({"url": target})
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

    def close(self, page: Page, *, timeout: float) -> None:
        """Close ``page`` and return once it is closed for its opener and its target is gone.

        Why not just ``Target.closeTarget``: it answers before the page is
        torn down, and the opener's renderer learns of it later still, so
        the next step could see ``popup.closed === false`` or race the
        closing page.  A popup that script may close is closed from inside
        (``window.close()``), which marks it closing in its renderer at
        once — the opener, in the same renderer, sees ``closed === true``
        from then on; any other page (the main page, a page opened by the
        browser) is closed by the browser.  Either way the session's
        detachment is awaited, as the reference replayer awaits the
        target's destruction.
        """
        session_id = page.session.session_id
        deadline = time.monotonic() + timeout
        try:
            closing = page.evaluate("(window.close(), window.closed)", await_promise=False, timeout=timeout)
        except CDPTargetClosed:
            closing = True  # it closed while answering
        if closing is not True:
            self.connection.send("Target.closeTarget", {"targetId": page.session.target_id}, timeout=timeout)
        self.connection.wait_for_event("Target.detachedFromTarget",
                                       lambda ev: ev.params.get("sessionId") == session_id,
                                       timeout=max(0.05, deadline - time.monotonic()))
        self.connection.pop_events(session_id=session_id)  # its buffered events can never be read now
        self.forget(page)

    def forget(self, page: Page) -> None:
        if page is self.main:
            return
        self._by_url = {url: p for url, p in self._by_url.items() if p is not page}

    def popups(self) -> list[Page]:
        """The popups steps attached to (their navigations name origins ``reset`` must clear)."""
        return list(self._by_url.values())

    def close_all(self, *, settle_cookies: bool = True) -> None:
        """Close every page this run opened (popups and main), once their cookie writes have landed.

        ``settle_cookies=False`` after a failed run: a page whose step timed out may be stuck in a
        script and would hold the close up for the barrier's timeout, for a job whose last write
        matters less than getting its browser back.
        """
        if settle_cookies:
            self._prune_closed()
            for page in (self.main, *self._by_url.values()):
                settle_cookie_writes(page)
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
        # Events of these sessions can never be read now; on a connection that serves job after job they
        # would only fill the buffer (and slow every search of it).
        for session_id in {self.main.session.session_id, *(p.session.session_id for p in self._by_url.values())}:
            self.connection.pop_events(session_id=session_id)
        self._by_url.clear()


def settle_cookie_writes(page: Page, timeout: float = 5.0) -> bool:
    """Return once every ``document.cookie = ...`` the page's main frame ran is in the cookie store.

    Why: this Chromium sends a script's cookie write to the network
    service without waiting for it (a one-way mojo message), so a page
    can believe a cookie is set while the store has not applied it yet.
    Whoever reads the store next over another pipe — ``Storage.getCookies``
    when a remote credential's cookies are saved right after the job —
    can miss it (seen: 1 save in 160 with the network service paused for
    0.3 s; the credential's next job then runs logged out).  A *read* of
    ``document.cookie`` is a synchronous call on the same pipe, and a pipe
    delivers in order, so its answer comes after the write was applied.
    Measured with the network service paused: the write answers in 2 ms,
    ``navigator.cookieEnabled`` too (it never asks the service, so it is
    no barrier), the read waits until the service runs again.  The read's
    value stays in the page (``(document.cookie, true)``): cookie values
    are secrets and never cross CDP.

    ``False`` when the page is gone (nothing of it can be read) or did not
    answer in time (logged); the caller closes it either way.
    """
    try:
        page.evaluate("(document.cookie, true)", await_promise=False, timeout=timeout)
        return True
    except CDPTargetClosed:
        return False  # it closed (window.close, crash) while answering
    except (CDPResponseError, CDPTimeout) as exc:
        if getattr(exc, "code", None) == _NO_SESSION:  # closed before we asked: nothing left to wait for
            return False
        _log.warning("cookie writes of a page not settled before it closes", extra={
            "event": "cookie_settle_failed", "target_id": page.session.target_id, "error": str(exc), **current()})
        return False


def _main_frame_blank(ev: CDPEvent) -> bool:
    frame = ev.params.get("frame") or {}
    return not frame.get("parentId") and frame.get("url") == "about:blank"


class WarmPage:
    """``reset`` isolation: one page in a long-lived browser context, returned between jobs to what a
    fresh context's new page would be.

    Why: a new browser context and its renderer are most of a short job's cost in Chromium, and a
    reset that clears what a job left is far cheaper.  :meth:`reset` clears, for the whole context,
    cookies (``Storage.clearCookies``), granted permissions (``Browser.resetPermissions``) and the
    HTTP cache (``Network.clearBrowserCache``); for every origin a frame of the job showed (main
    page and attached popups, redirect targets included: see :meth:`Page.note_navigations`) all
    origin storage — localStorage, IndexedDB, Cache Storage, service workers, … —
    (``Storage.clearDataForOrigin``) and the page's sessionStorage (``DOMStorage.clear``); it closes
    every other page of the context (popups), undoes the per-target overrides the job sent
    (viewport, touch, network conditions), releases held keys, and returns the page to
    ``about:blank`` with ``window.name`` empty and a one-entry history
    (``Page.resetNavigationHistory``).  What it cannot reset it reports (:meth:`reset` returns the
    reason) so the caller replaces the context instead: a download, a page or frame in another
    process (a cross-site iframe, whose storage is partitioned and whose navigations this page's
    session does not see), a worker of an origin it did not track.
    """

    __slots__ = ("connection", "context_id", "page", "jobs")

    def __init__(self, connection: CDPConnection, context_id: str, page: Page) -> None:
        self.connection = connection
        self.context_id = context_id
        self.page = page
        self.jobs = 0

    @classmethod
    def open(cls, connection: CDPConnection) -> "WarmPage":
        context_id = connection.send("Target.createBrowserContext", {"disposeOnDetach": True})["browserContextId"]
        session = connection.new_page("about:blank", browser_context_id=context_id)
        return cls(connection, context_id, Page.setup(session))

    def dispose(self) -> None:
        """Close the context and everything in it (its pages, workers and storage)."""
        if not self.connection.closed:
            self.connection.send("Target.disposeBrowserContext", {"browserContextId": self.context_id}, timeout=10)

    def reset(self, pages: Pages | None = None, *, timeout: float = 10.0) -> str | None:
        """Clear what the last job left; ``None`` when done, else why this context cannot be reused."""
        page, conn, session = self.page, self.connection, self.page.session
        self.jobs += 1
        page.note_navigations()
        for popup in (pages.popups() if pages is not None else ()):
            popup.note_navigations()
            page.origins |= popup.origins
        if session.pop_events("Page.downloadWillBegin"):
            return "a download began"
        main = session.target_id
        others = []
        for info in conn.send("Target.getTargets", timeout=timeout)["targetInfos"]:
            if info.get("browserContextId") != self.context_id or info.get("targetId") == main:
                continue
            kind, origin = info.get("type"), origin_of(str(info.get("url") or ""))
            if kind == "iframe":
                return f"a frame in another process ({origin or 'no origin'})"
            if kind == "page":
                others.append(info["targetId"])
                if origin:
                    page.origins.add(origin)
            elif origin and origin not in page.origins:
                return f"a {kind} of an origin no frame showed ({origin})"
        for target_id in others:
            try:
                conn.send("Target.closeTarget", {"targetId": target_id}, timeout=timeout)
            except CDPResponseError as exc:
                if exc.code != _INVALID_PARAMS:  # -32602: closed meanwhile
                    raise
        for code in sorted(page.keyboard.pressed):  # keys a job left down: a new page holds none
            session.send("Input.dispatchKeyEvent", press(page.keyboard, code, "up"), timeout=timeout)
        page.keyboard = KeyboardState()
        session.pop_events("Page.loadEventFired")
        session.pop_events("Page.frameNavigated")  # the job's own: one to about:blank would pass for the reset's
        result = session.send("Page.navigate", {"url": "about:blank"}, timeout=timeout)
        if result.get("errorText"):
            return f"could not return to about:blank: {result['errorText']}"
        # The old document is gone once about:blank commits (its unload ran; it can write nothing more).  The
        # context's storage, cookies, permissions and HTTP cache depend on nothing but that, so they are
        # cleared in one batch (one round trip for all, the browser working on them at once) while
        # about:blank finishes loading.
        session.wait_for_event("Page.frameNavigated", _main_frame_blank, timeout=timeout)
        sid = session.session_id
        clear: list[tuple[str, dict[str, Any] | None, str | None]] = [
            ("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"}, sid)
            for origin in sorted(page.origins)]
        clear += [("Storage.clearCookies", {"browserContextId": self.context_id}, None),
                  ("Browser.resetPermissions", {"browserContextId": self.context_id}, None),
                  ("Network.clearBrowserCache", None, sid)]
        conn.send_all(clear, timeout=timeout)
        # Then the page's own state, once about:blank has loaded: only then is it the frame's active page
        # (resetting history needs that), and its load event, arriving after the next job's navigation was
        # sent, would pass for that one's.  Per-target overrides the job sent, in the order a session needs
        # (network conditions before Network.disable); window.name empty and one history entry, as a new
        # page has.
        session.wait_for_event("Page.loadEventFired", timeout=timeout)
        undo: list[tuple[str, dict[str, Any] | None, str | None]] = []
        if "Emulation.setDeviceMetricsOverride" in page.overrides:
            undo.append(("Emulation.clearDeviceMetricsOverride", None, sid))
        if "Emulation.setTouchEmulationEnabled" in page.overrides and page.emulation[1]:
            undo.append(("Emulation.setTouchEmulationEnabled", {"enabled": False}, sid))
        if page.network_enabled:
            if "Network.emulateNetworkConditions" in page.overrides:
                undo.append(("Network.emulateNetworkConditions", {
                    "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}, sid))
            undo.append(("Network.disable", None, sid))
        undo += [("Runtime.evaluate", {"expression": "window.name = ''"}, sid),
                 ("Page.resetNavigationHistory", None, sid)]
        conn.send_all(undo, timeout=timeout)
        page.network_enabled = False
        page.origins.clear()
        page.overrides.clear()
        page.emulation = (False, False)
        conn.pop_events(session_id=session.session_id)
        for popup in (pages.popups() if pages is not None else ()):
            conn.pop_events(session_id=popup.session.session_id)
        return None


__all__ = ["Page", "Pages", "NavigationWatch", "WarmPage", "origin_of", "settle_cookie_writes"]
