"""The synchronous CDP client against a real Chromium, plus faults from a fake endpoint."""
from __future__ import annotations

import threading
import time

import pytest

from navigation.cdp import CDPConnection
from navigation.errors import CDPConnectionLost, CDPProtocolError, CDPResponseError, CDPTimeout
from tests.fakecdp import FakeCDPServer


@pytest.fixture()
def page(conn):
    p = conn.new_page()
    p.send("Page.enable")
    yield p
    if not conn.closed:
        p.close()


def _navigate(page, url):
    page.send("Page.navigate", {"url": url})
    page.wait_for_event("Page.loadEventFired", timeout=10)


def test_navigate_fixture_form_and_read_title(page, site):
    _navigate(page, site.url("/form.html"))
    title = page.evaluate("document.title")
    assert isinstance(title, str) and title
    assert title == page.send("Runtime.evaluate", {"expression": "document.title",
                                                   "returnByValue": True})["result"]["value"]


def test_request_ids_rise_monotonically(conn):
    before = conn._next_id
    for _ in range(5):
        conn.send("Browser.getVersion")
    assert conn._next_id == before + 5
    assert conn.stats.commands >= 5


def test_tiny_timeout_raises_timeout_and_connection_stays_usable(page):
    with pytest.raises(CDPTimeout):
        page.send("Runtime.evaluate", {"expression": "new Promise(r => setTimeout(() => r(1), 300))",
                                       "awaitPromise": True}, timeout=0.02)
    # The late answer arrives while the next command waits and is discarded, not mistaken for it.
    assert page.evaluate("new Promise(r => setTimeout(() => r(2), 400))", await_promise=True) == 2
    assert page.connection.stats.late_responses == 1


def test_bad_method_raises_cdp_error_with_code_and_message(conn):
    with pytest.raises(CDPResponseError) as info:
        conn.send("Nope.notAMethod")
    assert info.value.method == "Nope.notAMethod"
    assert info.value.code == -32601
    assert "wasn't found" in info.value.cdp_message
    assert type(info.value).category == "cdp"


def test_events_buffered_while_commands_wait(page, site):
    page.send("Page.navigate", {"url": site.url("/form.html")})
    # Keep the connection busy with commands while the page loads: events must be kept.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        page.send("Runtime.evaluate", {"expression": "document.readyState"})
        if any(ev.method == "Page.loadEventFired" for ev in page.connection._events):
            break
    ev = page.wait_for_event("Page.loadEventFired", timeout=0.001 + 5)
    assert ev.session_id == page.session_id
    assert page.connection.stats.events_dropped == 0


def test_wait_for_event_with_predicate_and_timeout(page):
    page.send("Runtime.enable")
    page.send("Runtime.evaluate", {"expression": "console.log('first'); console.log('second')"})
    ev = page.wait_for_event("Runtime.consoleAPICalled",
                             lambda e: e.params["args"][0].get("value") == "second", timeout=5)
    assert ev.params["args"][0]["value"] == "second"
    # the non-matching 'first' is still buffered, in order
    firsts = [e for e in page.pop_events("Runtime.consoleAPICalled") if e.params["args"][0].get("value") == "first"]
    assert len(firsts) == 1
    with pytest.raises(CDPTimeout):
        page.wait_for_event("Runtime.consoleAPICalled", timeout=0.1)


def test_flattened_sessions_share_one_websocket(conn):
    a, b = conn.new_page(), conn.new_page()
    try:
        a.evaluate("window.who = 'a'")
        b.evaluate("window.who = 'b'")
        assert (a.evaluate("window.who"), b.evaluate("window.who")) == ("a", "b")
        assert a.session_id != b.session_id
    finally:
        a.close()
        b.close()


def test_use_from_another_thread_is_refused(conn):
    errors = []

    def other():
        try:
            conn.send("Browser.getVersion")
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(5)
    assert errors and "does not own" in str(errors[0])


def test_before_send_hook_runs_for_every_command(browser):
    calls = []
    with CDPConnection.connect(browser.ws_url, before_send=lambda: calls.append(1)) as c:
        c.send("Browser.getVersion")
        c.send("Browser.getVersion")
    assert len(calls) == 2


# -- faults from a fake endpoint ---------------------------------------------------------------


def test_garbage_frame_raises_protocol_error():
    with FakeCDPServer(lambda peer, msg: peer.send_text(b"\x00not json")) as server:
        with CDPConnection.connect(server.url) as c:
            with pytest.raises(CDPProtocolError, match="not JSON"):
                c.send("Browser.getVersion", timeout=2)


def test_dropped_connection_raises_lost_promptly_not_after_timeout():
    with FakeCDPServer(lambda peer, msg: peer.drop()) as server:
        with CDPConnection.connect(server.url) as c:
            started = time.monotonic()
            with pytest.raises(CDPConnectionLost):
                c.send("Browser.getVersion", timeout=30)
            assert time.monotonic() - started < 2
            with pytest.raises(CDPConnectionLost):
                c.send("Browser.getVersion")


def test_unknown_events_pass_through_as_plain_data():
    def handler(peer, msg):
        peer.send_json({"method": "Future.somethingNew", "params": {"shiny": [1, 2]}, "extra": True})
        peer.send_json({"id": msg["id"], "result": {"fine": 1}, "unknownField": "kept"})

    with FakeCDPServer(handler) as server, CDPConnection.connect(server.url) as c:
        assert c.send("Any.thing") == {"fine": 1}
        [ev] = c.pop_events()
        assert (ev.method, ev.params) == ("Future.somethingNew", {"shiny": [1, 2]})


