"""The fixture site's HTTP side, without a browser."""
from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser

import pytest

from navigation.fixture_site import DEFAULT_USERS, FixtureSite
from navigation.fixture_site._server import FORM_FIELDS, load_static

HTML_PAGES = sorted(p for p in load_static() if p.endswith(".html"))


class _Page(HTMLParser):
    """Collects the title, ids and every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.ids: dict[str, str] = {}
        self.refs: list[str] = []
        self._in_title = False
        self._current_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._in_title = tag == "title"
        self._current_id = a.get("id")
        if self._current_id:
            self.ids[self._current_id] = ""
        for name in ("src", "href", "action"):
            if a.get(name):
                self.refs.append(a[name] or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False
        self._current_id = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._current_id:
            self.ids[self._current_id] += data


def parse(body: bytes) -> _Page:
    page = _Page()
    page.feed(body.decode("utf-8"))
    return page


def get(url: str, *, method: str = "GET", data: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


def raw_get(site: FixtureSite, path: str, method: str = "GET") -> tuple[int, bytes]:
    """Send ``path`` byte for byte (urllib would normalise it)."""
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def site():
    with FixtureSite(slow_delay=0.3) as s:
        yield s


# -- lifecycle and binding ------------------------------------------------------------------

def test_binds_loopback_on_an_ephemeral_port():
    with FixtureSite() as s:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", s.base_url)
        assert s.port > 0 and s.base_url.endswith(f":{s.port}")
        assert s.url("/form.html") == s.base_url + "/form.html"
        assert s.url("form.html") == s.base_url + "/form.html"


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost", "::1", "::", "10.0.0.1", ""])
def test_refuses_any_host_but_127_0_0_1(host):
    with pytest.raises(ValueError, match="127.0.0.1"):
        FixtureSite(host=host)


@pytest.mark.parametrize("kwargs, error", [
    ({"slow_delay": -1}, ValueError),
    ({"slow_delay": 31}, ValueError),
    ({"slow_delay": "1"}, TypeError),
    ({"users": {"": "x"}}, TypeError),
    ({"users": {"bob": 1}}, TypeError),
])
def test_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        FixtureSite(**kwargs)


def test_url_refuses_absolute_urls(site):
    with pytest.raises(ValueError):
        site.url("http://example.com/")


def test_lifecycle_errors_and_restart():
    s = FixtureSite()
    with pytest.raises(RuntimeError, match="not started"):
        s.base_url  # noqa: B018 (the property is what is tested)
    s.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            s.start()
        first = s.port
        assert get(s.url("/form.html"))[0] == 200
    finally:
        s.stop()
    s.stop()  # idempotent
    with pytest.raises(RuntimeError):
        s.port  # noqa: B018
    with s:  # a stopped site can start again
        assert get(s.url("/form.html"))[0] == 200
    assert first > 0


def _site_threads(port: int) -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name == f"fixture-site-{port}" or t.name.startswith(f"fixture-site-{port}-")]


def test_stop_ends_keepalive_connections_and_slow_requests():
    s = FixtureSite(slow_delay=20).start()
    port = s.port
    idle = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    idle.request("GET", "/form.html")
    assert idle.getresponse().read()  # keep-alive connection now idle on the server
    outcome: list[object] = []

    def slow_client() -> None:
        try:
            outcome.append(get(s.url("/slow"))[0])
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    client = threading.Thread(target=slow_client, daemon=True)
    client.start()
    deadline = time.monotonic() + 5
    while len(_site_threads(port)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the /slow request has its server thread
    assert len(_site_threads(port)) == 3  # server loop, idle connection, /slow
    started = time.monotonic()
    s.stop()
    assert time.monotonic() - started < 2.0
    assert _site_threads(port) == []
    client.join(5)
    idle.close()
    assert outcome, "the /slow client never returned"


def test_responses_are_not_held_back_by_nagles_algorithm(site):
    """Every response is two sends (headers, then body): with Nagle's algorithm the body waited for the
    client's delayed ACK of the headers — ~40 ms on every page and subresource of a keep-alive connection,
    which doubled the site's page-load time and diluted every runner comparison made on it."""
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        conn.request("GET", "/form.html")
        assert conn.getresponse().read()
        sockets = [sock for _thread, sock in site._server.live_connections()]
        assert sockets, "the keep-alive connection has no server thread"
        assert all(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in sockets)
    finally:
        conn.close()


