"""SIGTERM drains a run: no new jobs, in-flight jobs finish or are recorded as interrupted, nothing is lost,
and ``--resume`` finishes the rest."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK
from tests._wait import wait_for

REPO = Path(__file__).resolve().parents[3]
EXIT_BOUND_S = 30.0  # on top of the drain grace: stopping workers, closing browsers, writing the summary

pytestmark = pytest.mark.slow


def slow_batch(tmp_path: Path, site, n: int, ms: int) -> Path:
    flow = {"title": "slow", "steps": [
        {"type": "navigate", "url": "${BASE_URL}/slow?ms=${ms}", "timeout": 30000},
        {"type": "waitForExpression", "expression": "document.title === 'Drover slow'"}]}
    (tmp_path / "slow.json").write_text(json.dumps(flow))
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps({"id": f"job-{i:02d}", "flow": "slow.json",
                                         "vars": {"BASE_URL": site.base_url, "ms": str(ms)}}) + "\n"
                             for i in range(n)))
    return batch


def query(state: Path, sql: str, *params) -> list[tuple]:
    if not (state / "results.sqlite").exists():
        return []
    db = sqlite3.connect(state / "results.sqlite", timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        db.close()


def open_jobs(state: Path) -> set[str]:
    return {r[0] for r in query(state, "SELECT job_id FROM attempts WHERE ended_at IS NULL")}


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", "run", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def drain_started(state: Path) -> bool:
    return any('"event":"drain"' in path.read_text() for path in (state / "runs").glob("*/operational.jsonl"))


def stop_with(proc: subprocess.Popen, sig: signal.Signals, timeout: float, *, state: Path | None = None,
              then: signal.Signals | None = None) -> tuple[str, str, float]:
    """Signal the run; with ``then``, send a second signal once the drain has begun."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    if then is not None:
        assert state is not None
        wait_for(lambda: drain_started(state), 60, "the drain to begin")
        proc.send_signal(then)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the run did not exit within {timeout:.0f}s of the signal:\n{out}\n{err}") from None
    return out, err, time.monotonic() - t0


def assert_nothing_lost(state: Path, run_id: str, n: int) -> tuple[dict[str, str], list[str]]:
    """Every job has exactly one final outcome or none (pending); no attempt is left open."""
    finals = query(state, "SELECT job_id, outcome FROM outcomes WHERE run_id = ?", run_id)
    assert len(finals) == len({j for j, _ in finals}), "duplicate final outcomes"
    jobs = [r[0] for r in query(state, "SELECT job_id FROM jobs WHERE run_id = ? ORDER BY line", run_id)]
    assert len(jobs) == n
    done = dict(finals)
    pending = [j for j in jobs if j not in done]
    assert len(done) + len(pending) == n
    assert query(state, "SELECT COUNT(*) FROM attempts WHERE run_id = ? AND ended_at IS NULL", run_id) == [(0,)]
    return done, pending


