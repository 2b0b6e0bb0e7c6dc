"""The fixture site in a real headless Chromium: event log, canvas login, paste, hold, frames.

One Chromium for the module (raw CDP, see ``_chromium.py``); each test gets
a fresh tab.  Event logs are compared exactly against the format documented
in ``navigation/fixture_site/README.md``.
"""
from __future__ import annotations

import json

import pytest

from navigation.fixture_site import HOLD_LAYOUT, LOGIN_LAYOUT, FixtureSite
from tests.fixture_site._chromium import Chromium, Page

pytestmark = pytest.mark.chromium

SHIFT = 8


@pytest.fixture(scope="module")
def chromium():
    browser = Chromium.launch()
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def fixture_site():
    with FixtureSite(slow_delay=0.2) as s:
        yield s


@pytest.fixture
def page(chromium):
    p = chromium.new_page()
    try:
        yield p
    finally:
        for other in list(chromium.pages):
            chromium.close_page(other)


# -- helpers ------------------------------------------------------------------------------------

def centre(page: Page, element_js: str) -> tuple[float, float]:
    box = page.box(element_js)
    return box["x"] + box["w"] / 2, box["y"] + box["h"] / 2


def click_id(page: Page, id_: str, **kwargs: object) -> None:
    page.click(*centre(page, f"document.getElementById({json.dumps(id_)})"), **kwargs)


def on_canvas(page: Page, control: str, *, canvas: str = "login",
              layout: dict[str, dict[str, float]] = LOGIN_LAYOUT) -> tuple[float, float]:
    """Viewport point of a control's centre, from the canvas box and the scale-1 layout as
    fractions (``rx``/``ry``), so it also works on a scaled canvas."""
    box = page.box(f"document.getElementById({json.dumps(canvas)})")
    r, size = layout[control], layout["canvas"]
    rx, ry = (r["x"] + r["w"] / 2) / size["w"], (r["y"] + r["h"] / 2) / size["h"]
    return box["x"] + rx * box["w"], box["y"] + ry * box["h"]


def typed(page_name: str, target: str, text: str, *, masked: bool = False) -> list[str]:
    """The keydown/keyup entries ``Page.type_text`` produces on a canvas."""
    out = []
    for ch in text:
        if masked:
            fields = "key=* code=*"
        elif ch == " ":
            fields = 'key=" " code=Space'
        else:
            fields = f"key={ch} code=Key{ch.upper()}" + (" shift=1" if ch.isupper() else "")
        out += [f"{page_name} keydown {target} {fields}", f"{page_name} keyup {target} {fields}"]
    return out


def mouse(page_name: str, target: str, *, button: int = 0, extra: str = "") -> list[str]:
    tail = f" {extra}" if extra else ""
    return [f"{page_name} {kind} {target} button={button} detail=1{tail}"
            for kind in ("mousedown", "mouseup", "click")]


def login_status(page: Page) -> list[str]:
    page.wait_for("['ok', 'error'].includes(document.getElementById('status').dataset.state)")
    return page.evaluate("[document.getElementById('status').dataset.state,"
                         " document.getElementById('status').textContent, document.title]")


def grant_clipboard(chromium: Chromium, site: FixtureSite) -> None:
    chromium.cdp.call("Browser.grantPermissions", {
        "origin": site.base_url,
        "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
    })


def write_clipboard(page: Page, text: str) -> None:
    echoed = page.evaluate(f"navigator.clipboard.writeText({json.dumps(text)})"
                           ".then(() => navigator.clipboard.readText())",
                           await_promise=True, gesture=True)
    assert echoed == text


# -- canvas login ---------------------------------------------------------------------------------

def test_canvas_layout_is_published_and_matches_python(page, fixture_site):
    page.goto(fixture_site.url("/canvas_login.html"))
    published = page.evaluate("window.loginLayout")
    assert published.pop("scale") == 1
    assert published == LOGIN_LAYOUT
    hold = page.evaluate("window.holdLayout")
    assert hold.pop("scale") == 1
    assert hold == HOLD_LAYOUT
    box = page.box("document.getElementById('login')")
    assert (box["w"], box["h"]) == (LOGIN_LAYOUT["canvas"]["w"], LOGIN_LAYOUT["canvas"]["h"])
    assert page.evaluate("document.title") == "Drover canvas login"
    assert page.evaluate("document.getElementById('status').dataset.state") == "idle"


