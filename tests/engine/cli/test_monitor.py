"""``monitor``: a live view read from a run's state — store always, shared memory while the run is live."""
from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import filelock
import pytest

from engine.cli.main import COMMANDS
from engine.cli.commands import monitor
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INPUT, EXIT_OK
from engine.records.store import ResultsStore
from tests._wait import wait_for

REPO = Path(__file__).resolve().parents[3]
RUN = "r-mon"

# Until "monitor" is registered in engine.cli.main.COMMANDS, run the module the same way the CLI would.
_BOOTSTRAP = ("import argparse, sys\n"
              "from engine.cli.commands import monitor\n"
              "from engine.cli.console import Console\n"
              "p = argparse.ArgumentParser(prog='monitor')\n"
              "monitor.add_arguments(p)\n"
              "sys.exit(monitor.run(p.parse_args(sys.argv[1:]), Console()))\n")


def monitor_argv(*args: str) -> list[str]:
    if "monitor" in COMMANDS:
        return [sys.executable, "-m", "engine", "monitor", *args]
    return [sys.executable, "-c", _BOOTSTRAP, *args]


class TtyIO(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_monitor(*argv: str, tty: bool = False) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="monitor", exit_on_error=False)
    monitor.add_arguments(parser)
    out, err = io.StringIO(), (TtyIO() if tty else io.StringIO())
    code = monitor.run(parser.parse_args(list(argv)), Console(out, err))
    return code, out.getvalue(), err.getvalue()


def make_state(tmp_path: Path, *, status: str = "completed", mode: str = "parallel", workers: int = 2,
               jobs: int = 4) -> Path:
    """A results store with one run: j0 passed by w0, j1 failed by w1 after a retry, j2 in flight on w0."""
    state = tmp_path / "state"
    run_dir = state / "runs" / RUN
    run_dir.mkdir(parents=True)
    with ResultsStore(state / "results.sqlite") as store:
        store.create_run(RUN, batch="/b.jsonl", mode=mode, workers=workers, run_dir=str(run_dir),
                         jobs=[(f"j{i}", i + 1, "f.json", {}) for i in range(jobs)])
        name0, name1 = ("legacy", "legacy") if mode == "legacy" else ("w0", "w1")
        store.start_attempt(RUN, "j0", 1, name0)
        store.end_attempt(RUN, "j0", 1, outcome="passed")
        store.record_outcome(RUN, "j0", outcome="passed", attempts=1, worker=name0)
        store.start_attempt(RUN, "j1", 1, name1)
        store.end_attempt(RUN, "j1", 1, outcome="retry")
        store.start_attempt(RUN, "j1", 2, name1)
        store.end_attempt(RUN, "j1", 2, outcome="failed")
        store.record_outcome(RUN, "j1", outcome="failed", attempts=2, worker=name1)
        store.start_attempt(RUN, "j2", 1, name0)
        if status != "running":
            store.close_open_attempts(RUN, None, outcome="interrupted", error="drain")
            store.finish_run(RUN, status)
    return state


def test_once_on_a_finished_run_shows_store_figures_and_says_why_there_are_no_live_ones(tmp_path):
    state = make_state(tmp_path, status="interrupted")
    code, out, err = run_monitor("--once", "--state-dir", str(state))
    assert code == EXIT_OK, err
    assert f"run {RUN}: interrupted (parallel, 2 worker(s))" in out
    assert "jobs: 4 total, 1 passed, 1 failed, 2 pending (0 running)" in out
    assert "attempts: 4, retries 1, interrupted 1, lost 0" in out
    lines = out.splitlines()
    assert any(ln.split()[:2] == ["w0", "idle"] and ln.endswith("done 1") for ln in lines), out
    assert any(ln.split()[:2] == ["w1", "idle"] and ln.endswith("done 1") for ln in lines), out
    assert "shared-memory figures are gone" in out and "contention:" not in out
    assert err == ""


def test_once_shows_open_attempts_as_current_jobs_with_how_long_they_have_run(tmp_path):
    state = make_state(tmp_path, status="running")
    code, out, _ = run_monitor("last", "--once", "--state-dir", str(state))
    assert code == EXIT_OK
    [w0] = [ln for ln in out.splitlines() if ln.strip().startswith("w0 ")]
    assert "j2 (attempt 1) for " in w0 and "done 1" in w0
    assert "(1 running)" in out
    assert "supervisor not running" in out and "run not live: store figures only" in out


