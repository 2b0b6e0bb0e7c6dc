"""Screen redaction on a real Chromium: what is masked, in which frames, and that the page is put back.

Frames come in three kinds: same-origin (reachable from the parent),
cross-origin in the same process (its own isolated world), and
out-of-process (a separate target under site isolation; forced here with
``StrictOriginIsolation``, since every fixture origin is 127.0.0.1).  A
fake CDP endpoint checks the fail-closed rule: no capture when a frame
cannot be redacted.
"""
from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from navigation.cdp import CDPConnection, CDPSession
from navigation.credentials import CredentialStore
from navigation.errors import ScreenshotRefused
from navigation.fixture_site import FixtureSite
from navigation.flow import parse_flow
from navigation.launcher import LaunchSettings, launch
from navigation.page import Page, Pages
from navigation.redaction import capture_png, redacted
from navigation.steps.builtin import ChangeStrategy
from navigation.steps.registry import StepContext
from tests.fakecdp import FakeCDPServer

SECRET = "s3cr3t Välue&<42>"
BULLETS = "\u2022" * len(SECRET)
STORE = CredentialStore({"pw": SECRET})
FORMS = STORE.redactor().forms


def shown(values):
    """Page values as assertions compare them: the secret as ``***``, so no failure ever prints it."""
    return STORE.redactor().mask_data(values)


@pytest.fixture()
def page(browser):
    conn = CDPConnection.connect(browser.ws_url)
    session = conn.new_page("about:blank")
    yield Page.setup(session)
    session.close(timeout=5)
    conn.close()


@pytest.fixture(scope="module")
def other_site():
    """A second origin (another port on 127.0.0.1) for cross-origin frames."""
    with FixtureSite() as s:
        yield s


def goto(page: Page, url: str) -> None:
    page.session.pop_events("Page.loadEventFired")
    page.send("Page.navigate", {"url": url})
    page.wait_for_load(15)


def change(page: Page, selector: str, value, frame: tuple[int, ...] = ()) -> None:
    """A real ``change`` step (the strategy marks a secret's field before typing)."""
    step = {"type": "change", "selectors": [[selector]], "value": value}
    if frame:
        step["frame"] = list(frame)
    flow = parse_flow({"title": "t", "steps": [step]}, source="t.json")
    ctx = StepContext(pages=Pages(page.session.connection, page), page=page, artifacts_dir=Path("."),
                      variables={}, resolve_secret=STORE.resolve, remember_secret=lambda v: None,
                      deadline=time.monotonic() + 10)
    ChangeStrategy().run(flow.steps[0], ctx)


def probe(session: CDPSession, frame_id: str, expression: str):
    """Evaluate in a test-only isolated world of ``frame_id`` (the DOM is shared between worlds)."""
    ctx = session.send("Page.createIsolatedWorld", {"frameId": frame_id, "worldName": "drover-test-probe"})
    result = session.send("Runtime.evaluate", {"expression": expression, "contextId": ctx["executionContextId"],
                                               "returnByValue": True})
    assert "exceptionDetails" not in result, result
    return result["result"].get("value")


def child_frame(session: CDPSession) -> str:
    return session.send("Page.getFrameTree")["frameTree"]["childFrames"][0]["frame"]["id"]


_STATE = """[document.querySelector('#typed').value, document.querySelector('#echo').textContent,
 document.querySelector('#notes').value, document.querySelector('#notes').getAttribute('placeholder'),
 document.querySelector('#relayed').textContent]"""


def test_values_text_and_attributes_are_masked_then_restored_with_focus_and_selection(page, site):
    goto(page, site.url("/echo.html"))
    page.evaluate(f"document.querySelector('#notes').placeholder = 'hint: ' + {orjson.dumps(SECRET).decode()}")
    change(page, "#typed", {"secret": "pw"})
    page.evaluate("document.querySelector('#typed').setSelectionRange(3, 7)")
    before = shown(page.evaluate(_STATE))
    assert before == shown([SECRET, SECRET, "", "hint: " + SECRET, ""]) == ["***", "***", "", "hint: ***", ""]
    with redacted(page, FORMS) as report:
        assert shown(page.evaluate(_STATE)) == [BULLETS, BULLETS, "", "hint: " + BULLETS, ""]
        assert report.frames == 1 and report.masked == 3
    assert shown(page.evaluate(_STATE)) == before
    assert page.evaluate("[document.activeElement.id, document.querySelector('#typed').selectionStart,"
                         " document.querySelector('#typed').selectionEnd]") == ["typed", 3, 7]


