"""Issue 3 acceptance: the canvas login fixture, driven only by coordinates, keys, clip and longPress.

Everything on ``/canvas_login.html`` is drawn on canvases: the flows here
find nothing but the ``<canvas>`` element and press at recorded offsets
(``offsetX``/``offsetY`` px, or ``rx``/``ry`` fractions of the box).  The
password comes from a real :class:`CredentialStore` (a mode-600 JSON file)
as ``{"secret": NAME}`` in key steps and in ``clip``.  Rects are from
``LOGIN_LAYOUT`` / ``HOLD_LAYOUT``; a press at a control's centre is
``x + w/2, y + h/2``.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from navigation.credentials import CredentialStore
from navigation.errors import CredentialError
from navigation.fixture_site import HOLD_LAYOUT, HOLD_MS, LOGIN_LAYOUT, FixtureSite
from navigation.flow import parse_flow
from navigation.runner import FlowRunner
from navigation.steps import StepOutcome, StepStrategy, default_registry

pytestmark = pytest.mark.chromium

USER = "alice"
PASSWORD = "Zebra canvas-7391!"   # distinctive bytes, a space and punctuation typed as real keys
WRONG = "Wrong guess-5820?"
CANVAS_W, CANVAS_H = LOGIN_LAYOUT["canvas"]["w"], LOGIN_LAYOUT["canvas"]["h"]


def centre(name: str, layout: dict = LOGIN_LAYOUT) -> tuple[float, float]:
    r = layout[name]
    return r["x"] + r["w"] / 2, r["y"] + r["h"] / 2


def press_at(name: str, *, ratio: bool = False, step_type: str = "click", **extra) -> dict:
    """A recorded click on the login canvas at a control's centre (px offsets, or rx/ry fractions)."""
    x, y = centre(name)
    where = {"rx": x / CANVAS_W, "ry": y / CANVAS_H} if ratio else {"offsetX": x, "offsetY": y}
    return {"type": step_type, "target": "main",
            "selectors": [["#login"], ["aria/Sign-in form drawn on a canvas"]], **where, **extra}


def keys(text: str) -> list[dict]:
    """What the Recorder writes for typing on a canvas: a keyDown/keyUp pair per key."""
    out = []
    for ch in text:
        out += [{"type": "keyDown", "key": ch}, {"type": "keyUp", "key": ch}]
    return out


def secret_keys(name: str) -> list[dict]:
    return [{"type": "keyDown", "key": {"secret": name}}, {"type": "keyUp", "key": {"secret": name}}]


def open_login(query: str = "") -> dict:
    return {"type": "navigate", "url": "${BASE_URL}/canvas_login.html" + query,
            "assertedEvents": [{"type": "navigation", "title": "Drover canvas login"}]}


LOGGED_IN = [
    {"type": "waitForElement", "selectors": [["#status"]], "attributes": {"data-state": "ok"}, "phase": "Check"},
    {"type": "waitForExpression", "expression": "document.title === 'Drover login ok'", "phase": "Check"},
]


class CaptureEvents(StepStrategy):
    """A Drover-only step type for these tests: keep the page's event log before the page closes."""

    name = "capture-events"
    handles = frozenset({"captureEvents"})

    def __init__(self) -> None:
        self.events: list[str] = []

    def run(self, step, ctx) -> StepOutcome:
        self.events = ctx.page.evaluate("window.droverEvents()", await_promise=False)
        return StepOutcome()


@pytest.fixture(scope="module")
def canvas_site():
    with FixtureSite(users={USER: PASSWORD}) as s:
        yield s


@pytest.fixture()
def store(tmp_path) -> CredentialStore:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"alice_password": PASSWORD, "wrong_password": WRONG}), encoding="utf-8")
    os.chmod(path, 0o600)
    return CredentialStore.from_file(path)


def run_flow(conn, site, tmp_path, steps, store, *, title="canvas"):
    capture = CaptureEvents()
    registry = default_registry()
    registry.register(capture)
    flow = parse_flow({"title": title, "timeout": 15000, "steps": steps}, source=f"{title}.json",
                      extra_types=registry.extra_types())
    runner = FlowRunner(registry, resolve_secret=store.resolve)
    result = runner.run(flow, conn, artifacts_dir=tmp_path / "artifacts", variables={"BASE_URL": site.base_url})
    return result, capture.events


