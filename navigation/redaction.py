"""Hide a run's secrets on the screen for the moment a screenshot is taken, then put the page back.

Why: the DOM snapshot of a failed step is text and goes through the
credential store's :class:`~navigation.credentials.Redactor`, but a PNG
cannot be masked after the fact — a typed secret shows in its input (a
password field that a page switched to ``type=text``, a textarea, a
contenteditable) and on any page that echoes it.  So before every capture
the secret values are masked in the page itself and restored right after.

What is masked, in every frame (``js/redaction.js`` says how):

* every text node, ``input``/``textarea`` value and visible attribute
  (``placeholder``, ``value``, ``alt``, ``label``) that contains one of the
  run's secret values in any form the credential store knows (clear,
  JSON-escaped, URL-encoded, HTML-escaped);
* the whole value of every field a secret was typed into
  (:func:`mark_secret_field`, called by the change and key steps before
  they type), so a partly typed secret or one the page reformatted is
  hidden too.

Masking replaces each character with ``•`` (same length, so the layout
barely moves) and runs in Drover's own isolated world, where page scripts
can neither read the values nor patch the DOM methods used.

Frames: each in-process frame (same-origin, and cross-origin frames that
share the page's process) gets its own isolated world; out-of-process
frames (cross-site iframes under site isolation) are separate targets that
are attached to for the capture, redacted the same way, and detached.  If
any frame cannot be redacted the capture is refused
(:class:`~navigation.errors.ScreenshotRefused`) rather than taken with a
secret in it.  Not reached: closed shadow roots, a secret split across
several text nodes, CSS-generated text and anything drawn on a canvas —
for pages that draw secrets, turn failure screenshots off
(``FlowRunner(failure_screenshots=False)``).
"""
from __future__ import annotations

import base64
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterator, Sequence

from navigation.cdp import CDPSession
from navigation.errors import CDPError, CDPResponseError, CDPTargetClosed, ScreenshotRefused, StepError
from navigation.page import Page

log = logging.getLogger(__name__)

WORLD = "drover-redaction"
_FUNCTION = resources.files("navigation").joinpath("js/redaction.js").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Redaction:
    """What one redaction did: documents visited and items (text, values, attributes) masked."""

    frames: int
    masked: int


def _world(session: CDPSession, frame_id: str, timeout: float) -> int:
    """The execution context of Drover's isolated world in ``frame_id`` (Chromium reuses it by name)."""
    return session.send("Page.createIsolatedWorld", {"frameId": frame_id, "worldName": WORLD},
                        timeout=timeout)["executionContextId"]


def _call(session: CDPSession, context: int, op: str, arg: Any, timeout: float) -> Any:
    result = session.send("Runtime.callFunctionOn", {
        "functionDeclaration": _FUNCTION, "executionContextId": context, "returnByValue": True,
        "arguments": [{"value": op}, {"value": arg}]}, timeout=timeout)
    if "exceptionDetails" in result:
        details = result["exceptionDetails"]
        text = details.get("exception", {}).get("description") or details.get("text", "exception")
        error = StepError if op == "mark" else ScreenshotRefused  # a failed mark fails the typing step
        raise error(f"redaction script failed ({op}): {str(text).splitlines()[0]}")
    return result.get("result", {}).get("value")


def _frame_ids(session: CDPSession, timeout: float) -> list[str]:
    """Every frame of the session's target, parents before children."""
    pending = [session.send("Page.getFrameTree", timeout=timeout)["frameTree"]]
    out: list[str] = []
    while pending:
        node = pending.pop(0)
        out.append(node["frame"]["id"])
        pending.extend(node.get("childFrames", ()))
    return out


def _out_of_process_frames(page: Page, timeout: float) -> list[str]:
    """Target ids of the page's out-of-process iframes, nested ones included."""
    infos = page.session.connection.send("Target.getTargets", timeout=timeout)["targetInfos"]
    ours, found = {page.session.target_id}, []
    grew = True
    while grew:
        grew = False
        for info in infos:
            if info.get("type") == "iframe" and info.get("parentId") in ours and info["targetId"] not in ours:
                ours.add(info["targetId"])
                found.append(info["targetId"])
                grew = True
    return found


