"""The demo's two Recorder flows on the bundled fixture site, and the credential they use.

One source for them: ``python -m engine demo`` writes them into its
folder, and the bench (``bench/_flows.py``) runs the same two flows — bench
may import engine, engine never imports bench, so they live here.  The
bench pins a fingerprint of them, so a change here is a new bench batch
version, never a silent change under a saved baseline.

``FORM_FLOW`` fills and submits a form (with an asserted navigation);
``CANVAS_FLOW`` signs in on a login form drawn on a ``<canvas>``: clicks at
coordinates from the fixture site's :data:`LOGIN_LAYOUT`, a user name typed
key by key, and the password put on the clipboard (``clip``) from secret
:data:`SECRET_NAME` and pasted through the canvas's own control.
"""
from __future__ import annotations

from typing import Any

from navigation.fixture_site import LOGIN_LAYOUT

CREDENTIAL_SCOPE = "fixture/alice"
SECRET_NAME = "alice_password"
SECRET_VALUE = "correct horse"

FORM_FLOW: dict[str, Any] = {
    "title": "form",
    "steps": [
        {"type": "setViewport", "width": 1024, "height": 768, "deviceScaleFactor": 1, "isMobile": False,
         "hasTouch": False, "isLandscape": False},
        {"type": "navigate", "url": "${BASE_URL}/form.html", "phase": "Open",
         "assertedEvents": [{"type": "navigation", "title": "Drover form"}]},
        {"type": "change", "selectors": [["aria/Name[role=\"textbox\"]"], ["#name"]], "value": "${name}",
         "phase": "Fill"},
        {"type": "change", "selectors": [["#color"]], "value": "blue", "phase": "Fill"},
        {"type": "click", "selectors": [["aria/Send the form"], ["#submit"]], "phase": "Submit",
         "assertedEvents": [{"type": "navigation", "title": "Drover result"}]},
        {"type": "waitForExpression", "phase": "Check",
         "expression": "document.querySelector('#out-name').textContent === '${name}'"},
    ],
}


def _centre(name: str) -> dict[str, float]:
    r = LOGIN_LAYOUT[name]
    return {"offsetX": r["x"] + r["w"] / 2, "offsetY": r["y"] + r["h"] / 2}


def _typed(text: str) -> list[dict[str, Any]]:
    """Real key presses, one key at a time (the canvas reads keydown events)."""
    return [step for ch in text for step in ({"type": "keyDown", "key": ch}, {"type": "keyUp", "key": ch})]


CANVAS_FLOW: dict[str, Any] = {
    "title": "canvas-login",
    "steps": [
        {"type": "navigate", "url": "${BASE_URL}/canvas_login.html", "phase": "Open"},
        {"type": "click", "selectors": [["#login"]], **_centre("user"), "phase": "Login"},
        *[{**s, "phase": "Login"} for s in _typed("alice")],
        {"type": "click", "selectors": [["#login"]], **_centre("password"), "phase": "Login"},
        {"type": "clip", "value": {"secret": SECRET_NAME}, "phase": "Login"},
        {"type": "click", "selectors": [["#login"]], **_centre("paste"), "phase": "Login"},
        {"type": "click", "selectors": [["#login"]], **_centre("login"), "phase": "Login"},
        {"type": "waitForElement", "selectors": [["#status[data-state=\"ok\"]"]], "phase": "Check"},
    ],
}

__all__ = ["FORM_FLOW", "CANVAS_FLOW", "CREDENTIAL_SCOPE", "SECRET_NAME", "SECRET_VALUE"]