def resume_and_check(state: Path, run_id: str, n: int, done_before: dict[str, str], *extra: str) -> None:
    finished_at = dict(query(state, "SELECT job_id, recorded_at FROM outcomes WHERE run_id = ?", run_id))
    res = subprocess.run([sys.executable, "-m", "engine", "run", "--resume", run_id, "--state-dir", str(state),
                          *extra], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == EXIT_OK, res.stdout + res.stderr
    done, pending = assert_nothing_lost(state, run_id, n)
    assert pending == [] and set(done.values()) == {"passed"}
    for job_id in done_before:  # none that had finished was run again
        assert query(state, "SELECT COUNT(*) FROM attempts WHERE run_id = ? AND job_id = ? AND started_at > ?",
                     run_id, job_id, finished_at[job_id]) == [(0,)], f"{job_id} was re-run"
    assert query(state, "SELECT status FROM runs WHERE run_id = ?", run_id) == [("completed",)]


def test_sigterm_lets_in_flight_jobs_finish_and_resume_does_the_rest(tmp_path, site):
    n = 10
    state = tmp_path / "state"
    proc = start(str(slow_batch(tmp_path, site, n, 1500)), "--workers", "2", "--state-dir", str(state))
    try:
        wait_for(lambda: query(state, "SELECT COUNT(*) FROM outcomes") >= [(1,)] and len(open_jobs(state)) == 2,
                 180, "a finished job and both workers busy")
        in_flight = open_jobs(state)
        out, err, took = stop_with(proc, signal.SIGTERM, 30.0 + EXIT_BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_INTERRUPTED, out + err
    [(run_id, status)] = query(state, "SELECT run_id, status FROM runs")
    assert status == "interrupted"
    assert f"resume with: python -m engine run --resume {run_id}" in out
    done, pending = assert_nothing_lost(state, run_id, n)
    assert pending, "the drain stopped nothing: the batch was too short to test it"
    # jobs in flight at the signal had the (default 30 s) grace to finish, and did
    assert in_flight <= set(done), (in_flight, done)
    assert query(state, "SELECT COUNT(*) FROM attempts WHERE run_id = ? AND outcome = 'interrupted'", run_id) == [(0,)]
    # no job was started after the drain began, apart from the ones in flight
    assert {r[0] for r in query(state, "SELECT DISTINCT job_id FROM attempts WHERE run_id = ?", run_id)} == set(done)
    resume_and_check(state, run_id, n, done, "--workers", "2")


def test_when_the_drain_grace_expires_in_flight_attempts_are_recorded_as_interrupted(tmp_path, site):
    n = 2
    grace = 1.0
    config = tmp_path / "drover.toml"
    config.write_text(f"[engine]\ndrain_grace = {grace}\n")
    state = tmp_path / "state"
    batch = slow_batch(tmp_path, site, n, 15000)  # far longer than the grace
    proc = start(str(batch), "--workers", "2", "--config", str(config), "--state-dir", str(state))
    try:
        wait_for(lambda: len(open_jobs(state)) == 2, 180, "both jobs in flight")
        out, err, took = stop_with(proc, signal.SIGTERM, grace + EXIT_BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_INTERRUPTED, out + err
    assert took < grace + EXIT_BOUND_S
    [(run_id,)] = query(state, "SELECT run_id FROM runs")
    done, pending = assert_nothing_lost(state, run_id, n)
    assert done == {} and pending == ["job-00", "job-01"]
    rows = query(state, "SELECT job_id, outcome, error FROM attempts WHERE run_id = ? ORDER BY job_id", run_id)
    assert [(j, o) for j, o, _ in rows] == [("job-00", "interrupted"), ("job-01", "interrupted")], rows
    assert all("drain grace expired" in e for _, _, e in rows), rows
    ops = [json.loads(line) for line in (state / "runs" / run_id / "operational.jsonl").read_text().splitlines()]
    drain = [r for r in ops if r.get("event") == "drain"]
    assert drain and drain[0]["grace_s"] == grace  # the grace came from the TOML file
    # a shorter page for the resume: the batch is re-read from its file, job ids unchanged
    batch.write_text(batch.read_text().replace('"ms": "15000"', '"ms": "300"'))
    resume_and_check(state, run_id, n, done, "--config", str(config))
    assert query(state, "SELECT job_id, attempt, outcome FROM attempts WHERE run_id = ? AND attempt = 2 "
                        "ORDER BY job_id", run_id) == [("job-00", 2, "passed"), ("job-01", 2, "passed")]


def test_a_second_signal_stops_at_once_without_waiting_for_the_grace(tmp_path, site):
    n = 2
    state = tmp_path / "state"
    proc = start(str(slow_batch(tmp_path, site, n, 15000)), "--workers", "2", "--state-dir", str(state))
    try:
        wait_for(lambda: len(open_jobs(state)) == 2, 180, "both jobs in flight")
        out, err, took = stop_with(proc, signal.SIGTERM, EXIT_BOUND_S, state=state, then=signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_INTERRUPTED, out + err
    assert took < 30.0, "waited for the default 30 s grace despite the second signal"
    [(run_id,)] = query(state, "SELECT run_id FROM runs")
    done, pending = assert_nothing_lost(state, run_id, n)
    assert done == {} and len(pending) == n
    assert query(state, "SELECT COUNT(*) FROM attempts WHERE run_id = ? AND outcome = 'interrupted'", run_id) == [(n,)]