def test_rates_count_outcomes_in_the_window_and_since_the_start(tmp_path):
    state = make_state(tmp_path, status="running")
    db = sqlite3.connect(state / "results.sqlite")
    now = time.time()
    db.execute("UPDATE runs SET started_at = ?", (now - 100,))
    db.execute("UPDATE outcomes SET recorded_at = ? WHERE job_id = 'j0'", (now - 50,))
    db.commit()
    db.close()
    code, out, _ = run_monitor("--once", "--interval", "10", "--state-dir", str(state))
    # j1 was recorded just now, j0 50 s ago: 1 in the last 10 s; 2 in ~100 s overall
    assert "rate: 0.10 jobs/s over the last 10s, 0.02 jobs/s overall" in out, out


def test_legacy_runs_have_one_worker_and_no_shared_memory(tmp_path):
    state = make_state(tmp_path, status="running", mode="legacy", workers=1)
    code, out, _ = run_monitor("--once", "--state-dir", str(state))
    assert code == EXIT_OK
    assert "legacy mode: no shared-memory coordination" in out
    names = [ln.split()[0] for ln in out.split("workers:")[1].splitlines()[1:] if ln.startswith("    ")]
    assert names == ["legacy"]


def test_unknown_run_and_missing_store_are_input_errors_and_create_nothing(tmp_path):
    state = make_state(tmp_path)
    code, _, err = run_monitor("r-nope", "--once", "--state-dir", str(state))
    assert code == EXIT_INPUT and "no run 'r-nope'" in err
    empty = tmp_path / "empty-state"
    code, _, err = run_monitor("--once", "--state-dir", str(empty))
    assert code == EXIT_INPUT and "no results store at" in err
    assert not empty.exists()  # a monitor only reads


def test_no_runs_yet_is_an_input_error(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    ResultsStore(state / "results.sqlite").close()
    code, _, err = run_monitor("--once", "--state-dir", str(state))
    assert code == EXIT_INPUT and "no runs in" in err


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "5000"])
def test_interval_must_be_a_sensible_number_of_seconds(tmp_path, bad):
    parser = argparse.ArgumentParser(prog="monitor")
    monitor.add_arguments(parser)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--interval", bad])
    assert info.value.code == 2


def test_watching_a_finished_run_prints_it_once_and_exits(tmp_path):
    state = make_state(tmp_path, status="completed")
    t0 = time.monotonic()
    code, out, err = run_monitor("--interval", "0.2", "--state-dir", str(state))
    assert code == EXIT_OK and time.monotonic() - t0 < 10
    assert out.count(f"run {RUN}: completed") == 1 and err == ""


def test_watching_a_running_run_whose_supervisor_is_gone_stops_and_says_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(monitor, "GONE_AFTER_S", 0.5)
    state = make_state(tmp_path, status="running")
    t0 = time.monotonic()
    code, out, err = run_monitor("--interval", "0.1", "--state-dir", str(state))
    assert code == EXIT_OK and time.monotonic() - t0 < 20
    assert f"python -m engine run --resume {RUN}" in err
    assert f"{RUN} running: 2/4 done" in out  # the one-line-per-interval form off a terminal


def test_on_a_terminal_the_view_is_redrawn_in_place(tmp_path):
    state = make_state(tmp_path, status="completed")
    code, out, err = run_monitor("--state-dir", str(state), tty=True)
    assert code == EXIT_OK and out == ""
    assert err.startswith("\r\x1b[2K\x1b[H\x1b[J") and f"run {RUN}: completed" in err and err.endswith("\n")


