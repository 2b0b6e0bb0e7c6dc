"""Remote browsers: endpoint parsing and redaction, and a lifecycle that connects to a browser it never kills.

The browsers here are the test's own (:class:`tests._remote_browser.ExternalChromium`):
started with subprocess on a port the test picked, killed only by the test.
"""
from __future__ import annotations

import logging
import os
import stat
import time

import pytest

from coordination.backoff import BackoffProfile
from navigation import cookie_state
from navigation.endpoints import endpoint_problem, parse_endpoint, redact_url, split_endpoints
from navigation.errors import BrowserUnavailable, CDPError
from navigation.lifecycle import LifecycleSettings
from navigation.remote import RemoteBrowserLifecycle, probe_endpoint
from tests._remote_browser import ExternalChromium, free_port

FAST = LifecycleSettings(backoff=BackoffProfile(base=0.05, cap=0.2, max_attempts=3), health_timeout=1.0,
                         connect_timeout=5.0, command_timeout=10.0)


# -- redaction and validation (no browser) ------------------------------------------

@pytest.mark.parametrize("url, shown", [
    ("http://user:s3cret@grid.example:9222", "http://grid.example:9222"),
    ("ws://u:p@127.0.0.1:9222/devtools/browser/abc?token=s3cret", "ws://127.0.0.1:9222/devtools/browser/abc?token=***"),
    ("wss://cloud.example:443?token=s3cret&stealth=true", "wss://cloud.example:443?token=***&stealth=***"),
    ("http://127.0.0.1:9222", "http://127.0.0.1:9222"),
    ("http://[::1]:9222/#s3cret", "http://[::1]:9222/"),
    ("http://h:99999999?token=s3cret", "<unparseable url>"),
])
def test_redact_url_drops_credentials_and_query_values(url, shown):
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9222", "https://h.example:443/", "http://u:p@h:1",
                                 "ws://127.0.0.1:9222/devtools/browser/0f1e-2d3c", "wss://h:443/devtools/browser/x?token=t"])
def test_valid_endpoints(url):
    assert endpoint_problem(url) is None
    assert parse_endpoint(url).port > 0


@pytest.mark.parametrize("url, why", [
    ("127.0.0.1:9222", "must be http(s)://host:port"),
    ("ftp://h:21", "must be http(s)://host:port"),
    ("http://h", "needs a host and a port"),
    ("http://h:9222/json/version", "host:port only"),
    ("ws://h:9222", "ws(s)://host:port/devtools/browser/ID"),
    ("ws://h:9222/devtools/page/1", "ws(s)://host:port/devtools/browser/ID"),
    ("", "must not be empty"),
])
def test_invalid_endpoints_say_why(url, why):
    problem = endpoint_problem(url)
    assert problem is not None and why in problem


def test_invalid_endpoint_message_is_redacted():
    problem = endpoint_problem("ftp://admin:s3cret@h:21?token=s3cret")
    assert problem is not None and "s3cret" not in problem and "admin" not in problem


def test_endpoint_repr_and_basic_auth_hide_the_password():
    e = parse_endpoint("http://admin:s3cret@h.example:9222?token=t0k")
    assert "s3cret" not in repr(e) and "t0k" not in repr(e)
    assert e.version_url() == "http://h.example:9222/json/version?token=t0k"
    assert e.headers()["Authorization"] == "Basic YWRtaW46czNjcmV0"  # admin:s3cret, never in a URL


def test_split_endpoints_by_comma_or_whitespace():
    assert split_endpoints(" http://a:1, http://b:2\nhttp://c:3,,") == ("http://a:1", "http://b:2", "http://c:3")


# -- against a real Chromium the test owns -----------------------------------------------

def _version(conn) -> str:
    return conn.send("Browser.getVersion")["product"]


def test_connects_by_http_url_and_close_leaves_the_browser_running():
    with ExternalChromium() as ext:
        lc = RemoteBrowserLifecycle([ext.http_url], FAST, cohort="t")
        conn = lc.ensure()
        assert "Chrome" in _version(conn) or "HeadlessChrome" in _version(conn)
        assert lc.ensure() is conn  # kept between jobs
        assert lc.browser is None and lc.endpoint is not None
        assert lc.health()["webSocketDebuggerUrl"]
        assert lc.job_finished() is False  # never recycled
        lc.close()
        assert conn.closed
        assert ext.alive(), "close() must not stop a browser Drover did not start"
        assert ext.killed_by_test == []


def test_stale_ws_id_falls_back_to_json_version_on_the_same_port():
    with ExternalChromium() as ext:
        old_ws = ext.ws_url()
        ext.kill()
        ext.start()
        assert ext.ws_url() != old_ws  # a restarted browser has a new id
        lc = RemoteBrowserLifecycle([old_ws], FAST)
        try:
            assert _version(lc.ensure())
        finally:
            lc.close()
        assert ext.alive()