def test_event_flood_overflow_is_counted_not_silent(caplog):
    def handler(peer, msg):
        for i in range(50):
            peer.send_json({"method": "Flood.tick", "params": {"i": i}})
        peer.send_json({"id": msg["id"], "result": {}})

    with FakeCDPServer(handler) as server:
        with CDPConnection.connect(server.url, max_buffered_events=10) as c:
            c.send("Any.thing")
            events = c.pop_events()
    assert [e.params["i"] for e in events] == list(range(40, 50))
    assert c.stats.events_dropped == 40
    assert any("event buffer full" in r.getMessage() for r in caplog.records)


def test_delayed_answer_beyond_timeout_raises_timeout():
    def handler(peer, msg):
        time.sleep(0.5)
        peer.send_json({"id": msg["id"], "result": {}})

    with FakeCDPServer(handler) as server, CDPConnection.connect(server.url) as c:
        with pytest.raises(CDPTimeout):
            c.send("Slow.thing", timeout=0.1)


# -- several commands at once ------------------------------------------------------------------


def test_send_all_returns_results_in_order_and_checks_every_command(browser):
    calls = []
    with CDPConnection.connect(browser.ws_url, before_send=lambda: calls.append(1)) as c:
        version, targets = c.send_all([("Browser.getVersion", None, None), ("Target.getTargets", None, None)])
        assert "product" in version and "targetInfos" in targets
        assert len(calls) == 2 and c.stats.by_method["Target.getTargets"] == 1


def test_send_all_raises_the_first_error_after_every_answer_and_stays_usable(browser):
    with CDPConnection.connect(browser.ws_url) as c:
        with pytest.raises(CDPResponseError) as err:
            c.send_all([("Browser.getVersion", None, None), ("No.suchMethod", None, None),
                        ("Also.missing", None, None), ("Target.getTargets", None, None)])
        assert err.value.method == "No.suchMethod"
        assert "product" in c.send("Browser.getVersion")  # no answer of the batch was left unread
        assert c.stats.late_responses == 0


def test_send_all_matches_answers_that_come_out_of_order():
    held = []

    def handler(peer, msg):
        held.append(msg)
        if len(held) == 3:
            peer.send_json({"method": "Some.event", "params": {"n": 1}})
            for m in reversed(held):
                peer.send_json({"id": m["id"], "result": {"method": m["method"]}})

    with FakeCDPServer(handler) as server, CDPConnection.connect(server.url) as c:
        out = c.send_all([("A.one", None, None), ("B.two", {"x": 1}, "S1"), ("C.three", None, None)], timeout=5)
        assert [r["method"] for r in out] == ["A.one", "B.two", "C.three"]
        assert held[1]["sessionId"] == "S1" and held[1]["params"] == {"x": 1}
        assert [e.method for e in c.pop_events()] == ["Some.event"]


def test_send_all_timeout_abandons_the_unanswered_so_their_late_answers_are_dropped():
    held = []

    def handler(peer, msg):
        held.append(msg)
        if msg["method"] == "Fast.one":
            peer.send_json({"id": msg["id"], "result": {}})
        elif msg["method"] == "Next.one":
            for m in held:
                if m["method"] == "Slow.one":
                    peer.send_json({"id": m["id"], "result": {}})  # late: after the batch gave up
            peer.send_json({"id": msg["id"], "result": {"ok": True}})

    with FakeCDPServer(handler) as server, CDPConnection.connect(server.url) as c:
        with pytest.raises(CDPTimeout):
            c.send_all([("Fast.one", None, None), ("Slow.one", None, None)], timeout=0.2)
        assert c.send("Next.one", timeout=5) == {"ok": True}
        assert c.stats.late_responses == 1


def test_post_costs_no_wait_and_its_answer_is_read_by_the_next_command(page, caplog):
    caplog.set_level("DEBUG", logger="navigation.cdp")
    conn = page.connection
    page.send("Runtime.evaluate", {"expression": "window.x = {a: 1}", "objectGroup": "g"})
    conn.post("Runtime.releaseObjectGroup", {"objectGroup": "g"}, session_id=page.session_id)
    conn.post("No.suchMethod", None, session_id=page.session_id)
    assert conn._pending.posted  # sent, answers not read yet
    assert page.evaluate("1 + 1") == 2  # reads (and drops) both answers on the way
    assert conn._pending.posted == {} and conn.stats.late_responses == 0
    assert any(r.getMessage() == "cdp posted command failed" and r.method == "No.suchMethod"
               for r in caplog.records)


def test_a_pages_main_frame_id_is_its_target_id_across_a_cross_site_navigation(conn, site):
    from navigation.page import Page

    page = Page.setup(conn.new_page())
    try:
        # data: is an opaque origin, another site (and process) than the fixture site's
        for url in (site.url("/form.html"), "data:text/html,<title>other</title>", site.url("/result"),
                    "about:blank"):
            page.session.send("Page.navigate", {"url": url})
            page.session.wait_for_event("Page.loadEventFired", timeout=10)
            tree = page.session.send("Page.getFrameTree")["frameTree"]
            assert page.frame_id(()) == tree["frame"]["id"] == page.session.target_id
    finally:
        page.session.close()


def test_send_all_refused_midway_by_before_send_leaves_no_answer_unexpected(browser):
    calls = []

    def guard():
        calls.append(1)
        if len(calls) == 2:
            raise PermissionError("lease lost")

    with CDPConnection.connect(browser.ws_url, before_send=guard) as c:
        with pytest.raises(PermissionError):
            c.send_all([("Browser.getVersion", None, None), ("Target.getTargets", None, None)])
        assert "product" in c.send("Browser.getVersion")  # the first command's answer is dropped, not raised
        assert c.stats.late_responses == 1