# -- pages ----------------------------------------------------------------------------------

def test_every_page_is_html_with_a_distinct_title_and_no_store(site):
    titles = {}
    for path in HTML_PAGES:
        status, headers, body = get(site.url(path))
        assert status == 200, path
        assert headers["Content-Type"] == "text/html; charset=utf-8", path
        assert headers["Cache-Control"] == "no-store", path
        page = parse(body)
        assert page.title.startswith("Drover"), path
        titles.setdefault(page.title, []).append(path)
        assert "/events.js" in page.refs, f"{path} does not load the event log"
    dupes = {t: p for t, p in titles.items() if len(p) > 1}
    assert dupes == {}


@pytest.mark.parametrize("path", HTML_PAGES + ["/events.js", "/canvas_login.js", "/site.css"])
def test_pages_load_nothing_from_the_network(site, path):
    body = get(site.url(path))[1:][1].decode("utf-8")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", body, re.I), path
    assert "@import" not in body and "url(http" not in body
    if path.endswith(".html"):
        for ref in parse(body.encode()).refs:
            assert ref.startswith(("/", "#", "data:")), (path, ref)


@pytest.mark.parametrize("path, content_type", [
    ("/events.js", "text/javascript; charset=utf-8"),
    ("/canvas_login.js", "text/javascript; charset=utf-8"),
    ("/site.css", "text/css; charset=utf-8"),
    ("/", "text/html; charset=utf-8"),
])
def test_content_types(site, path, content_type):
    status, headers, _ = get(site.url(path))
    assert (status, headers["Content-Type"], headers["Cache-Control"]) == (
        200, content_type, "no-store")


def test_head_answers_headers_only(site):
    _, get_headers, get_body = get(site.url("/form.html"))
    status, body = raw_get(site, "/form.html", "HEAD")
    assert status == 200 and body == b""
    assert int(get_headers["Content-Length"]) == len(get_body)


def test_form_page_has_the_documented_controls(site):
    page = parse(get(site.url("/form.html"))[2])
    for id_ in ("form", "name", "email", "city", "color", "when", "shade", "notes", "bio",
                "bio-field", "agree", "submit"):
        assert id_ in page.ids, id_
    assert 'id="city" name="city" value="Par"' in get(site.url("/form.html"))[2].decode()


def test_result_echoes_every_field_escaped(site):
    query = urllib.parse.urlencode({
        "name": "Al <b>", "email": "al@example.test", "city": "Paris", "color": "green",
        "when": "2024-05-06", "shade": "#ff0000", "notes": "two\nlines", "bio": "Hello there",
        "agree": "yes", "extra": "kept",
    })
    status, headers, body = get(site.url("/result?" + query))
    assert status == 200 and headers["Cache-Control"] == "no-store"
    page = parse(body)
    assert page.title == "Drover result"
    assert {f: page.ids[f"out-{f}"] for f in FORM_FIELDS} == {
        "name": "Al <b>", "email": "al@example.test", "city": "Paris", "color": "green",
        "when": "2024-05-06", "shade": "#ff0000", "notes": "two\nlines", "bio": "Hello there",
        "agree": "yes",
    }
    assert page.ids["out-count"] == "10"
    assert b"Al &lt;b&gt;" in body and b"<b>" not in body


def test_result_renders_missing_fields_empty(site):
    page = parse(get(site.url("/result?name=Al"))[2])
    assert page.ids["out-name"] == "Al"
    assert page.ids["out-agree"] == "" and page.ids["out-count"] == "1"


def test_slow_waits_for_the_default_delay(site):
    started = time.monotonic()
    status, _, body = get(site.url("/slow"))
    elapsed = time.monotonic() - started
    assert status == 200 and parse(body).title == "Drover slow"
    assert 0.3 <= elapsed < 3.0


def test_slow_takes_ms_and_bounds_it(site):
    started = time.monotonic()
    assert get(site.url("/slow?ms=120"))[0] == 200
    assert 0.12 <= time.monotonic() - started < 2.0
    for bad in ("ms=abc", "ms=-1", "ms=30001"):
        assert get(site.url("/slow?" + bad))[0] == 400, bad