def test_canvas_login_with_clicks_and_keys_logs_exactly(page, fixture_site):
    page.goto(fixture_site.url("/canvas_login.html"))
    page.click(*on_canvas(page, "user"))
    page.type_text("alicx")
    page.key("Backspace", code="Backspace", vk=8)
    page.type_text("e")
    page.click(*on_canvas(page, "password"))
    page.type_text("correct horse")
    page.click(*on_canvas(page, "login"))
    assert login_status(page) == ["ok", "Welcome, alice", "Drover login ok"]
    c = "canvas_login"
    assert page.events() == [
        f"{c} load /canvas_login.html",
        f"{c} mousedown #login button=0 detail=1 x=250 y=58",
        f"{c} focus #login",
        f"{c} mouseup #login button=0 detail=1 x=250 y=58",
        f"{c} click #login button=0 detail=1 x=250 y=58",
        f"{c} field #login name=user",
        *typed(c, "#login", "alicx"),
        f"{c} keydown #login key=Backspace code=Backspace",
        f"{c} keyup #login key=Backspace code=Backspace",
        *typed(c, "#login", "e"),
        *mouse(c, "#login", extra="x=250 y=106"),
        f"{c} field #login name=password",
        *typed(c, "#login", "correct horse", masked=True),
        *mouse(c, "#login", extra="x=180 y=154"),
        f"{c} login-ok #login user=alice",
    ]


def test_canvas_login_wrong_password_shows_the_error(page, fixture_site):
    page.goto(fixture_site.url("/canvas_login.html"))
    page.click(*on_canvas(page, "user"))
    page.type_text("alice")
    page.click(*on_canvas(page, "password"))
    page.type_text("wrong horse")
    page.key("Enter", code="Enter", vk=13, text="\r")
    assert login_status(page) == ["error", "Wrong user or password", "Drover login failed"]
    log = page.events()
    down, up = (f"canvas_login {kind} #login key=* code=*" for kind in ("keydown", "keyup"))
    error = "canvas_login login-error #login"
    # Enter (masked: the password field has focus) submits; the answer may beat the keyup.
    assert log[-3:] in ([down, up, error], [down, error, up])
    assert not any("horse" in entry or "login-ok" in entry for entry in log)


def test_canvas_paste_key_inserts_the_clipboard(chromium, page, fixture_site):
    grant_clipboard(chromium, fixture_site)
    page.goto(fixture_site.url("/canvas_login.html"))
    write_clipboard(page, "correct horse")
    page.click(*on_canvas(page, "user"))
    page.type_text("alice")
    page.click(*on_canvas(page, "password"))
    page.evaluate("droverClearEvents()")
    page.click(*on_canvas(page, "paste"))
    page.wait_for("droverEvents().some(e => / (pasted|paste-failed) /.test(e))")
    assert page.events() == [
        *mouse("canvas_login", "#login", extra="x=80 y=250"),
        "canvas_login osk #login key=paste",
        "canvas_login pasted #login field=password len=13",
    ]
    page.click(*on_canvas(page, "login"))
    assert login_status(page) == ["ok", "Welcome, alice", "Drover login ok"]


def test_canvas_paste_key_without_permission_is_refused_visibly(chromium, page, fixture_site):
    chromium.cdp.call("Browser.resetPermissions")
    page.goto(fixture_site.url("/canvas_login.html"))
    page.click(*on_canvas(page, "user"))
    page.click(*on_canvas(page, "paste"))
    page.wait_for("droverEvents().some(e => / (pasted|paste-failed) /.test(e))")
    assert page.events()[-1] == "canvas_login paste-failed #login error=NotAllowedError"
    assert page.evaluate("document.getElementById('status').dataset.state") == "error"


def test_canvas_ctrl_v_pastes_into_the_focused_field(chromium, page, fixture_site):
    grant_clipboard(chromium, fixture_site)
    page.goto(fixture_site.url("/canvas_login.html"))
    write_clipboard(page, "alice")
    page.click(*on_canvas(page, "user"))
    page.evaluate("droverClearEvents()")
    page.key("v", code="KeyV", vk=86, modifiers=2)
    page.wait_for("droverEvents().some(e => e.includes(' pasted '))")
    assert page.events() == [
        "canvas_login keydown #login key=v code=KeyV ctrl=1",
        "canvas_login paste #login len=5",
        "canvas_login pasted #login field=user len=5",
        "canvas_login keyup #login key=v code=KeyV ctrl=1",
    ]
    page.click(*on_canvas(page, "password"))
    page.type_text("correct horse")
    page.click(*on_canvas(page, "login"))
    assert login_status(page)[0] == "ok"


