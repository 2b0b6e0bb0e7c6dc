"""One browser, K session threads: a websocket per session, one restart per crash, recycling only when idle."""
from __future__ import annotations

import threading
import time

import pytest

from navigation.errors import CDPConnectionLost, CDPError
from navigation.lifecycle import LifecycleSettings
from navigation.shared_browser import SessionLifecycle, SharedBrowser


def run_threads(targets, timeout: float = 60.0) -> list[BaseException]:
    """Run each target on a thread of its own; the exceptions they raised (a test must see them)."""
    errors: list[BaseException] = []

    def wrap(fn):
        def go():
            try:
                fn()
            except BaseException as exc:  # handed to the test, which fails on it
                errors.append(exc)
        return go

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a session thread did not finish"
    return errors


def test_sessions_share_one_browser_over_their_own_websockets_and_a_crash_costs_one_restart():
    shared = SharedBrowser(cohort="w0")
    guarded = []
    sessions = [SessionLifecycle(shared, cohort=f"w0s{i}", seed=1, before_send=lambda i=i: guarded.append(i))
                for i in range(3)]
    conns: dict[int, object] = {}
    after: dict[int, object] = {}
    connected = threading.Barrier(4, timeout=30)
    killed = threading.Barrier(4, timeout=30)

    def session(i):
        def go():  # one thread per session for its whole life: a connection has one owner thread
            conn = conns[i] = sessions[i].ensure_profile(None)
            assert conn.new_page().evaluate("6*7") == 42
            connected.wait()
            killed.wait()
            with pytest.raises(CDPError):
                conn.send("Target.getTargets", timeout=10)
            after[i] = sessions[i].reconnect("browser killed").new_page().evaluate("1+1")
        return go

    def kill():
        connected.wait()
        assert shared.stats.launches == 1 and shared.generation == 1
        pids.append(shared.browser.pid)
        shared.browser.kill()
        killed.wait()

    pids: list[int] = []
    try:
        assert not run_threads([session(i) for i in range(3)] + [kill])
        assert len({id(c) for c in conns.values()}) == 3  # a websocket each
        assert set(guarded) == {0, 1, 2}  # every session's sends passed its own guard
        assert after == {0: 2, 1: 2, 2: 2}
        assert shared.stats.restarts == 1 and shared.generation == 2  # one restart for three sessions
        assert shared.browser.pid != pids[0]
        assert [s.forced_reconnects for s in sessions] == [1, 1, 1]
    finally:
        for s in sessions:
            s.close()
        shared.close()


def test_a_due_recycle_waits_until_no_session_runs_a_job():
    shared = SharedBrowser(LifecycleSettings(recycle_after_jobs=1), cohort="w0")
    a = SessionLifecycle(shared, cohort="w0s0")
    b = SessionLifecycle(shared, cohort="w0s1")
    try:
        first = shared.current("test")[0].pid
        in_job = threading.Event()
        release = threading.Event()
        seen: dict[str, object] = {}

        def session_a():
            with shared.job():
                a.ensure()
                in_job.set()
                assert release.wait(20)
                assert a.ensure().send("Target.getTargets")["targetInfos"] is not None
                seen["pid_during_a"] = shared.browser.pid  # b's finished job made the recycle due: not yet done

        def session_b():
            assert in_job.wait(20)
            with shared.job():
                b.ensure()
                assert b.job_finished() is False  # due, not done: a is still running
            seen["recycles_after_b"] = shared.stats.recycles
            release.set()

        assert not run_threads([session_a, session_b])
        assert seen == {"pid_during_a": first, "recycles_after_b": 0}
        assert shared.stats.recycles == 1 and shared.browser.pid != first  # done when a left its job
        with shared.job():
            assert b.ensure().new_page().evaluate("3") == 3  # b reconnects to the new browser by itself
        assert b.forced_reconnects == 0
    finally:
        a.close()
        b.close()
        shared.close()


def test_a_dead_connection_of_a_live_browser_is_reconnected_without_a_restart():
    shared = SharedBrowser(cohort="w0")
    s = SessionLifecycle(shared, cohort="w0s0")
    other = SessionLifecycle(shared, cohort="w0s1")
    try:
        conn = s.ensure()
        keep = other.ensure()
        conn.close()
        with pytest.raises(CDPConnectionLost):
            conn.send("Browser.getVersion")
        t0 = time.monotonic()
        assert s.reconnect("socket closed").send("Browser.getVersion")["product"]
        assert time.monotonic() - t0 < 5
        assert shared.stats.restarts == 0 and shared.generation == 1
        assert keep.send("Browser.getVersion")["product"]  # the other session's websocket is untouched
    finally:
        s.close()
        other.close()
        shared.close()
