"""``aria/`` selectors resolved through Chromium's own accessibility tree.

Why not in the page: an accessible name is what Chromium computes (labels
that wrap their control, an image's alt, CSS generated content, hidden
parts left out, a title that is only a description), and only the
browser's accessibility tree has it; a hand-written approximation in the
page matched the wrong element or none (DESIGN.md, "Replay semantics to
match").  So, as the reference replayer's ARIA handler does, each
``aria/NAME[role="..."]`` part is looked up with
``Accessibility.queryAXTree`` on the step's frame document, and the
elements found are handed to the in-page runtime, which does everything
else (chains, visibility, waiting for stability) as for any selector.

Cost: the page cannot refresh a lookup by itself, so a step with an
``aria/`` part is polled from here — each attempt is one accessibility
query per distinct ``aria/`` part plus one ``DOM.resolveNode`` per match
and one runtime call — instead of one in-page wait.  Steps without
``aria/`` parts never come here.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from navigation.errors import CDPResponseError
from navigation.flow._selectors import parse_aria

if TYPE_CHECKING:
    from navigation.page import Page

log = logging.getLogger(__name__)

GROUP = "drover-aria"
MAX_MATCHES = 32
"""Elements taken per ``aria/`` part and attempt (in accessibility-tree order)."""
_NOT_ELEMENTS = frozenset({"StaticText", "InlineTextBox"})
_GONE = -32000  # CDP "server error": the node or document went away between two commands (a navigation)
_POLL_FIRST_S, _POLL_MAX_S = 0.02, 0.1
# Runs in the frame document's own world (where DOM.resolveNode put the elements) and hands over to the
# top document's runtime, which addresses frames by index path.
_FORWARD = ("function (opts, fn, args, ...els) {"
            " return window.top[Symbol.for('drover.runtime')].run(opts, fn, args, els); }")


class Retry(Exception):
    """This attempt found nothing (yet); ``detail`` is the in-page reason, for the final timeout."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def aria_values(alternatives: list[dict]) -> list[str]:
    """The distinct ``aria/`` values of the selector alternatives (JSON form), in order."""
    seen: dict[str, None] = {}
    for alt in alternatives:
        for part in alt["chain"]:
            if part["kind"] == "aria":
                seen.setdefault(part["value"], None)
    return list(seen)


def call_with_aria(page: "Page", fn: str, path: list[int], alternatives: list[dict], timeout_ms: float,
                   rest: tuple[Any, ...], values: list[str]) -> Any:
    """Call runtime entry point ``fn`` until it finds its element, looking ``values`` up before each try."""
    deadline = time.monotonic() + timeout_ms / 1000
    delay = _POLL_FIRST_S
    while True:
        remaining_ms = max(0.0, (deadline - time.monotonic()) * 1000)
        try:
            return _attempt(page, fn, path, alternatives, remaining_ms, rest, values)
        except Retry as retry:
            if time.monotonic() >= deadline:
                raise page.timeout_error(retry.detail, timeout_ms) from None
        time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(delay * 2, _POLL_MAX_S)


def _attempt(page: "Page", fn: str, path: list[int], alternatives: list[dict], remaining_ms: float,
             rest: tuple[Any, ...], values: list[str]) -> Any:
    try:
        doc = _frame_document(page, path)
        counts: list[list[object]] = []
        elements: list[str] = []
        for value in values:
            found = [oid for oid in (_resolve(page, b) for b in _query(page, doc, value)) if oid is not None]
            counts.append([value, len(found)])
            elements.extend(found)
        return page.call_on(doc, _FORWARD, [{"findMs": 0, "aria": counts}, fn,
                                            [path, alternatives, remaining_ms, *rest]],
                            elements, timeout_ms=remaining_ms)
    finally:  # not waited for: the next command of the session runs after it all the same
        page.session.post("Runtime.releaseObjectGroup", {"objectGroup": GROUP})


def _frame_document(page: "Page", path: list[int]) -> str:
    """The object id of the step's frame document, in that frame's own main world."""
    expression = "document" if not path else f"{page.RUNTIME}.frameWindow({list(path)}).document"
    result = page.send("Runtime.evaluate", {"expression": expression, "objectGroup": GROUP})
    details = result.get("exceptionDetails")
    if details is not None:
        text = str(details.get("exception", {}).get("description") or details.get("text", ""))
        if "DROVER_FRAME" in text:
            raise Retry(text.split("DROVER_FRAME", 1)[1].strip().splitlines()[0])  # the frame may still load
        raise CDPResponseError("Runtime.evaluate", -1, text.splitlines()[0] if text else "exception")
    object_id = result["result"]["objectId"]
    if not path:
        return object_id
    # The top document's reference to a child document lives in the top world; the elements that
    # DOM.resolveNode gives live in the child's world, and one call cannot mix the two.
    try:
        backend = page.send("DOM.describeNode", {"objectId": object_id})["node"]["backendNodeId"]
    except CDPResponseError as exc:
        if exc.code != _GONE:
            raise
        raise Retry(f"frame [{','.join(map(str, path))}] changed while it was looked up") from exc
    oid = _resolve(page, backend)
    if oid is None:
        raise Retry(f"frame [{','.join(map(str, path))}] changed while it was looked up")
    return oid


def _query(page: "Page", doc: str, value: str) -> list[int]:
    """Backend node ids of the elements named/roled as ``value`` under ``doc``, in tree order."""
    name, role = parse_aria(value)
    params: dict[str, Any] = {"objectId": doc}
    if name is not None:
        params["accessibleName"] = name
    if role is not None:
        params["role"] = role
    try:
        nodes = page.send("Accessibility.queryAXTree", params)["nodes"]
    except CDPResponseError as exc:
        if exc.code != _GONE:
            raise
        log.debug("aria lookup: the document went away, trying again", extra={"error": exc.cdp_message})
        raise Retry("no selector matched (the document changed during the lookup)") from exc
    ids = [n["backendDOMNodeId"] for n in nodes
           if not n.get("ignored") and n.get("role") and n["role"].get("value") not in _NOT_ELEMENTS
           and "backendDOMNodeId" in n]
    return ids[:MAX_MATCHES]


def _resolve(page: "Page", backend_node_id: int) -> str | None:
    """The element as an object in its own frame's main world; ``None`` if it is gone already."""
    try:
        return page.send("DOM.resolveNode", {"backendNodeId": backend_node_id,
                                             "objectGroup": GROUP})["object"]["objectId"]
    except CDPResponseError as exc:
        if exc.code != _GONE:
            raise
        log.debug("aria lookup: a matched node went away", extra={"error": exc.cdp_message})
        return None


__all__ = ["aria_values", "call_with_aria", "Retry", "GROUP", "MAX_MATCHES"]