def test_a_marked_field_is_masked_whole_other_fields_only_where_a_secret_appears(page, site):
    goto(page, site.url("/echo.html"))
    change(page, "#typed", {"secret": "pw"})
    # The page reformats the secret's field (or typing stopped half way): no full secret is left in it.
    page.evaluate("document.querySelector('#typed').value = document.querySelector('#typed').value.slice(0, 5)")
    page.evaluate(f"document.querySelector('#notes').value = {orjson.dumps(SECRET[:5]).decode()}")
    with redacted(page, FORMS):
        assert shown(page.evaluate(_STATE))[:3] == ["\u2022" * 5, BULLETS, SECRET[:5]]  # the echo still had it whole
    assert shown(page.evaluate(_STATE))[:3] == shown([SECRET[:5], SECRET, SECRET[:5]])


def test_a_same_origin_frame_and_its_marked_field(page, site):
    goto(page, site.url("/echo.html?frame=/echo.html"))
    change(page, "#typed", {"secret": "pw"}, frame=(0,))  # focus is inside the frame: marked there
    frame = child_frame(page.session)
    page.evaluate("document.querySelector('#frame').contentDocument.querySelector('#typed').value += '!'")
    with redacted(page, FORMS) as report:
        assert shown(probe(page.session, frame, _STATE))[:2] == [BULLETS + "\u2022", BULLETS]
        assert report.frames == 2
    assert shown(probe(page.session, frame, _STATE))[:2] == shown([SECRET + "!", SECRET])


def test_a_cross_origin_frame_in_the_same_process(page, site, other_site):
    goto(page, site.url("/echo.html?frame=") + other_site.url("/echo.html"))
    frame = child_frame(page.session)
    assert page.evaluate("document.querySelector('#frame').contentDocument === null")  # really cross-origin
    change(page, "#typed", {"secret": "pw"})  # the page relays it to the frame, which shows it as text
    deadline = time.monotonic() + 5
    while shown(probe(page.session, frame, _STATE))[4] != shown(SECRET) and time.monotonic() < deadline:
        time.sleep(0.02)
    with redacted(page, FORMS):
        assert shown(probe(page.session, frame, _STATE))[4] == BULLETS
    assert shown(probe(page.session, frame, _STATE))[4] == shown(SECRET)


def test_an_out_of_process_frame_is_attached_redacted_and_detached(site, other_site):
    browser = launch(LaunchSettings(extra_args=("--enable-features=StrictOriginIsolation",)))
    conn = CDPConnection.connect(browser.ws_url)
    try:
        page = Page.setup(conn.new_page("about:blank"))
        goto(page, site.url("/echo.html?frame=") + other_site.url("/echo.html"))
        iframes = [t for t in conn.send("Target.getTargets")["targetInfos"] if t["type"] == "iframe"]
        assert len(iframes) == 1 and iframes[0]["parentId"] == page.session.target_id  # really out of process
        frame = conn.attach(iframes[0]["targetId"])
        frame_id = frame.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
        change(page, "#typed", {"secret": "pw"})
        deadline = time.monotonic() + 5
        while shown(probe(frame, frame_id, _STATE))[4] != shown(SECRET) and time.monotonic() < deadline:
            time.sleep(0.02)
        with redacted(page, FORMS) as report:
            assert shown(probe(frame, frame_id, _STATE))[4] == BULLETS
            assert report.frames == 2
        assert shown(probe(frame, frame_id, _STATE))[4] == shown(SECRET)
        assert capture_png(page, FORMS).startswith(b"\x89PNG")
    finally:
        conn.close()
        browser.close()


def test_no_capture_when_a_frame_cannot_be_redacted():
    seen: list[str] = []

    def handler(peer, msg):
        seen.append(msg["method"])
        answers = {
            "Target.getTargets": {"targetInfos": []},
            "Page.getFrameTree": {"frameTree": {"frame": {"id": "F1"}}},
            "Page.captureScreenshot": {"data": ""},
        }
        if msg["method"] in answers:
            peer.send_json({"id": msg["id"], "result": answers[msg["method"]]})
        else:  # Page.createIsolatedWorld: the frame went away
            peer.send_json({"id": msg["id"], "error": {"code": -32000, "message": "No frame for given id found"}})

    with FakeCDPServer(handler) as server, CDPConnection.connect(server.url) as conn:
        page = Page(CDPSession(conn, "S1", "F1"))
        with pytest.raises(ScreenshotRefused, match="no screenshot taken"):
            capture_png(page, FORMS, timeout=5)
        assert "Page.createIsolatedWorld" in seen and "Page.captureScreenshot" not in seen
        assert capture_png(page, (), timeout=5) == b""  # nothing to hide: a plain capture
        assert seen[-1] == "Page.captureScreenshot"