def test_reconnect_survives_a_restart_on_the_same_port():
    """The browser dies; the first attempts find it down; it comes back (on the backoff sleep); reconnected."""
    with ExternalChromium() as ext:
        sleeps: list[float] = []

        def sleep(delay: float) -> None:
            sleeps.append(delay)
            if not ext.alive():
                ext.start()  # the operator's browser comes back while Drover waits

        lc = RemoteBrowserLifecycle([ext.http_url], FAST, sleep=sleep)
        try:
            first = lc.ensure()
            pid = ext.proc.pid
            ext.kill()
            with pytest.raises(CDPError):
                _version(first)
            conn = lc.reconnect("connection lost")
            assert conn is not first and _version(conn)
            assert sleeps, "the first attempt must have found the browser down and backed off"
            assert ext.killed_by_test == [pid] and ext.alive()
        finally:
            lc.close()


def test_down_past_the_backoff_raises_endpoint_down_redacted_and_kills_nothing(caplog):
    port = free_port()  # nothing listens there
    url = f"http://admin:s3cret@127.0.0.1:{port}?token=s3cret"
    lc = RemoteBrowserLifecycle([url], FAST, sleep=lambda _d: None)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BrowserUnavailable) as err:
        lc.ensure()
    assert f"endpoint http://127.0.0.1:{port}?token=*** down" in str(err.value)
    assert "s3cret" not in str(err.value) and "admin" not in str(err.value)
    assert "s3cret" not in caplog.text and "admin:" not in caplog.text
    assert lc.stats.launches == 0 and lc.browser is None


def test_fails_over_to_the_next_endpoint_and_back_home_on_reconnect():
    with ExternalChromium() as ext:
        dead = f"http://127.0.0.1:{free_port()}"
        lc = RemoteBrowserLifecycle([dead, ext.http_url], FAST, home=0, sleep=lambda _d: None)
        try:
            lc.ensure()
            assert lc.endpoint.port == ext.port  # home down: the other endpoint
        finally:
            lc.close()
        lc2 = RemoteBrowserLifecycle([dead, ext.http_url], FAST, home=1)
        try:
            lc2.ensure()
            assert lc2.endpoints[0].port == ext.port and lc2.endpoint.port == ext.port  # worker 1's home
        finally:
            lc2.close()


def test_probe_endpoint_reports_down():
    with pytest.raises(BrowserUnavailable, match="down"):
        probe_endpoint(parse_endpoint(f"http://127.0.0.1:{free_port()}"), timeout=0.5)


def test_credential_context_keeps_cookies_per_credential_in_a_private_state_file(tmp_path):
    with ExternalChromium() as ext:
        lc = RemoteBrowserLifecycle([ext.http_url], FAST, state_dir=str(tmp_path))
        try:
            conn = lc.ensure()
            with lc.credential_context(conn, "site/alice") as ctx:
                assert ctx
                conn.send("Storage.setCookies", {"browserContextId": ctx, "cookies": [
                    {"name": "sid", "value": "alice-session", "domain": "127.0.0.1", "path": "/",
                     "httpOnly": True},
                    {"name": "keep", "value": "1", "domain": "127.0.0.1", "path": "/", "expires": 4102444800}]})
            contexts = conn.send("Target.getBrowserContexts")["browserContextIds"]
            assert ctx not in contexts  # disposed after the job
            path = cookie_state.state_path(str(tmp_path), "site/alice")
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
            with lc.credential_context(conn, "site/alice") as ctx2:
                cookies = {c["name"]: c for c in conn.send("Storage.getCookies", {"browserContextId": ctx2})["cookies"]}
                assert cookies["sid"]["value"] == "alice-session" and cookies["sid"]["session"] is True
                assert cookies["keep"]["session"] is False and cookies["keep"]["expires"] > time.time() + 300 * 86400
            with lc.credential_context(conn, "site/bob") as ctx3:
                assert conn.send("Storage.getCookies", {"browserContextId": ctx3})["cookies"] == []
            with lc.credential_context(conn, None) as none:
                assert none is None
        finally:
            lc.close()
        assert ext.alive()


def test_cookies_not_saved_when_the_connection_is_lost_during_the_job_and_the_job_is_not_failed(tmp_path, caplog):
    with ExternalChromium() as ext:
        lc = RemoteBrowserLifecycle([ext.http_url], FAST, state_dir=str(tmp_path))
        path = cookie_state.state_path(str(tmp_path), "site/carol")
        cookie_state.write(path, [{"name": "sid", "value": "old", "domain": "127.0.0.1", "path": "/"}])
        try:
            conn = lc.ensure()
            caplog.set_level(logging.WARNING)
            with lc.credential_context(conn, "site/carol") as ctx:
                assert ctx
                conn.close()  # lost mid-job: nothing to read the cookies from
            assert "credential cookies not saved" in caplog.text and "old" not in caplog.text
            assert [c["value"] for c in cookie_state.load(path)] == ["old"]  # the previous job's state stays
        finally:
            lc.close()