def mark_secret_field(page: Page, *, timeout: float = 5.0) -> bool:
    """Remember the focused field as holding a secret, so every later capture masks its whole value.

    Called right before a secret is typed.  True when a field was marked
    (false when focus is on the page itself, or inside an out-of-process
    frame, where the value is still masked wherever it appears in full).
    """
    session = page.session
    # A page target's id is its main frame's id: one command fewer than asking for the frame tree.
    where = _call(session, _world(session, session.target_id, timeout), "mark", False, timeout)
    if where != "frame":
        return where == "marked"
    for frame_id in _frame_ids(session, timeout)[1:]:
        if _call(session, _world(session, frame_id, timeout), "mark", True, timeout) == "marked":
            return True
    log.debug("secret typed into an out-of-process frame: masked where it appears in full",
              extra={"target": session.target_id})
    return False


@contextmanager
def redacted(page: Page, secrets: Sequence[str], *, timeout: float = 10.0) -> Iterator[Redaction]:
    """Mask ``secrets`` (longest first) in every frame of ``page`` for the body of the ``with``; then restore.

    Raises :class:`ScreenshotRefused` (before the body runs) when a frame
    cannot be redacted; whatever was already masked is restored.
    """
    values = sorted({s for s in secrets if s}, key=len, reverse=True)
    sessions: list[CDPSession] = [page.session]
    attached: list[CDPSession] = []
    done: list[tuple[CDPSession, int]] = []
    masked = 0
    try:
        try:
            for target_id in _out_of_process_frames(page, timeout):
                attached.append(page.session.connection.attach(target_id, timeout=timeout))
            sessions += attached
            for session in sessions:
                for frame_id in _frame_ids(session, timeout):
                    context = _world(session, frame_id, timeout)
                    done.append((session, context))
                    masked += _call(session, context, "redact", values, timeout)
        except CDPError as exc:
            raise ScreenshotRefused(f"could not hide the secrets in every frame ({exc}); "
                                    "no screenshot taken") from exc
        yield Redaction(frames=len(done), masked=masked)
    finally:
        _restore(done, attached, timeout)


def _restore(done: list[tuple[CDPSession, int]], attached: list[CDPSession], timeout: float) -> None:
    for session, context in reversed(done):
        try:
            _call(session, context, "restore", None, timeout)
        except (CDPResponseError, CDPTargetClosed) as exc:
            # The frame navigated or went away since (its context is gone): the masked document went
            # with it, nothing is left to restore.  Any other failure propagates: a page left masked
            # must fail the step, not carry on with bullets in its fields.
            log.warning("redaction not restored in a frame that went away", extra={
                "target": session.target_id, "error": str(exc)})
    for session in attached:
        try:
            session.connection.send("Target.detachFromTarget", {"sessionId": session.session_id},
                                    timeout=timeout)
        except (CDPResponseError, CDPTargetClosed) as exc:
            log.warning("out-of-process frame went away before detaching", extra={
                "target": session.target_id, "error": str(exc)})


def capture_png(page: Page, secrets: Sequence[str], params: dict[str, Any] | None = None, *,
                timeout: float = 10.0) -> bytes:
    """``Page.captureScreenshot`` as PNG bytes, with ``secrets`` hidden for the capture (none: plain)."""
    params = {"format": "png", **(params or {})}
    if not any(secrets):
        return base64.b64decode(page.send("Page.captureScreenshot", params, timeout=timeout)["data"])
    with redacted(page, secrets, timeout=timeout):
        data = page.send("Page.captureScreenshot", params, timeout=timeout)["data"]
    return base64.b64decode(data)


__all__ = ["WORLD", "Redaction", "capture_png", "mark_secret_field", "redacted"]
