"""``python -m engine run`` end to end: real supervisor, forked workers, Chromium, SQLite, streams."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from engine.cli.exit_codes import EXIT_INPUT, EXIT_JOB_FAILURES, EXIT_OK
from engine.records.streams import trace
from tests._wait import wait_for

REPO = Path(__file__).resolve().parents[3]

LIGHT_FLOW = {"title": "light", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/form.html", "phase": "Open"},
    {"type": "change", "selectors": [["#name"]], "value": "${name}", "phase": "Fill"},
    {"type": "waitForExpression", "expression": "document.querySelector('#name').value.length > 0"},
]}
SLOW_FLOW = {"title": "slow", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/slow?ms=${ms}", "timeout": 20000},
    {"type": "waitForExpression", "expression": "document.title === 'Drover slow'"},
]}


def write_batch(tmp_path: Path, site, n: int, flow: dict, *, retries: int = 1, extra_vars=None,
                name: str = "batch.jsonl", credentials: list[str] | None = None, fallback: str | None = None) -> Path:
    flow_path = tmp_path / f"{flow['title']}.json"
    flow_path.write_text(json.dumps(flow))
    batch = tmp_path / name
    with batch.open("w") as fh:
        for i in range(n):
            job = {"id": f"job-{i:03d}", "flow": flow_path.name, "retries": retries,
                   "vars": {"BASE_URL": site.base_url, "name": f"N{i}", **(extra_vars or {})}}
            if credentials:
                job["credential"] = credentials[i % len(credentials)]
            if fallback:
                job["fallback"] = fallback
            fh.write(json.dumps(job) + "\n")
    return batch


def engine(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **kw)


def start_engine(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def db(state: Path) -> sqlite3.Connection:
    return sqlite3.connect(state / "results.sqlite")


def last_run(state: Path) -> tuple[str, str] | None:
    try:
        return db(state).execute("SELECT run_id, run_dir FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        return None  # the store is being created: no schema yet


def outcomes(state: Path, run_id: str) -> dict[str, str]:
    return dict(db(state).execute("SELECT job_id, outcome FROM outcomes WHERE run_id = ?", (run_id,)).fetchall())


def stream_events(run_dir: str, stream: str) -> list[dict]:
    path = Path(run_dir) / f"{stream}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_safe(run_dir: str, stdout: str) -> None:
    assert "unowned session uses=0 invalid transitions=0" in stdout, stdout


@pytest.mark.slow
@pytest.mark.timeout(600)  # 2 x 24 browser jobs
def test_24_jobs_on_4_workers_match_the_legacy_path(tmp_path, site):
    """The parallel path and the sequential rollback path give the same outcome, job for job.

    24 jobs (6 per worker) rather than the 200 this once ran: the legacy half is sequential and was among
    the suite's slowest tests; every worker still takes several jobs, and the soak and bench tests run longer
    batches.
    """
    n = 24
    batch = write_batch(tmp_path, site, n, LIGHT_FLOW)
    state = tmp_path / "state"
    par = engine("run", str(batch), "--workers", "4", "--state-dir", str(state))
    assert par.returncode == EXIT_OK, par.stdout + par.stderr
    par_run, par_dir = last_run(state)
    par_out = outcomes(state, par_run)
    assert len(par_out) == n and set(par_out.values()) == {"passed"}
    assert_safe(par_dir, par.stdout)
    # exactly one final outcome per job, enforced by the schema
    assert db(state).execute("SELECT COUNT(*) FROM outcomes WHERE run_id = ?", (par_run,)).fetchone()[0] == n
    # the jobs were shared out (all four workers, unless one's browser started very late on a loaded machine)
    workers = {r[0] for r in db(state).execute("SELECT DISTINCT worker FROM attempts WHERE run_id = ?", (par_run,))}
    assert len(workers) >= 2, workers

    leg = engine("run", str(batch), "--mode", "legacy", "--state-dir", str(state))
    assert leg.returncode == EXIT_OK, leg.stdout + leg.stderr
    leg_run, _ = last_run(state)
    assert leg_run != par_run
    assert outcomes(state, leg_run) == par_out  # job for job

    # trace on one job shows its records from all four streams, in time order
    records = trace(par_dir, "job-007")
    assert {r["stream"] for r in records} == {"operational", "performance", "domain", "audit"}
    stamps = [r["ts"] for r in records]
    assert stamps == sorted(stamps)
    shown = engine("trace", "job-007", "--state-dir", str(state), "--run", par_run)
    assert shown.returncode == 0 and "audit" in shown.stdout and "performance" in shown.stdout


@pytest.mark.slow
def test_sigkill_of_a_worker_requeues_its_job_and_reclaims_its_slot(tmp_path, site):
    """The victim is a worker whose attempt began under half a second ago, on a page that takes 1.5 s: it is
    surely still in that attempt when the signal lands. (Killing any in-flight attempt's worker, as this once
    did with 0.4-s pages, sometimes hit one whose job had just committed: no attempt was lost then.)"""
    n = 12
    batch = write_batch(tmp_path, site, n, SLOW_FLOW, extra_vars={"ms": "1500"}, credentials=["shop/a", "shop/b"])
    state = tmp_path / "state"
    proc = start_engine("run", str(batch), "--workers", "3", "--state-dir", str(state))
    try:
        wait_for(lambda: (state / "results.sqlite").exists() and last_run(state) is not None, 60, "the run")
        run_id, run_dir = last_run(state)
        wait_for(lambda: len(outcomes(state, run_id)) >= 3, 120, "first outcomes")

        def fresh_attempt() -> list:
            return db(state).execute("SELECT worker, job_id FROM attempts WHERE run_id = ? AND ended_at IS NULL "
                                     "AND started_at > ?", (run_id, time.time() - 0.5)).fetchall()
        busy = wait_for(fresh_attempt, 60, "an attempt just begun")
        started = {r["worker"]: r["pid"] for r in stream_events(run_dir, "operational")
                   if r.get("event") == "worker_started"}
        victim = psutil.Process(started[busy[0][0]])
        assert victim.ppid() == proc.pid
        victim.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_OK, out + err
    final = outcomes(state, run_id)
    assert len(final) == n and set(final.values()) == {"passed"}
    lost = db(state).execute("SELECT job_id FROM attempts WHERE run_id = ? AND outcome = 'lost'", (run_id,)).fetchall()
    assert lost, "the killed worker's attempt was not recorded as lost"
    rerun = lost[0][0]
    assert rerun == busy[0][1]
    assert db(state).execute("SELECT COUNT(*) FROM attempts WHERE run_id = ? AND job_id = ? AND outcome = 'passed'",
                             (run_id, rerun)).fetchone()[0] == 1
    lost_attempt = db(state).execute("SELECT attempt FROM attempts WHERE run_id = ? AND job_id = ? AND "
                                     "outcome = 'lost'", (run_id, rerun)).fetchone()[0]
    died = [r for r in stream_events(run_dir, "operational") if r.get("event") == "worker_died"]
    assert [r["correlation_id"] for r in died] == [f"{run_id}/{rerun}/a{lost_attempt}"]  # trace finds it there
    audit = stream_events(run_dir, "audit")
    assert any(r.get("event") == "slot_reclaimed" for r in audit), "no audit record of the slot reclaim"
    # the killed worker held its job's credential lock: the next holder of that scope recovered it
    victim_scope = "shop/a" if int(rerun.split("-")[1]) % 2 == 0 else "shop/b"
    assert any(r.get("message") == "credential lock recovered from dead holder" and r.get("scope") == victim_scope
               for r in audit), "no audit record of the credential lock recovery"
    assert_safe(run_dir, out)


def browser_pids(engine_pid: int) -> list[int]:
    """The Chromium browser processes (not renderers, not reapers, not a wrapper script running one) Drover
    launched under ``engine_pid``."""
    found = []
    for p in psutil.Process(engine_pid).children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.NoSuchProcess:
            continue
        if cmd and "--remote-debugging-port=0" in cmd and not any("_reaper.py" in c for c in cmd) \
                and not any(c.startswith("--type=") for c in cmd) \
                and os.path.basename(cmd[0]) not in ("sh", "dash", "bash"):  # a wrapper script (headless shell)
            found.append(p.pid)
    return found


@pytest.mark.slow
def test_sigkill_of_chromium_mid_flow_retries_on_a_fresh_browser(tmp_path, site):
    batch = write_batch(tmp_path, site, 1, SLOW_FLOW, retries=2, extra_vars={"ms": "4000"})
    state = tmp_path / "state"
    proc = start_engine("run", str(batch), "--workers", "1", "--state-dir", str(state))
    try:
        def browser_pid():
            return next(iter(browser_pids(proc.pid)), None)

        wait_for(lambda: (state / "results.sqlite").exists() and last_run(state) is not None
                 and db(state).execute("SELECT COUNT(*) FROM attempts WHERE ended_at IS NULL").fetchone()[0] == 1
                 and browser_pid() is not None, 60, "the first attempt to start")
        time.sleep(1.0)  # the slow page is loading
        os.kill(browser_pid(), signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_OK, out + err
    run_id, run_dir = last_run(state)
    rows = db(state).execute("SELECT attempt, outcome, category FROM attempts WHERE run_id = ? ORDER BY attempt",
                             (run_id,)).fetchall()
    assert rows[0][1:] == ("retry", "cdp"), rows
    assert rows[-1][1] == "passed"
    assert outcomes(state, run_id) == {"job-000": "passed"}
    assert_safe(run_dir, out)
    ops = stream_events(run_dir, "operational")
    assert any(r.get("event") == "reconnect" and r.get("outcome") == "ok" for r in ops)


@pytest.mark.slow
def test_sigkill_of_the_supervisor_then_resume_finishes_without_rerunning(tmp_path, site):
    n = 16
    batch = write_batch(tmp_path, site, n, SLOW_FLOW, extra_vars={"ms": "300"})
    state = tmp_path / "state"
    proc = start_engine("run", str(batch), "--workers", "2", "--state-dir", str(state))
    try:
        wait_for(lambda: (state / "results.sqlite").exists() and last_run(state) is not None, 60, "the run")
        run_id, _ = last_run(state)
        wait_for(lambda: len(outcomes(state, run_id)) >= 4, 120, "some outcomes")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done_before = dict(db(state).execute(
        "SELECT job_id, recorded_at FROM outcomes WHERE run_id = ?", (run_id,)).fetchall())
    assert 0 < len(done_before) < n
    resumed = engine("run", "--resume", run_id, "--workers", "2", "--state-dir", str(state))
    assert resumed.returncode == EXIT_OK, resumed.stdout + resumed.stderr
    final = outcomes(state, run_id)
    assert len(final) == n and set(final.values()) == {"passed"}
    # none that had finished was re-run: no attempt of theirs started after the kill
    for job_id, recorded in done_before.items():
        later = db(state).execute("SELECT COUNT(*) FROM attempts WHERE run_id = ? AND job_id = ? AND started_at > ?",
                                  (run_id, job_id, recorded)).fetchone()[0]
        assert later == 0, f"{job_id} was re-run after it had finished"
    assert db(state).execute("SELECT COUNT(*) FROM outcomes WHERE run_id = ?", (run_id,)).fetchone()[0] == n


def test_malformed_batch_line_is_reported_and_nothing_runs(tmp_path, site):
    batch = write_batch(tmp_path, site, 3, LIGHT_FLOW)
    lines = batch.read_text().splitlines()
    lines.insert(1, '{"id": "broken", "flow": ')
    batch.write_text("\n".join(lines) + "\n")
    state = tmp_path / "state"
    res = engine("run", str(batch), "--state-dir", str(state))
    assert res.returncode == EXIT_INPUT
    assert f"{batch}:2: not valid JSON" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (state / "results.sqlite").exists() or \
        db(state).execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0


def test_failed_job_gives_the_job_failure_exit_code(tmp_path, site):
    flow = {"title": "fails", "steps": [
        {"type": "navigate", "url": "${BASE_URL}/form.html"},
        {"type": "waitForElement", "selectors": [["#never"]], "timeout": 300}]}
    batch = write_batch(tmp_path, site, 2, flow, retries=0)
    state = tmp_path / "state"
    res = engine("run", str(batch), "--workers", "1", "--state-dir", str(state))
    assert res.returncode == EXIT_JOB_FAILURES, res.stdout + res.stderr
    run_id, _ = last_run(state)
    assert set(outcomes(state, run_id).values()) == {"failed"}
    rows = json.loads(engine("results", run_id, "--format", "json", "--state-dir", str(state)).stdout)
    assert [j["category"] for j in rows["jobs"]] == ["navigation", "navigation"]


def test_invalid_flow_falls_back_to_the_named_legacy_flow_and_says_so(tmp_path, site):
    broken = {"title": "broken", "steps": [{"type": "clpi", "value": "x"}]}
    batch = write_batch(tmp_path, site, 2, broken, retries=0, fallback="fixture_form")
    state = tmp_path / "state"
    res = engine("run", str(batch), "--workers", "1", "--state-dir", str(state))
    assert res.returncode == EXIT_OK, res.stdout + res.stderr
    run_id, run_dir = last_run(state)
    assert set(outcomes(state, run_id).values()) == {"passed"}
    fallbacks = [r for r in stream_events(run_dir, "domain") if r.get("event") == "fallback"]
    assert len(fallbacks) == 2 and fallbacks[0]["fallback"] == "fixture_form"
    assert 'unknown step type "clpi"' in fallbacks[0]["reason"]
    # without a named fallback the same batch is refused before anything runs
    strict = write_batch(tmp_path, site, 1, broken, name="strict.jsonl")
    refused = engine("run", str(strict), "--state-dir", str(state))
    assert refused.returncode == EXIT_INPUT and "names no fallback" in refused.stderr
