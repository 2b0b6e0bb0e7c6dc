"""Browser lifecycle: crash detection, restart, reconnect with per-cohort jittered backoff."""
from __future__ import annotations

import logging
import time

import pytest

from coordination.backoff import BackoffProfile
from coordination.telemetry_context import bind
from navigation.errors import BrowserUnavailable, CDPConnectionLost
from navigation.launcher import LaunchSettings
from navigation.lifecycle import BrowserLifecycle, LifecycleSettings, probe


def test_sigkill_mid_session_raises_lost_fast_and_lifecycle_recovers(caplog):
    caplog.set_level(logging.INFO, logger="drover.operational")
    with BrowserLifecycle(cohort="w1", seed=7) as life:
        conn = life.ensure()
        page = conn.new_page()
        assert page.evaluate("1+1") == 2
        old_pid = life.browser.pid
        life.browser.kill()
        started = time.monotonic()
        with pytest.raises(CDPConnectionLost):
            page.send("Runtime.evaluate", {"expression": "1+1"}, timeout=30)
        assert time.monotonic() - started < 2.0
        with bind(run_id="r1", correlation_id="r1/job-9/a1"):
            conn = life.reconnect("connection lost during test")
        assert life.browser.pid != old_pid
        assert conn.new_page().evaluate("2+3") == 5
        assert life.stats.forced_reconnects == 1 and life.stats.restarts == 1
    records = [r for r in caplog.records if getattr(r, "event", None) == "reconnect"]
    assert records and records[-1].outcome == "ok" and records[-1].action == "restart"
    assert records[-1].correlation_id == "r1/job-9/a1"


def test_ensure_starts_and_reuses(tmp_path):
    with BrowserLifecycle() as life:
        c1 = life.ensure()
        assert life.health()["webSocketDebuggerUrl"]
        assert life.ensure() is c1
        assert life.stats.launches == 1


def test_recycle_after_n_jobs():
    settings = LifecycleSettings(recycle_after_jobs=2)
    with BrowserLifecycle(settings) as life:
        life.ensure()
        first = life.browser.pid
        assert life.job_finished() is False
        assert life.job_finished() is True
        assert life.browser.pid != first and life.stats.recycles == 1
        assert life.ensure().new_page().evaluate("1") == 1


def test_probe_of_a_dead_port_is_unavailable():
    with pytest.raises(BrowserUnavailable):
        probe("http://127.0.0.1:9", timeout=0.5)


def _failing_lifecycle(cohort: int, seed: int, delays: list[float]) -> BrowserLifecycle:
    settings = LifecycleSettings(
        launch=LaunchSettings(binary="/bin/false", startup_timeout=2),
        backoff=BackoffProfile(base=1.0, cap=8.0, max_attempts=3, jitter="full"),
    )
    return BrowserLifecycle(settings, cohort=cohort, seed=seed, sleep=delays.append)


def _schedules(seed: int) -> list[list[float]]:
    out = []
    for cohort in range(8):
        delays: list[float] = []
        life = _failing_lifecycle(cohort, seed, delays)
        with pytest.raises(BrowserUnavailable, match="after 3 attempts"):
            life.reconnect("simulated shared outage")
        out.append(delays)
    return out


def test_cohorts_failing_together_spread_their_retries_and_replay_from_seed():
    # 8 workers in 8 cohorts hit by the same outage at the same instant (a browser that cannot start).
    schedules = _schedules(seed=2024)
    firsts = [s[0] for s in schedules]
    base_window = 1.0
    assert all(len(s) == 2 for s in schedules)
    assert max(firsts) - min(firsts) >= base_window / 2, f"first retries bunched: {firsts}"
    assert len({round(f, 6) for f in firsts}) == 8
    # Deterministic: the same seed gives the same schedules, cohort by cohort.
    assert _schedules(seed=2024) == schedules