def test_layout_matches_the_page(conn, canvas_site, tmp_path, store):
    """The rects the flows use are the ones the page draws (window.loginLayout / holdLayout)."""
    layout = json.dumps({"scale": 1, **LOGIN_LAYOUT}, separators=(",", ":"))  # as JSON.stringify writes it
    expr = (f"JSON.stringify(window.loginLayout) === {json.dumps(layout)}"
            f" && window.holdLayout.button.w === {HOLD_LAYOUT['button']['w']}")
    result, _ = run_flow(conn, canvas_site, tmp_path, [
        open_login(), {"type": "waitForExpression", "expression": expr, "timeout": 3000}], store)
    assert result.ok, result.error


def test_login_with_coordinate_clicks_and_secret_keys(conn, canvas_site, tmp_path, store):
    result, events = run_flow(conn, canvas_site, tmp_path, [
        open_login(),
        press_at("user", phase="Login"),
        *keys(USER),
        press_at("password", ratio=True, phase="Login"),          # rx/ry fractions of the canvas box
        *secret_keys("alice_password"),
        press_at("login", phase="Login"),
        *LOGGED_IN,
        {"type": "captureEvents"},
    ], store, title="canvas-keys")
    assert result.ok, result.error
    assert set(result.phase_ms) == {"Login", "Check"}
    assert {s.matched_selector for s in result.steps if s.type == "click"} == {"#login"}

    ux, uy = (round(v) for v in centre("user"))
    px, py = (round(v) for v in centre("password"))
    assert f"canvas_login mousedown #login button=0 detail=1 x={ux} y={uy}" in events
    assert f"canvas_login mousedown #login button=0 detail=1 x={px} y={py}" in events
    assert [e for e in events if " field " in e] == ["canvas_login field #login name=user",
                                                     "canvas_login field #login name=password"]
    # the user name was typed in clear, the password as masked key events: one per character
    assert [e.split()[3] for e in events if e.startswith("canvas_login keydown") and "key=*" not in e] \
        == [f"key={c}" for c in USER]
    assert sum(1 for e in events if e == "canvas_login keydown #login key=* code=*") == len(PASSWORD)
    assert events[-1] == f"canvas_login login-ok #login user={USER}"
    assert PASSWORD not in "\n".join(events)


def test_login_through_the_on_canvas_paste_key_fed_by_clip(conn, canvas_site, tmp_path, store):
    result, events = run_flow(conn, canvas_site, tmp_path, [
        open_login(),
        press_at("user"),
        *keys(USER),
        press_at("password"),
        {"type": "clip", "value": {"secret": "alice_password"}, "phase": "Paste"},
        press_at("paste", phase="Paste"),
        {"type": "waitForExpression", "phase": "Paste",
         "expression": "window.droverEvents().some(e => e.startsWith('canvas_login pasted '))"},
        press_at("login"),
        *LOGGED_IN,
        {"type": "captureEvents"},
    ], store, title="canvas-paste")
    assert result.ok, result.error
    assert "canvas_login osk #login key=paste" in events
    assert f"canvas_login pasted #login field=password len={len(PASSWORD)}" in events
    assert not any(e.startswith("canvas_login keydown") and "key=*" in e for e in events)  # nothing typed
    assert events[-1] == f"canvas_login login-ok #login user={USER}"