def test_supervisor_state_follows_the_run_lock_without_taking_it(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert monitor.supervisor_state(run_dir) == "not running"  # no lock file yet
    lock = filelock.FileLock(str(run_dir / "supervisor.lock"))
    lock.acquire(timeout=0)
    try:
        assert monitor.supervisor_state(run_dir) == "running"
        assert monitor.supervisor_state(run_dir, locks_file=str(tmp_path / "no-such")) == "unknown"
    finally:
        lock.release()
    assert monitor.supervisor_state(run_dir) == "not running"
    lock.acquire(timeout=0)  # the monitor never held it, so the supervisor can always take it at once
    lock.release()


def test_live_figures_come_from_the_run_dirs_shared_memory_and_count_each_event_once(tmp_path):
    from coordination import ContentionTelemetry, OwnershipTable, UnownedUse

    state = make_state(tmp_path, status="running")
    run_dir = state / "runs" / RUN
    table = OwnershipTable.create(run_dir, slots=2)
    telemetry = ContentionTelemetry.create(run_dir, workers=2)
    dropped: list[bool] = []

    def drop_segments() -> None:
        if not dropped:
            dropped.append(True)
            for segment in (table, telemetry):
                segment.close()
                segment.unlink()

    lock = filelock.FileLock(str(run_dir / "supervisor.lock"))
    lock.acquire(timeout=0)  # this test plays the supervisor
    try:
        counters = telemetry.writer(0)
        table.bind_counters(counters)
        slot = table.claim(0, slot=0, session_id="w0")
        table.activate(slot.index, 0, slot.epoch)
        counters.record_lock_wait(0.004)
        counters.record_lock_wait(0.020)
        counters.add_forced_reconnect()
        with pytest.raises(UnownedUse):
            table.check_owner(0, 0, slot.epoch - 1)  # a stale epoch: counted in the table and in w0's row
        code, out, err = run_monitor("--once", "--state-dir", str(state))
        assert code == EXIT_OK, err
        assert "supervisor running" in out
        [w0] = [ln for ln in out.splitlines() if ln.strip().startswith("w0 ")]
        assert f"slot active epoch {slot.epoch}" in w0 and "reconnects 1" in w0
        assert "contention: lock wait n=2 " in out and "max=20.0ms" in out and "forced reconnects 1" in out
        assert "safety: unowned session uses 1, invalid transitions 0" in out  # once, not table + row
        drop_segments()
        code, out, _ = run_monitor("--once", "--state-dir", str(state))  # live, but the segments are gone
        assert code == EXIT_OK
        assert "no contention segment" in out and "contention:" not in out
        assert "jobs: 4 total, 1 passed, 1 failed, 2 pending (1 running)" in out
    finally:
        drop_segments()
        lock.release()


# -- on a real running batch ------------------------------------------------------------------------

SLOW_FLOW = {"title": "slow", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/slow?ms=${ms}", "timeout": 20000},
    {"type": "waitForExpression", "expression": "document.title === 'Drover slow'"},
]}


def _query(state: Path, sql: str, *params) -> list[tuple]:
    if not (state / "results.sqlite").exists():
        return []
    db = sqlite3.connect(state / "results.sqlite", timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the tables are not there yet
        return []
    finally:
        db.close()


@pytest.mark.slow
def test_monitor_on_a_real_running_batch(tmp_path, site):
    n = 8
    (tmp_path / "slow.json").write_text(json.dumps(SLOW_FLOW))
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps({"id": f"job-{i}", "flow": "slow.json",
                                         "credential": "site/alice" if i % 2 else "site/bob",
                                         "vars": {"BASE_URL": site.base_url, "ms": "2000"}}) + "\n"
                             for i in range(n)))
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", str(batch), "--workers", "2",
                             "--state-dir", str(state)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    watcher = None
    try:
        wait_for(lambda: _query(state, "SELECT COUNT(*) FROM attempts WHERE ended_at IS NULL") == [(2,)],
                 180, "both workers to be running a job")
        watcher = subprocess.Popen(monitor_argv("--interval", "0.5", "--state-dir", str(state)), cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        code, out, err = run_monitor("--once", "--state-dir", str(state))  # in-process: no start-up delay
        assert code == EXIT_OK, err
        assert ": running (parallel, 2 worker(s))" in out and "supervisor running" in out, out
        assert f"jobs: {n} total" in out
        workers = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("    w")}
        assert set(workers) == {"w0", "w1"}, out
        busy = [ln for ln in workers.values() if "(attempt 1) for " in ln]
        assert busy, out  # at least one of them was still mid-job when the monitor looked
        assert any("slot active" in ln or "slot claimed" in ln for ln in busy), out
        assert "contention: lock wait n=" in out and "forced reconnects 0" in out
        assert "safety: unowned session uses 0, invalid transitions 0" in out
        run_out, run_err = proc.communicate(timeout=300)
        w_out, w_err = watcher.communicate(timeout=60)  # it must notice the end of the run by itself
    finally:
        for p in (proc, watcher):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
    assert proc.returncode == EXIT_OK, run_out + run_err
    assert watcher.returncode == EXIT_OK, w_err
    assert ": completed (parallel, 2 worker(s))" in w_out and f"{n}/{n} done" not in w_err
    assert "running: " in w_out  # at least one one-line progress update while it ran
    after = subprocess.run(monitor_argv("--once", "--state-dir", str(state)), cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert after.returncode == EXIT_OK
    assert f"jobs: {n} total, {n} passed, 0 failed, 0 pending (0 running)" in after.stdout
    assert {ln.split()[0] for ln in after.stdout.splitlines() if ln.startswith("    w")} == {"w0", "w1"}
    assert "run completed: shared-memory figures are gone" in after.stdout
    done = dict(_query(state, "SELECT worker, COUNT(*) FROM outcomes GROUP BY worker"))
    for name, count in done.items():
        assert f"done {count}" in next(ln for ln in after.stdout.splitlines() if ln.startswith(f"    {name} "))
    assert os.path.isdir(state / "runs")