def test_error_and_status_routes(site):
    status, headers, body = get(site.url("/error"))
    assert (status, headers["Content-Type"], parse(body).title) == (
        500, "text/html; charset=utf-8", "Drover error")
    for code in (200, 404, 418, 503):
        status, headers, body = get(site.url(f"/status/{code}"))
        assert status == code and headers["Cache-Control"] == "no-store"
        assert parse(body).title == f"Drover status {code}"
    status, headers, body = get(site.url("/status/204"))
    assert (status, body) == (204, b"")
    for bad in ("99", "600", "abc", "2000", "+20"):
        assert get(site.url(f"/status/{bad}"))[0] == 400, bad
    assert get(site.url("/no-such-page.html"))[0] == 404


# -- /api/login -------------------------------------------------------------------------------

def login(site: FixtureSite, payload: object) -> tuple[int, dict[str, object]]:
    status, headers, body = get(site.url("/api/login"), method="POST",
                                data=json.dumps(payload).encode(),
                                headers={"Content-Type": "application/json"})
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    return status, json.loads(body)


def test_login_accepts_the_right_password(site):
    assert DEFAULT_USERS == {"alice": "correct horse"}
    assert login(site, {"user": "alice", "password": "correct horse"}) == (
        200, {"ok": True, "user": "alice"})


@pytest.mark.parametrize("payload", [
    {"user": "alice", "password": "wrong"},
    {"user": "alice", "password": ""},
    {"user": "mallory", "password": "correct horse"},
])
def test_login_refuses_wrong_credentials(site, payload):
    assert login(site, payload) == (401, {"ok": False, "error": "Wrong user or password"})


@pytest.mark.parametrize("payload", [{"user": "alice"}, {"user": 1, "password": "x"}, ["alice"]])
def test_login_rejects_malformed_bodies(site, payload):
    assert login(site, payload)[0] == 400


def test_login_rejects_non_json_and_get(site):
    status, _, _ = get(site.url("/api/login"), method="POST", data=b"user=alice",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    status, headers, _ = get(site.url("/api/login"))
    assert (status, headers["Allow"]) == (405, "POST")


def test_post_elsewhere_is_refused_and_its_body_never_parsed(site, caplog):
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        with caplog.at_level(logging.DEBUG, logger="navigation.fixture_site"):
            conn.request("POST", "/form.html", body=b"GET /smuggled HTTP/1.1\r\n\r\n")
            resp = conn.getresponse()
            resp.read()
            assert (resp.status, resp.getheader("Allow"), resp.getheader("Connection")) == (
                405, "GET, HEAD", "close")
            conn.request("GET", "/form.html")  # http.client reconnects
            assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert not any("/smuggled" in r.getMessage() for r in caplog.records)


def test_login_uses_the_configured_users():
    with FixtureSite(users={"bob": "hunter2"}) as s:
        assert login(s, {"user": "bob", "password": "hunter2"})[0] == 200
        assert login(s, {"user": "alice", "password": "correct horse"})[0] == 401


# -- safety -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/../setup.py", "/..%2fsetup.py", "/%2e%2e/%2e%2e/etc/passwd", "/%252e%252e/_server.py",
    "/static/../_server.py", "/./form.html", "/a\\..\\_server.py", "/%00", "/%ff",
])
def test_traversal_is_rejected(site, path):
    status, body = raw_get(site, path)
    assert status == 400, path
    assert b"import" not in body


@pytest.mark.parametrize("path", [
    "/_server.py", "/__init__.py", "/static/form.html", "/README.md", "//etc/passwd",
])
def test_only_static_files_are_served(site, path):
    status, body = raw_get(site, path)
    assert status == 404, path
    assert b"import" not in body


def test_unsupported_methods_get_a_no_store_error(site):
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        conn.request("PUT", "/form.html", body=b"x")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 501
        assert resp.getheader("Cache-Control") == "no-store"
    finally:
        conn.close()


def test_requests_are_logged_at_debug_never_on_stderr(caplog, capfd):
    with caplog.at_level(logging.DEBUG, logger="navigation.fixture_site"):
        with FixtureSite() as s:
            get(s.url("/form.html"))
            get(s.url("/nope"))
            raw_get(s, "/../x")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("navigation.fixture_site")]
    assert any('"GET /form.html HTTP/1.1" 200' in line for line in lines), lines
    assert {r.levelno for r in caplog.records if r.name.startswith("navigation.fixture_site")} == {
        logging.DEBUG}