@pytest.mark.parametrize("check", ["waitForElement", "waitForExpression"])
def test_wrong_password_fails_the_check_with_artifacts(conn, canvas_site, tmp_path, store, check):
    wait = {"waitForElement": {"type": "waitForElement", "selectors": [["#status"]],
                               "attributes": {"data-state": "ok"}, "timeout": 3000},
            "waitForExpression": {"type": "waitForExpression", "timeout": 3000,
                                  "expression": "document.title === 'Drover login ok'"}}[check]
    steps = [open_login(), press_at("user"), *keys(USER), press_at("password"),
             *secret_keys("wrong_password"), press_at("login"), wait]
    result, _ = run_flow(conn, canvas_site, tmp_path, steps, store, title="canvas-wrong")
    failed = len(steps) - 1
    assert not result.ok and result.failed_step == failed
    assert result.error_category == "navigation"
    assert result.error.startswith(f"step {failed} ({check}): ")
    assert ("not satisfied within 3000 ms" if check == "waitForElement" else "stayed falsy for 3000 ms") \
        in result.error
    assert [s.ok for s in result.steps] == [True] * failed + [False]
    names = sorted(Path(p).name for p in result.artifacts)
    assert names == [f"step-{failed:02d}-{check}-failure.html", f"step-{failed:02d}-{check}-failure.png"]
    for path in result.artifacts:
        assert path in result.error and Path(path).stat().st_size > 0
    png = next(Path(p) for p in result.artifacts if p.endswith(".png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = next(Path(p) for p in result.artifacts if p.endswith(".html")).read_text(encoding="utf-8")
    assert 'data-state="error"' in dom and "Wrong user or password" in dom  # the page as it failed
    assert "<title>Drover login failed</title>" in dom
    assert WRONG not in result.error and WRONG not in dom


def test_unknown_secret_fails_the_step_naming_only_the_secret(conn, canvas_site, tmp_path, store):
    result, _ = run_flow(conn, canvas_site, tmp_path, [
        open_login(), press_at("password"), *secret_keys("bob_password")], store, title="canvas-missing")
    assert not result.ok and result.failed_step == 2
    assert "bob_password" in result.error and result.error_category == CredentialError.category


def hold_press(step_type: str, **extra) -> dict:
    x, y = centre("button", HOLD_LAYOUT)
    return {"type": step_type, "selectors": [["#hold"]], "offsetX": x, "offsetY": y, **extra}


def test_long_press_starts_the_hold_control(conn, canvas_site, tmp_path, store):
    result, events = run_flow(conn, canvas_site, tmp_path, [
        open_login(),
        hold_press("longPress", duration=HOLD_MS + 300),
        {"type": "waitForElement", "selectors": [["#hold-status"]], "attributes": {"data-state": "started"}},
        {"type": "waitForExpression", "expression": "window.holdStarted === true"},
        {"type": "captureEvents"},
    ], store, title="hold-long")
    assert result.ok, result.error
    assert result.steps[1].duration_ms >= HOLD_MS + 300
    assert "canvas_login hold-started #hold" in events and "canvas_login hold-too-short #hold" not in events


def test_plain_click_does_not_start_the_hold_control(conn, canvas_site, tmp_path, store):
    # the control sees the short press ...
    result, events = run_flow(conn, canvas_site, tmp_path, [
        open_login(),
        hold_press("click"),
        {"type": "waitForElement", "selectors": [["#hold-status"]], "attributes": {"data-state": "too-short"}},
        {"type": "waitForExpression", "expression": "window.holdStarted === false"},
        {"type": "captureEvents"},
    ], store, title="hold-click")
    assert result.ok, result.error
    assert "canvas_login hold-too-short #hold" in events and "canvas_login hold-started #hold" not in events
    # ... so a recording that expects a click to start it fails, with the page state in the artifacts
    result, _ = run_flow(conn, canvas_site, tmp_path, [
        open_login(),
        hold_press("click"),
        {"type": "waitForElement", "selectors": [["#hold-status"]], "attributes": {"data-state": "started"},
         "timeout": 2000},
    ], store, title="hold-click-expects-start")
    assert not result.ok and result.failed_step == 2
    assert result.error.startswith("step 2 (waitForElement): ")
    dom = next(Path(p) for p in result.artifacts if p.endswith(".html")).read_text(encoding="utf-8")
    assert 'id="hold-status" class="marker" data-state="too-short"' in dom


def test_secret_bytes_appear_nowhere_and_ratio_clicks_survive_a_resized_canvas(
        conn, canvas_site, tmp_path, store, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    scale = 1.5
    # rx/ry recorded at scale 1 hit the same controls on a canvas 1.5x the size
    def login(secret: str) -> list[dict]:
        return [
            open_login(f"?scale={scale}"),
            {"type": "waitForExpression", "expression": f"window.loginLayout.scale === {scale}"},
            press_at("user", ratio=True),
            *keys(USER),
            press_at("password", ratio=True),
            *secret_keys(secret),
            press_at("login", ratio=True),
        ]

    steps = [
        *login("alice_password"), *LOGGED_IN,
        {"type": "clip", "value": {"secret": "alice_password"}},
        {"type": "screenshot", "selectors": [["#login"]], "name": "after-login.png"},
        {"type": "captureEvents"},
        {"type": "waitForElement", "selectors": [["#never-there"]], "timeout": 500},
    ]
    ok_run, events = run_flow(conn, canvas_site, tmp_path, steps, store, title="secret-ok-then-fail")
    assert ok_run.failed_step == len(steps) - 1, ok_run.error   # only the deliberate last step failed
    ux, uy = (round(v * scale) for v in centre("user"))
    assert f"canvas_login mousedown #login button=0 detail=1 x={ux} y={uy}" in events
    assert f"canvas_login login-ok #login user={USER}" in events

    wrong_run, _ = run_flow(conn, canvas_site, tmp_path / "wrong", [
        *login("wrong_password"),
        {"type": "waitForElement", "selectors": [["#status"]], "attributes": {"data-state": "ok"},
         "timeout": 2000},
    ], store, title="secret-wrong")
    assert not wrong_run.ok and wrong_run.failed_step == len(login("wrong_password"))
    assert len(wrong_run.artifacts) == 2

    forms = set()
    for secret in (PASSWORD, WRONG):
        forms |= {secret, json.dumps(secret)[1:-1], quote(secret), quote_plus(secret)}
    texts = [repr(ok_run), repr(wrong_run), ok_run.error or "", wrong_run.error or ""]
    texts += [s.error or "" for r in (ok_run, wrong_run) for s in r.steps]
    texts.append(caplog.text)
    texts += [repr(vars(record)) for record in caplog.records]
    out, err = capsys.readouterr()
    texts += [out, err]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "credentials.json"]
    assert len(files) >= 5  # two failures x (png, html), plus the screenshot step
    texts += [str(p) for p in files]
    blobs = [p.read_bytes() for p in files]
    for form in forms:
        assert not any(form in t for t in texts), f"a form of a secret leaked ({len(form)} chars)"
        assert not any(form.encode() in b for b in blobs), "a secret leaked into an artifact file"
    assert any(r.getMessage().endswith(": step failed") for r in caplog.records)  # the logs were really captured


def test_secret_echoed_url_encoded_and_html_escaped_is_masked_too(conn, site, tmp_path):
    """A page that echoes a secret puts it in URLs (errors quote them) and escapes it in its HTML."""
    secret = "p&ss w<rd 42"
    registry = default_registry()
    flow = parse_flow({"title": "echo", "timeout": 15000, "steps": [
        {"type": "navigate", "url": "${BASE_URL}/form.html"},
        {"type": "change", "selectors": [["#name"]], "value": {"secret": "pw"}},
        {"type": "click", "selectors": [["#submit"]],
         "assertedEvents": [{"type": "navigation", "url": "${BASE_URL}/somewhere-else"}]},
    ]}, source="echo.json")
    result = FlowRunner(registry, resolve_secret=lambda ref: secret).run(
        flow, conn, artifacts_dir=tmp_path / "artifacts", variables={"BASE_URL": site.base_url})
    assert not result.ok and result.failed_step == 2
    assert "/result?name=***&" in result.error  # the URL it landed on, secret masked
    dom = next(Path(p) for p in result.artifacts if p.endswith(".html")).read_text(encoding="utf-8")
    assert 'id="out-name">***<' in dom
    forms = {secret, quote(secret), quote_plus(secret), "p&amp;ss w&lt;rd 42", json.dumps(secret)[1:-1]}
    for text in [repr(result), dom]:
        assert not any(form in text for form in forms)