def test_on_screen_clear_and_backspace_keys(page, fixture_site):
    page.goto(fixture_site.url("/canvas_login.html"))
    page.click(*on_canvas(page, "user"))
    page.type_text("bob")
    page.click(*on_canvas(page, "clear"))
    page.type_text("alicee")
    page.click(*on_canvas(page, "backspace"))
    page.click(*on_canvas(page, "password"))
    page.type_text("correct horse")
    page.click(*on_canvas(page, "login"))
    assert login_status(page)[0] == "ok"
    assert [e for e in page.events() if " osk " in e] == [
        "canvas_login osk #login key=clear", "canvas_login osk #login key=backspace"]


def test_scaled_canvas_is_driven_by_fractions(page, fixture_site):
    page.goto(fixture_site.url("/canvas_login.html?scale=1.5"))
    box = page.box("document.getElementById('login')")
    assert (box["w"], box["h"]) == (600, 450)
    assert page.evaluate("window.loginLayout.user") == {"x": 180, "y": 60, "w": 390, "h": 54}
    page.click(*on_canvas(page, "user"))
    page.type_text("alice")
    page.click(*on_canvas(page, "password"))
    page.type_text("correct horse")
    page.click(*on_canvas(page, "login"))
    assert login_status(page)[0] == "ok"
    assert "canvas_login click #login button=0 detail=1 x=375 y=87" in page.events()


def test_hold_starts_only_after_600_ms(page, fixture_site):
    page.goto(fixture_site.url("/canvas_login.html"))
    point = on_canvas(page, "button", canvas="hold", layout=HOLD_LAYOUT)
    page.evaluate("droverClearEvents()")
    state = "[window.holdStarted, document.getElementById('hold-status').dataset.state]"
    page.click(*point)
    assert page.evaluate(state) == [False, "too-short"]
    page.click(*point, hold_s=0.7)
    assert page.evaluate(state) == [True, "started"]
    hold = "canvas_login mousedown #hold button=0 detail=1 x=120 y=40"
    up = "canvas_login mouseup #hold button=0 detail=1 x=120 y=40"
    clk = "canvas_login click #hold button=0 detail=1 x=120 y=40"
    assert page.events() == [
        hold, up, "canvas_login hold-too-short #hold", clk,
        hold, up, "canvas_login hold-started #hold", clk,
    ]


# -- conformance page ---------------------------------------------------------------------------

def test_conformance_event_log_is_exact(page, fixture_site):
    page.goto(fixture_site.url("/conformance.html"))
    click_id(page, "click-btn")
    click_id(page, "dbl-btn", count=2)
    click_id(page, "aux-btn", button="right")
    click_id(page, "aux-btn", button="middle")
    page.mouse("mouseMoved", *centre(page, "document.getElementById('hover-target')"))
    page.click(*centre(page, "document.getElementById('conf-shadow-host').shadowRoot"
                             ".getElementById('shadow-btn')"))
    click_id(page, "text-input")
    page.key("Shift", code="ShiftLeft", vk=16, modifiers=SHIFT)
    page.key("A", code="KeyA", vk=65, text="A", modifiers=SHIFT)
    page.evaluate("(() => { const s = document.getElementById('conf-select'); s.value = 'two';"
                  " s.dispatchEvent(new Event('input', {bubbles: true}));"
                  " s.dispatchEvent(new Event('change', {bubbles: true})); })()")
    page.evaluate("document.getElementById('scroller').scrollTo(0, 200)")
    page.wait_for("droverEvents().some(e => e.includes('scroll #scroller'))")
    page.evaluate("window.scrollTo(0, 500)")
    page.wait_for("droverEvents().some(e => e.includes('scroll window'))")
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for("droverEvents().some(e => e.endsWith('scroll window top=0 left=0'))")
    with page.navigation():
        click_id(page, "to-page2")
    assert page.evaluate("document.title") == "Drover conformance 2"
    c = "conformance"
    assert page.events() == [
        f"{c} load /conformance.html",
        *mouse(c, "#click-btn"),
        *mouse(c, "#dbl-btn"),
        f"{c} mousedown #dbl-btn button=0 detail=2",
        f"{c} mouseup #dbl-btn button=0 detail=2",
        f"{c} click #dbl-btn button=0 detail=2",
        f"{c} dblclick #dbl-btn button=0 detail=2",
        f"{c} mousedown #aux-btn button=2 detail=1",
        f"{c} contextmenu #aux-btn button=2 detail=0",
        f"{c} mouseup #aux-btn button=2 detail=1",
        f"{c} auxclick #aux-btn button=2 detail=1",
        f"{c} mousedown #aux-btn button=1 detail=1",
        f"{c} mouseup #aux-btn button=1 detail=1",
        f"{c} auxclick #aux-btn button=1 detail=1",
        f"{c} mouseover #hover-target",
        f"{c} mouseenter #hover-target",
        *mouse(c, "#shadow-btn"),
        f"{c} mousedown #text-input button=0 detail=1",
        f"{c} focus #text-input",
        f"{c} mouseup #text-input button=0 detail=1",
        f"{c} click #text-input button=0 detail=1",
        f"{c} keydown #text-input key=Shift code=ShiftLeft shift=1",
        f"{c} keyup #text-input key=Shift code=ShiftLeft shift=1",
        f"{c} keydown #text-input key=A code=KeyA shift=1",
        f"{c} input #text-input value=A",
        f"{c} keyup #text-input key=A code=KeyA shift=1",
        f"{c} input #conf-select value=two",
        f"{c} change #conf-select value=two",
        f"{c} scroll #scroller top=200 left=0",
        f"{c} scroll window top=500 left=0",
        f"{c} scroll window top=0 left=0",
        f"{c} mousedown #to-page2 button=0 detail=1",
        f"{c} change #text-input value=A",  # the text input loses focus to the link
        f"{c} mouseup #to-page2 button=0 detail=1",
        f"{c} click #to-page2 button=0 detail=1",
        "conformance2 load /conformance2.html",
    ]


