"""A script's cookie write is in the cookie store before a run's pages close (:func:`settle_cookie_writes`).

Why these tests pause Chromium's network service: ``document.cookie = ...``
is a one-way message to it, so while it is paused the write is in flight.
A barrier that does not wait for the write (a no-op, or a call Blink answers
without the service, such as ``navigator.cookieEnabled``) returns at once; the real one must wait until the
service runs again, and the store must then hold the cookie.  The browser
is the test's own (:class:`tests._remote_browser.ExternalChromium`); only
its network-service process is paused, by pid, and always resumed.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

import psutil
import pytest

from navigation.cdp import CDPConnection
from navigation.page import Pages, settle_cookie_writes
from tests._remote_browser import ExternalChromium
from tests._wait import wait_for

pytestmark = pytest.mark.chromium


@contextlib.contextmanager
def paused_network_service(ext: ExternalChromium) -> Iterator[psutil.Process]:
    found = []
    for proc in psutil.Process(ext.proc.pid).children(recursive=True):
        try:
            if "--utility-sub-type=network.mojom.NetworkService" in " ".join(proc.cmdline()):
                found.append(proc)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue  # a renderer that has just exited (the first about:blank's)
    assert len(found) == 1, f"one network service process expected, found {found}"
    service = found[0]
    service.suspend()
    try:
        yield service
    finally:
        service.resume()


@pytest.fixture()
def context_page(site):
    with ExternalChromium() as ext:
        conn = CDPConnection.connect(ext.ws_url())
        try:
            context_id = conn.send("Target.createBrowserContext", {"disposeOnDetach": True})["browserContextId"]
            pages = Pages.open(conn, browser_context_id=context_id)
            pages.main.send("Page.navigate", {"url": site.url("/form.html")})
            pages.main.wait_for_load(10)
            pages.main.evaluate("document.cookie")  # Blink now holds the jar's string in its cache
            yield ext, conn, context_id, pages
        finally:
            conn.close()


def in_thread(conn: CDPConnection, fn) -> tuple[threading.Thread, threading.Event]:
    """Run ``fn`` on a thread that owns ``conn`` meanwhile; join it, then :func:`take_back` the connection."""
    done = threading.Event()

    def run() -> None:
        conn.transfer_ownership()
        fn()
        done.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    return worker, done


def take_back(conn: CDPConnection, worker: threading.Thread, timeout: float) -> None:
    worker.join(timeout)
    assert not worker.is_alive(), f"still waiting after {timeout} s with the network service running"
    conn.transfer_ownership()


def sid_cookies(conn: CDPConnection, context_id: str) -> list[str]:
    cookies = conn.send("Storage.getCookies", {"browserContextId": context_id}, timeout=10)["cookies"]
    return [c["value"] for c in cookies if c["name"] == "sid"]


def write_then_wait(context_page, value: str, then, what: str, timeout: float) -> threading.Event:
    """Set ``sid=value`` with the network service paused, run ``then`` on a thread: it must still be waiting
    half a second later; resume the service and let it finish.  Its done-event is returned."""
    ext, conn, _, pages = context_page
    with paused_network_service(ext):
        pages.main.evaluate(f"document.cookie = 'sid={value}; max-age=3600', true")  # answers: the write is in flight
        worker, done = in_thread(conn, then)
        time.sleep(0.5)
        assert not done.is_set(), what
    take_back(conn, worker, timeout)
    return done


def test_the_barrier_waits_for_a_cookie_write_in_flight(context_page):
    _, conn, context_id, pages = context_page
    done = write_then_wait(context_page, "alice", lambda: settle_cookie_writes(pages.main, timeout=10),
                           "returned while the network service could not have applied the write", 10)
    assert done.is_set()
    assert sid_cookies(conn, context_id) == ["alice"]


def test_closing_a_runs_pages_leaves_their_last_cookie_write_in_the_store(context_page):
    """What a remote credential's save reads right after the job (``Storage.getCookies``) has the job's last write."""
    _, conn, context_id, pages = context_page
    closed = write_then_wait(context_page, "bob", pages.close_all,
                             "pages closed before their cookie write was applied", 15)
    assert closed.is_set()
    assert sid_cookies(conn, context_id) == ["bob"]


def test_a_page_that_is_already_gone_is_not_waited_for(context_page):
    _, conn, _, pages = context_page
    conn.send("Target.closeTarget", {"targetId": pages.main.session.target_id})
    conn.wait_for_event("Target.detachedFromTarget",
                        lambda ev: ev.params.get("sessionId") == pages.main.session.session_id, timeout=10)
    started = time.monotonic()
    assert settle_cookie_writes(pages.main) is False
    assert time.monotonic() - started < 2  # not its 5-s timeout


def test_after_a_failed_run_a_page_stuck_in_a_script_is_closed_without_waiting_for_it(context_page):
    """The barrier is a script call: a page spinning in a script (a step that timed out) never answers it."""
    _, conn, _, pages = context_page
    pages.main.evaluate("setTimeout(() => { const end = Date.now() + 30000; while (Date.now() < end) {} }, 0), true")
    started = time.monotonic()
    pages.close_all(settle_cookies=False)
    assert time.monotonic() - started < 3  # the barrier's own timeout is 5 s
    gone = lambda: pages.main.session.target_id not in {  # noqa: E731
        t["targetId"] for t in conn.send("Target.getTargets")["targetInfos"]}
    wait_for(gone, 10, "the stuck page's target to go")
