"""Concurrent sessions per worker (``--sessions K``), end to end: real supervisor, worker, Chromium, SQLite.

One worker runs K jobs at once on its one browser, each session with its own ownership slot, epoch and
websocket; the checks are the issue's: no unowned use, one outcome per job, jobs that really overlap, a
hung session cut by its own timeout while the others go on, and a browser crash failed over in every
session with exactly one restart.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from engine.cli.exit_codes import EXIT_INPUT, EXIT_JOB_FAILURES, EXIT_OK
from engine.config import Settings
from engine.errors import ConfigError
from tests._remote_browser import ExternalChromium
from tests._wait import wait_for
from tests.engine.execution.test_run import (
    LIGHT_FLOW,
    SLOW_FLOW,
    assert_safe,
    browser_pids,
    db,
    engine,
    last_run,
    outcomes,
    start_engine,
    stream_events,
    write_batch,
)

HANG_FLOW = {"title": "hang", "timeout": 3000, "steps": [  # a page that does not answer within the timeout
    {"type": "navigate", "url": "${BASE_URL}/slow?ms=25000"},
]}


def attempt_rows(state: Path, run_id: str) -> list[tuple]:
    return db(state).execute("SELECT job_id, attempt, worker, outcome, category, started_at, ended_at "
                             "FROM attempts WHERE run_id = ? ORDER BY started_at", (run_id,)).fetchall()


def max_overlap(rows: list[tuple]) -> int:
    """The most attempts open at one instant ([started_at, ended_at] intervals from the store)."""
    edges = sorted([(r[5], 1) for r in rows] + [(r[6], -1) for r in rows], key=lambda e: (e[0], e[1]))
    best = cur = 0
    for _, d in edges:
        cur += d
        best = max(best, cur)
    return best


def test_sessions_setting_is_validated():
    assert Settings(sessions_per_worker=8).sessions_per_worker == 8
    assert Settings(sessions_per_worker="auto").session_slots == 8  # the autoscale maximum per worker
    for bad in (0, 33, "many", True):
        with pytest.raises(ConfigError, match="sessions_per_worker"):
            Settings(sessions_per_worker=bad)
    with pytest.raises(ConfigError, match="ray backend"):
        Settings(sessions_per_worker=2, backend="ray")


def test_a_bad_sessions_flag_is_an_input_error_before_anything_runs(tmp_path, site):
    batch = write_batch(tmp_path, site, 1, LIGHT_FLOW)
    res = engine("run", str(batch), "--sessions", "0", "--state-dir", str(tmp_path / "state"), timeout=60)
    assert res.returncode == EXIT_INPUT, res.stdout + res.stderr
    assert "sessions_per_worker must be an integer 1 .. 32" in res.stderr + res.stdout
    assert not (tmp_path / "state" / "runs").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_worker_eight_sessions_runs_40_jobs(tmp_path, site):
    n = 40
    batch = write_batch(tmp_path, site, n, LIGHT_FLOW)
    state = tmp_path / "state"
    res = engine("run", str(batch), "--workers", "1", "--sessions", "8", "--state-dir", str(state), timeout=240)
    assert res.returncode == EXIT_OK, res.stdout + res.stderr
    run_id, run_dir = last_run(state)
    assert_safe(run_dir, res.stdout)  # unowned session uses=0 invalid transitions=0
    out = outcomes(state, run_id)
    assert len(out) == n and set(out.values()) == {"passed"}
    assert db(state).execute("SELECT COUNT(*) FROM outcomes WHERE run_id = ?", (run_id,)).fetchone()[0] == n
    rows = attempt_rows(state, run_id)
    assert max_overlap(rows) >= 4, rows  # the sessions really ran jobs at the same time
    sessions = {r[2] for r in rows}
    assert len(sessions) >= 4 and all(w.startswith("w0s") for w in sessions), sessions
    # every session owned its own slot: slots 0..7 claimed, each by worker 0
    audit = stream_events(run_dir, "audit")
    owned = {r["slot"] for r in audit if r.get("event") == "slot_owned"}
    assert owned == set(range(8)), owned
    ops = stream_events(run_dir, "operational")
    launches = [r for r in ops if r.get("event") in ("launch", "restart") and r.get("shared")]
    assert len(launches) == 1, launches  # one browser for all eight sessions


@pytest.mark.timeout(300)
def test_a_hung_session_is_cut_by_its_timeout_while_the_others_pass(tmp_path, site):
    fast = write_batch(tmp_path, site, 12, LIGHT_FLOW, name="fast.jsonl")
    hang_path = tmp_path / "hang.json"
    hang_path.write_text(json.dumps(HANG_FLOW))
    lines = fast.read_text().splitlines()
    hang = {"id": "job-hang", "flow": hang_path.name, "retries": 0, "vars": {"BASE_URL": site.base_url}}
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join([json.dumps(hang), *lines]) + "\n")
    state = tmp_path / "state"
    t0 = time.monotonic()
    res = engine("run", str(batch), "--workers", "1", "--sessions", "4", "--state-dir", str(state), timeout=240)
    wall = time.monotonic() - t0
    assert res.returncode == EXIT_JOB_FAILURES, res.stdout + res.stderr
    run_id, run_dir = last_run(state)
    assert_safe(run_dir, res.stdout)
    out = outcomes(state, run_id)
    assert out.pop("job-hang") == "failed"
    assert len(out) == 12 and set(out.values()) == {"passed"}
    cat = db(state).execute("SELECT category FROM outcomes WHERE run_id = ? AND job_id = 'job-hang'",
                            (run_id,)).fetchone()[0]
    assert cat == "timeout"
    rows = attempt_rows(state, run_id)
    hang_row = next(r for r in rows if r[0] == "job-hang")
    # the other sessions ran jobs while the hung one waited out its 3 s
    during = [r for r in rows if r[0] != "job-hang" and r[5] < hang_row[6] and r[6] > hang_row[5]]
    assert len(during) >= 3, rows
    assert wall < 13 * 3.0, wall  # far below (timeout x jobs): nothing waited behind the hung session


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("binary", ["", "chromium-headless-shell"], ids=["chromium", "headless-shell"])
def test_sigkill_of_the_shared_browser_fails_over_every_session(tmp_path, site, binary):
    """On Chromium and on the headless shell (``[browser] binary``; Debian runs it through a wrapper script)."""
    n = 8
    batch = write_batch(tmp_path, site, n, SLOW_FLOW, retries=2, extra_vars={"ms": "3000"})
    state = tmp_path / "state"
    config = tmp_path / "drover.toml"
    config.write_text(f"[browser]\nbinary = {binary!r}\n" if binary else "[engine]\nworkers = 1\n")
    proc = start_engine("run", str(batch), "--workers", "1", "--sessions", "4", "--state-dir", str(state),
                        "--config", str(config))
    try:
        def four_open() -> bool:
            if not (state / "results.sqlite").exists() or last_run(state) is None:
                return False
            return db(state).execute("SELECT COUNT(*) FROM attempts WHERE ended_at IS NULL").fetchone()[0] >= 4

        wait_for(lambda: four_open() and len(browser_pids(proc.pid)) == 1, 90, "four attempts in flight")
        time.sleep(1.0)  # the slow pages are loading in all four sessions
        victim = browser_pids(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_OK, out + err
    run_id, run_dir = last_run(state)
    assert_safe(run_dir, out)
    assert outcomes(state, run_id) == {f"job-{i:03d}": "passed" for i in range(n)}
    rows = attempt_rows(state, run_id)
    failed = [r for r in rows if r[3] == "retry"]
    assert len(failed) >= 4 and {r[4] for r in failed} == {"cdp"}, rows  # every session's job in flight
    assert len({r[2] for r in failed}) >= 4, failed  # ... in four different sessions
    ops = stream_events(run_dir, "operational")
    restarts = [r for r in ops if r.get("event") == "restart" and r.get("shared")]
    assert len(restarts) == 1, restarts  # exactly one restart for all the sessions
    assert victim not in [r.get("pid") for r in restarts]
    assert any(r.get("event") == "reconnect" and r.get("outcome") == "ok" for r in ops)
    if binary:  # the batch really ran on the shell
        assert all(r.get("binary", "").endswith(binary) for r in ops if r.get("event") in ("launch", "restart")), ops


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_credential_jobs_in_sessions_keep_a_profile_per_session_and_one_holder_per_credential(tmp_path, site):
    n = 8
    batch = write_batch(tmp_path, site, n, SLOW_FLOW, extra_vars={"ms": "300"}, credentials=["shop/a", "shop/b"])
    state = tmp_path / "state"
    res = engine("run", str(batch), "--workers", "1", "--sessions", "3", "--state-dir", str(state), timeout=240)
    assert res.returncode == EXIT_OK, res.stdout + res.stderr
    run_id, run_dir = last_run(state)
    assert_safe(run_dir, res.stdout)
    assert outcomes(state, run_id) == {f"job-{i:03d}": "passed" for i in range(n)}
    # one holder per credential at any instant, from the lock records (acquired .. released, in log order)
    holders: dict[str, int] = {}
    for r in stream_events(run_dir, "audit"):
        if r.get("event") == "lock_acquired":
            holders[r["scope"]] = holders.get(r["scope"], 0) + 1
            assert holders[r["scope"]] == 1, r
        elif r.get("event") == "lock_released":
            holders[r["scope"]] -= 1
    # each credential's persistent profile belongs to one session (a browser of that session's own)
    for scope in ("shop__a", "shop__b"):
        owners = {p.name for p in (state / "profiles" / scope).iterdir()}
        assert owners and all(o.startswith("w0s") for o in owners), owners


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_lets_every_session_finish_its_job(tmp_path, site):
    n = 12
    batch = write_batch(tmp_path, site, n, SLOW_FLOW, extra_vars={"ms": "2500"})
    state = tmp_path / "state"
    proc = start_engine("run", str(batch), "--workers", "1", "--sessions", "4", "--state-dir", str(state))
    try:
        def in_flight() -> set[str]:
            if not (state / "results.sqlite").exists() or last_run(state) is None:
                return set()
            return {r[0] for r in db(state).execute("SELECT job_id FROM attempts WHERE ended_at IS NULL")}

        wait_for(lambda: len(in_flight()) == 4, 90, "four attempts in flight")
        running = in_flight()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    run_id, run_dir = last_run(state)
    assert "interrupted" in out, out + err
    assert_safe(run_dir, out)
    done = outcomes(state, run_id)
    assert running <= set(done) and all(done[j] == "passed" for j in running), (running, done)
    assert len(done) < n  # no new jobs after the signal
    assert db(state).execute("SELECT COUNT(*) FROM attempts WHERE run_id = ? AND ended_at IS NULL",
                             (run_id,)).fetchone()[0] == 0


@pytest.mark.timeout(300)
def test_sessions_on_a_remote_browser_each_open_their_own_websocket_and_never_launch(tmp_path, site):
    with ExternalChromium() as ext:
        pid = ext.proc.pid
        batch = write_batch(tmp_path, site, 6, LIGHT_FLOW)
        state = tmp_path / "state"
        res = engine("run", str(batch), "--workers", "1", "--sessions", "3", "--state-dir", str(state),
                     "--cdp-endpoint", ext.http_url, timeout=240)
        assert res.returncode == EXIT_OK, res.stdout + res.stderr
        run_id, run_dir = last_run(state)
        assert_safe(run_dir, res.stdout)
        assert outcomes(state, run_id) == {f"job-{i:03d}": "passed" for i in range(6)}
        assert ext.alive() and ext.proc.pid == pid and ext.killed_by_test == []
        ops = stream_events(run_dir, "operational")
        assert len([r for r in ops if r.get("event") == "remote_connect"]) >= 3  # one websocket per session
        assert not [r for r in ops if r.get("event") in ("launch", "restart", "recycle")]


@pytest.mark.timeout(300)
def test_recycling_waits_for_idle_sessions_so_no_job_loses_its_browser(tmp_path, site):
    n = 12
    batch = write_batch(tmp_path, site, n, LIGHT_FLOW, retries=0)  # a browser pulled from under a job fails it
    config = tmp_path / "drover.toml"
    config.write_text("[engine]\nrecycle_after_jobs = 4\n")
    state = tmp_path / "state"
    res = engine("run", str(batch), "--workers", "1", "--sessions", "4", "--config", str(config),
                 "--state-dir", str(state), timeout=240)
    assert res.returncode == EXIT_OK, res.stdout + res.stderr
    run_id, run_dir = last_run(state)
    assert_safe(run_dir, res.stdout)
    assert outcomes(state, run_id) == {f"job-{i:03d}": "passed" for i in range(n)}
    ops = stream_events(run_dir, "operational")
    recycles = [r for r in ops if r.get("event") == "recycle"]
    assert 1 <= len(recycles) <= n // 4, recycles
    assert not [r for r in ops if r.get("event") == "reconnect"]  # no session lost its connection in a job