def test_conformance_waits_and_selector_targets(page, fixture_site):
    page.goto(fixture_site.url("/conformance.html"))
    link_before = page.box("document.getElementById('to-page2')")
    page.wait_for("document.querySelector('#late[data-state=ready]') && window.readyFlag === true",
                  timeout_ms=3000)
    # #late's arrival moves nothing (a recorded click must not land somewhere else).
    assert page.box("document.getElementById('to-page2')") == link_before
    assert page.evaluate(
        "document.evaluate('//button[@id=\"xpath-target\"]', document, null,"
        " XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null).snapshotLength") == 1
    assert page.evaluate("[...document.querySelectorAll('button')]"
                         ".filter(b => b.textContent === 'Text target').length") == 1
    doc = page.call("Runtime.evaluate", {"expression": "document"})["result"]["objectId"]
    for name in ("Click me", "Labelled action", "Double click me"):
        found = page.call("Accessibility.queryAXTree",
                          {"objectId": doc, "accessibleName": name, "role": "button"})
        assert len(found["nodes"]) == 1, name


# -- form, shadow DOM, iframe, popup ------------------------------------------------------------

def test_form_submit_echoes_and_the_log_survives_navigation(page, fixture_site):
    page.goto(fixture_site.url("/form.html"))
    click_id(page, "name")
    page.type_text("Al")
    box = page.box("document.getElementById('bio')")
    page.click(box["x"] + box["w"] - 4, box["y"] + box["h"] / 2)  # at the end of "Hello"
    page.type_text("x")
    page.evaluate("(() => { for (const [id, v] of [['color', 'green'], ['when', '2024-05-06']]) {"
                  " const el = document.getElementById(id); el.value = v;"
                  " el.dispatchEvent(new Event('input', {bubbles: true}));"
                  " el.dispatchEvent(new Event('change', {bubbles: true})); } })()")
    click_id(page, "agree")
    with page.navigation():
        click_id(page, "submit")
    assert page.evaluate("document.title") == "Drover result"
    echoed = page.evaluate("Object.fromEntries([...document.querySelectorAll('dd[id]')]"
                           ".map(d => [d.id, d.textContent]))")
    assert echoed == {
        "out-name": "Al", "out-email": "", "out-city": "Par", "out-color": "green",
        "out-when": "2024-05-06", "out-shade": "#000000", "out-notes": "", "out-bio": "Hellox",
        "out-agree": "yes",
    }
    f = "form"
    assert page.events() == [
        f"{f} load /form.html",
        f"{f} mousedown #name button=0 detail=1",
        f"{f} focus #name",
        f"{f} mouseup #name button=0 detail=1",
        f"{f} click #name button=0 detail=1",
        f"{f} keydown #name key=A code=KeyA shift=1",
        f"{f} input #name value=A",
        f"{f} keyup #name key=A code=KeyA shift=1",
        f"{f} keydown #name key=l code=KeyL",
        f"{f} input #name value=Al",
        f"{f} keyup #name key=l code=KeyL",
        f"{f} mousedown #bio button=0 detail=1",
        f"{f} change #name value=Al",
        f"{f} focus #bio",
        f"{f} mouseup #bio button=0 detail=1",
        f"{f} click #bio button=0 detail=1",
        f"{f} keydown #bio key=x code=KeyX",
        f"{f} input #bio text=Hellox",
        f"{f} keyup #bio key=x code=KeyX",
        f"{f} input #color value=green",
        f"{f} change #color value=green",
        f"{f} input #when value=2024-05-06",
        f"{f} change #when value=2024-05-06",
        f"{f} mousedown #agree button=0 detail=1",
        f"{f} focus #agree",
        f"{f} mouseup #agree button=0 detail=1",
        f"{f} click #agree button=0 detail=1",
        f"{f} input #agree checked=1",
        f"{f} change #agree checked=1",
        *mouse(f, "#submit"),
        f"{f} submit #form",
        "result load /result",
    ]


