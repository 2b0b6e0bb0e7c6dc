"""A deliberately tiny Chromium + raw CDP harness for the fixture-site tests.

Independent of ``navigation.cdp`` / ``navigation.launcher`` on purpose: the
fixture site is what those are tested against, so its own tests must not
depend on them.  One websocket to the browser endpoint, flattened page
sessions, events buffered while a command waits.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import websocket

log = logging.getLogger(__name__)

CHROMIUM = os.environ.get("DROVER_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)
START_TIMEOUT_S = 20.0
COMMAND_TIMEOUT_S = 10.0
MAX_BUFFERED_EVENTS = 10_000


class CdpFailure(AssertionError):
    """A CDP command answered with an error, or nothing arrived in time."""


class Cdp:
    """Synchronous CDP over one websocket; events are buffered, never dropped silently."""

    def __init__(self, ws_url: str) -> None:
        self._ws = websocket.create_connection(ws_url, timeout=COMMAND_TIMEOUT_S,
                                               suppress_origin=True)
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self._ws.close()

    def _buffer(self, event: dict[str, Any]) -> None:
        if len(self.events) >= MAX_BUFFERED_EVENTS:
            raise CdpFailure(f"more than {MAX_BUFFERED_EVENTS} unread CDP events")
        self.events.append(event)

    def _recv(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CdpFailure("CDP: nothing arrived in time")
        self._ws.settimeout(remaining)
        try:
            return json.loads(self._ws.recv())
        except websocket.WebSocketTimeoutException as exc:
            raise CdpFailure("CDP: nothing arrived in time") from exc

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | None = None, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        self._ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        for _ in range(1_000_000):
            reply = self._recv(deadline)
            if reply.get("id") != self._next_id:
                if "method" in reply:
                    self._buffer(reply)
                continue
            if "error" in reply:
                raise CdpFailure(f"{method}: {reply['error']}")
            return reply.get("result", {})
        raise CdpFailure(f"{method}: too many unrelated messages")

    def wait_event(self, method: str, *, session: str | None = None,
                   timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        """The first event ``method`` (of ``session``, if given), buffered or arriving."""
        def matches(ev: dict[str, Any]) -> bool:
            return ev.get("method") == method and session in (None, ev.get("sessionId"))

        for ev in list(self.events):
            if matches(ev):
                self.events.remove(ev)
                return ev
        deadline = time.monotonic() + timeout
        for _ in range(1_000_000):
            ev = self._recv(deadline)
            if matches(ev):
                return ev
            if "method" in ev:
                self._buffer(ev)
        raise CdpFailure(f"no {method} event")

    def forget(self, method: str, *, session: str | None = None) -> None:
        """Drop buffered ``method`` events, so a later wait sees only new ones."""
        for ev in list(self.events):
            if ev.get("method") == method and session in (None, ev.get("sessionId")):
                self.events.remove(ev)


@dataclass
class Page:
    """One page target attached with a flattened session."""

    cdp: Cdp
    target_id: str
    session: str

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        return self.cdp.call(method, params, session=self.session, timeout=timeout)

    def evaluate(self, expression: str, *, await_promise: bool = False, gesture: bool = False,
                 timeout: float = COMMAND_TIMEOUT_S) -> Any:
        result = self.call("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": await_promise,
            "userGesture": gesture,
        }, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpFailure(f"evaluate {expression[:60]!r}: {text}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        with self.navigation():
            self.call("Page.navigate", {"url": url})

    @contextlib.contextmanager
    def navigation(self) -> Iterator[None]:
        """Wrap an action that navigates this page; returns once the new page has loaded."""
        self.cdp.forget("Page.loadEventFired", session=self.session)
        yield
        try:
            self.cdp.wait_event("Page.loadEventFired", session=self.session)
        except CdpFailure as exc:
            where = self.evaluate("[location.href, document.readyState,"
                                  " (window.droverEvents ? droverEvents().slice(-5) : [])]")
            raise CdpFailure(f"no load event; the page is at {where}") from exc

    def wait_for(self, condition: str, timeout_ms: int = 5000) -> None:
        """Poll ``condition`` inside the page (20 ms steps) until truthy, bounded."""
        script = (
            "new Promise((resolve, reject) => { const t0 = performance.now(); let last = '';"
            " (function poll() { let ok = false;"
            " try { ok = !!(" + condition + "); } catch (e) { last = ' (last error: ' + e + ')'; }"
            " if (ok) resolve(true);"
            f" else if (performance.now() - t0 > {timeout_ms}) reject(new Error('timed out: ' + "
            + json.dumps(condition) + " + last));"
            " else setTimeout(poll, 20); })(); })"
        )
        self.evaluate(script, await_promise=True, timeout=timeout_ms / 1000 + 5)

    def box(self, element_js: str) -> dict[str, float]:
        """Border box of the element ``element_js`` evaluates to, in viewport CSS px."""
        return self.evaluate("(() => { const r = (" + element_js + ").getBoundingClientRect();"
                             " return {x: r.left, y: r.top, w: r.width, h: r.height}; })()")

    def mouse(self, kind: str, x: float, y: float, *, button: str = "none", buttons: int = 0,
              clicks: int = 0, modifiers: int = 0) -> None:
        self.call("Input.dispatchMouseEvent", {
            "type": kind, "x": x, "y": y, "button": button, "buttons": buttons,
            "clickCount": clicks, "modifiers": modifiers,
        })

    def click(self, x: float, y: float, *, button: str = "left", count: int = 1,
              hold_s: float = 0.0) -> None:
        mask = {"left": 1, "right": 2, "middle": 4, "back": 8, "forward": 16}[button]
        self.mouse("mouseMoved", x, y)
        for n in range(1, count + 1):
            self.mouse("mousePressed", x, y, button=button, buttons=mask, clicks=n)
            if hold_s:
                time.sleep(hold_s)  # the hold itself is what is under test
            self.mouse("mouseReleased", x, y, button=button, buttons=0, clicks=n)

    def key(self, key: str, *, code: str = "", vk: int = 0, text: str = "",
            modifiers: int = 0) -> None:
        base = {"key": key, "code": code, "windowsVirtualKeyCode": vk,
                "nativeVirtualKeyCode": vk, "modifiers": modifiers}
        self.call("Input.dispatchKeyEvent", {**base, "type": "keyDown" if text else "rawKeyDown",
                                             "text": text, "unmodifiedText": text})
        self.call("Input.dispatchKeyEvent", {**base, "type": "keyUp"})

    def type_text(self, text: str) -> None:
        for ch in text:
            if ch == " ":
                self.key(" ", code="Space", vk=32, text=" ")
            elif ch.isalpha() and ch.isascii():
                up = ch.upper()
                self.key(ch, code=f"Key{up}", vk=ord(up), text=ch,
                         modifiers=8 if ch.isupper() else 0)
            elif ch.isdigit():
                self.key(ch, code=f"Digit{ch}", vk=ord(ch), text=ch)
            else:
                self.key(ch, text=ch)

    def events(self) -> list[str]:
        return self.evaluate("window.droverEvents()")


@dataclass
class Chromium:
    """A headless Chromium in its own process group with a throw-away profile."""

    proc: subprocess.Popen[bytes]
    profile: Path
    cdp: Cdp
    pages: list[Page] = field(default_factory=list)

    @classmethod
    def launch(cls) -> Chromium:
        profile = Path(tempfile.mkdtemp(prefix="drover-fixture-test-"))
        proc: subprocess.Popen[bytes] | None = None
        try:
            with open(profile.parent / (profile.name + ".log"), "wb") as log_file:
                proc = subprocess.Popen(
                    [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                    start_new_session=True,
                    # Chromium's own org.chromium.Chromium.* folder goes into the profile, removed with it
                    env={**os.environ, "TMPDIR": str(profile)})
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + START_TIMEOUT_S
            lines: list[str] = []
            while time.monotonic() < deadline and proc.poll() is None:
                if port_file.exists():
                    lines = port_file.read_text().split("\n")
                    if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                        break
                time.sleep(0.05)  # Chromium writes the file once; nothing to wait on
            if len(lines) < 2 or not lines[1].strip():
                output = (profile.parent / (profile.name + ".log")).read_text(errors="replace")
                raise RuntimeError(f"Chromium did not open DevTools (exit={proc.poll()}):\n"
                                   f"{output[-2000:]}")
            cdp = Cdp(f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}")
            return cls(proc=proc, profile=profile, cdp=cdp)
        except BaseException:
            _kill_group(proc)
            _remove(profile)
            raise

    def new_page(self, url: str = "about:blank") -> Page:
        target = self.cdp.call("Target.createTarget", {"url": url})["targetId"]
        return self.attach(target)

    def attach(self, target_id: str) -> Page:
        session = self.cdp.call("Target.attachToTarget",
                                {"targetId": target_id, "flatten": True})["sessionId"]
        page = Page(self.cdp, target_id, session)
        page.call("Runtime.enable")
        page.call("Page.enable")
        self.pages.append(page)
        return page

    def close_page(self, page: Page) -> None:
        """Close ``page`` unless it is already gone (a popup may close itself)."""
        self.pages.remove(page)
        alive = {t["targetId"] for t in self.cdp.call("Target.getTargets")["targetInfos"]}
        if page.target_id in alive:
            self.cdp.call("Target.closeTarget", {"targetId": page.target_id})

    def close(self) -> None:
        try:
            self.cdp.close()
        finally:
            _kill_group(self.proc)
            _remove(self.profile)


def _kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the browser's process group, then SIGKILL whatever is left; bounded."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        log.debug("chromium group %d already gone", proc.pid)
    try:
        proc.wait(5.0)
    except subprocess.TimeoutExpired:
        log.warning("chromium %d ignored SIGTERM for 5 s", proc.pid)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)  # children still exiting
    raise RuntimeError(f"chromium process group {proc.pid} survived SIGKILL")


def _remove(profile: Path) -> None:
    log_file = profile.parent / (profile.name + ".log")
    if log_file.exists():
        log_file.unlink()
    for _ in range(20):  # a dying renderer may still flush a file into the profile
        if not profile.exists():
            return
        try:
            shutil.rmtree(profile)
        except OSError as exc:
            log.debug("profile removal retry: %r", exc)
            time.sleep(0.05)
    if profile.exists():
        raise RuntimeError(f"could not remove {profile}")