def test_shadow_dom_and_iframe_log_into_one_tab_log(page, fixture_site):
    page.goto(fixture_site.url("/shadow.html"))
    deep = ("document.getElementById('outer').shadowRoot.getElementById('inner')"
            ".shadowRoot.getElementById({})")
    page.click(*centre(page, deep.format("'deep-button'")))
    page.click(*centre(page, deep.format("'deep-input'")))
    page.type_text("hi")
    frame = page.box("document.getElementById('frame')")
    inner = page.box("document.getElementById('frame').contentDocument"
                     ".getElementById('frame-button')")
    page.click(frame["x"] + inner["x"] + inner["w"] / 2, frame["y"] + inner["y"] + inner["h"] / 2)
    assert page.evaluate(deep.format("'deep-status'") + ".dataset.clicks") == "1"
    assert page.evaluate("document.getElementById('frame').contentDocument"
                         ".getElementById('frame-status').dataset.clicks") == "1"
    assert page.events() == [
        "shadow load /shadow.html",
        "frame load /frame.html",
        *mouse("shadow", "#deep-button"),
        "shadow mousedown #deep-input button=0 detail=1",
        "shadow focus #deep-input",
        "shadow mouseup #deep-input button=0 detail=1",
        "shadow click #deep-input button=0 detail=1",
        "shadow keydown #deep-input key=h code=KeyH",
        "shadow input #deep-input value=h",
        "shadow keyup #deep-input key=h code=KeyH",
        "shadow keydown #deep-input key=i code=KeyI",
        "shadow input #deep-input value=hi",
        "shadow keyup #deep-input key=i code=KeyI",
        "frame mousedown #frame-button button=0 detail=1",
        "shadow change #deep-input value=hi",
        "frame mouseup #frame-button button=0 detail=1",
        "frame click #frame-button button=0 detail=1",
    ]


def test_popup_opens_with_its_own_title_and_a_copy_of_the_log(chromium, page, fixture_site):
    chromium.cdp.call("Target.setDiscoverTargets", {"discover": True})
    try:
        page.goto(fixture_site.url("/popup.html"))
        page.evaluate("droverClearEvents()")
        click_id(page, "open-popup")
        created = chromium.cdp.wait_event("Target.targetCreated")
        for _ in range(20):
            info = created["params"]["targetInfo"]
            if info["type"] == "page" and info.get("openerId") == page.target_id:
                break
            created = chromium.cdp.wait_event("Target.targetCreated")
        popup = chromium.attach(info["targetId"])
        popup.wait_for("location.pathname === '/popup_target.html'"
                       " && document.readyState === 'complete'")
        assert popup.evaluate("document.title") == "Drover popup"
        click_id(popup, "popup-button")
        opener_log = mouse("popup", "#open-popup")
        assert page.events() == opener_log
        assert popup.events() == [
            *opener_log,  # the browser copies the opener's sessionStorage into the popup
            "popup_target load /popup_target.html",
            *mouse("popup_target", "#popup-button"),
        ]
        assert page.evaluate("document.getElementById('popup-state').dataset.state") == "opened"
    finally:
        chromium.cdp.call("Target.setDiscoverTargets", {"discover": False})


def test_clear_events_empties_the_tab_log(page, fixture_site):
    page.goto(fixture_site.url("/index.html"))
    page.evaluate("droverLog('note', 'x', {plain: 'a', space: 'b c', empty: '', eq: 'k=v',"
                  " quote: 'say \"hi\"', nl: 'two\\nlines'})")
    assert page.events() == [
        "index load /index.html",
        'index note x plain=a space="b c" empty="" eq="k=v" quote="say \\"hi\\"" nl="two\\nlines"',
    ]
    page.evaluate("droverClearEvents()")
    assert page.events() == []
    page.goto(fixture_site.url("/slow?ms=10"))
    assert page.events() == ["slow load /slow"]
    assert page.evaluate("document.title") == "Drover slow"
