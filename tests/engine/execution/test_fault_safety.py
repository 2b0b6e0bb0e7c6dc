"""Safety under faults: a supervisor crash loses no committed outcome and re-runs no finished job.

Real supervisor, forked workers, Chromium and SQLite; the faults are real
signals.  The invariants: an attempt's end and its job's final outcome are
one transaction; every write carries its lease and the store refuses a
stale one; epochs only rise for a run, across resumes; no SQLite
connection crosses ``fork()``; workers die with their supervisor.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import psutil
import pytest

from engine.cli.exit_codes import EXIT_BUSY, EXIT_OK
from engine.errors import ResultsStoreError, StaleLease
from engine.records.store import Lease, ResultsStore
from tests.engine.execution._resume_checks import assert_resumed_exactly_once
from tests.engine.execution.test_run import (SLOW_FLOW, db, engine, last_run, outcomes, start_engine, wait_for,
                                             write_batch)

RUN = "r-fault"


def _store(tmp_path: Path, jobs: int = 3) -> ResultsStore:
    store = ResultsStore(tmp_path / "results.sqlite")
    store.create_run(RUN, batch="b.jsonl", mode="parallel", workers=2, run_dir=str(tmp_path),
                     jobs=[(f"j{i}", i + 1, "f.json", {}) for i in range(jobs)])
    return store


# -- the store's promises -------------------------------------------------------------------------------------


def test_a_passed_attempt_and_its_final_outcome_commit_together(tmp_path):
    """A failure at the outcome's insert (a worker dying there) leaves no passed attempt without an outcome."""
    store = _store(tmp_path)
    gen = store.begin_generation(RUN, ["slot:0"])
    lease = Lease("slot:0", gen.epoch_floor)
    store.start_attempt(RUN, "j0", 1, "w0", lease=lease)
    raw = sqlite3.connect(store.path)
    raw.execute("CREATE TRIGGER die BEFORE INSERT ON outcomes BEGIN SELECT RAISE(FAIL, 'killed here'); END")
    raw.commit()
    with pytest.raises(ResultsStoreError, match="killed here"):
        store.finish_attempt(RUN, "j0", 1, lease, outcome="passed", final=True, worker="w0")
    (attempt,) = store.attempts(RUN, "j0")
    assert attempt.outcome is None and attempt.ended_at is None  # rolled back with the outcome
    assert store.outcomes(RUN) == [] and store.pending_job_ids(RUN) == ["j0", "j1", "j2"]
    raw.execute("DROP TRIGGER die")
    raw.commit()
    store.finish_attempt(RUN, "j0", 1, lease, outcome="passed", final=True, worker="w0", job_duration_ms=5.0)
    assert [(o.job_id, o.outcome) for o in store.outcomes(RUN)] == [("j0", "passed")]
    assert store.attempts(RUN, "j0")[0].outcome == "passed"


def test_a_lease_from_before_a_resume_is_refused_and_counted(tmp_path):
    store = _store(tmp_path)
    first = store.begin_generation(RUN, ["slot:0", "slot:1"])
    old = Lease("slot:0", first.epoch_floor + 4)  # a few claims into the first lifetime
    store.start_attempt(RUN, "j0", 1, "w0", lease=old)
    second = store.begin_generation(RUN, ["slot:0", "slot:1"])  # the supervisor died; a resume started
    assert second.generation == 2 and second.epoch_floor > old.epoch
    with pytest.raises(StaleLease) as err:
        store.finish_attempt(RUN, "j0", 1, old, outcome="passed", final=True, worker="w0")
    assert err.value.epoch == old.epoch and err.value.fence == second.epoch_floor
    assert store.outcomes(RUN) == [] and store.refused_count(RUN) == 1
    assert store.refusals(RUN)[0]["write"] == "finish" and store.refusals(RUN)[0]["resource"] == "slot:0"
    # a stale start is refused too, and the new holder's writes go through
    with pytest.raises(StaleLease):
        store.start_attempt(RUN, "j1", 1, "w1", lease=Lease("slot:1", first.epoch_floor))
    new = Lease("slot:0", second.epoch_floor)
    store.start_attempt(RUN, "j0", 2, "w0", lease=new)
    store.finish_attempt(RUN, "j0", 2, new, outcome="passed", final=True, worker="w0")
    (outcome,) = store.outcomes(RUN)
    assert (outcome.job_id, outcome.attempts) == ("j0", 2)
    assert store.refused_count(RUN) == 2
    # epochs only rise: a third lifetime's floor is above everything used
    assert store.begin_generation(RUN).epoch_floor > new.epoch


def test_an_attempt_the_supervisor_closed_cannot_be_finished_by_its_worker(tmp_path):
    store = _store(tmp_path)
    gen = store.begin_generation(RUN, ["slot:0"])
    lease = Lease("slot:0", gen.epoch_floor)
    store.start_attempt(RUN, "j0", 1, "w0", lease=lease)
    store.close_open_attempts(RUN, "j0", outcome="lost", error="worker w0 died")
    with pytest.raises(StaleLease, match="already closed"):
        store.finish_attempt(RUN, "j0", 1, lease, outcome="passed", final=True, worker="w0")
    assert store.outcomes(RUN) == [] and store.refused_count(RUN) == 1


def test_no_connection_crosses_fork(tmp_path):
    store = _store(tmp_path)
    with ResultsStore.closed_for_fork(store.path):
        pid = os.fork()
        if pid == 0:  # the child: reports how many store descriptors it inherited
            left = [fd for fd in os.listdir("/proc/self/fd")
                    if os.path.realpath(f"/proc/self/fd/{fd}").startswith(store.path)]
            os._exit(len(left))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.counts(RUN)["jobs"] == 3  # reopened after the fork
    stray = sqlite3.connect(store.path)  # a connection the store does not know about
    stray.execute("SELECT 1 FROM runs").fetchall()
    with pytest.raises(ResultsStoreError, match="would cross fork"):
        with ResultsStore.closed_for_fork(store.path):
            raise AssertionError("must not get here")
    stray.close()


# -- the whole engine under a supervisor SIGKILL ---------------------------------------------------------------


def _store_fds(pid: int, path: Path) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith(str(path)):
            out.append(target)
    return out


def _poll_read_write(path: Path, stop: threading.Event, opened: list[int]) -> None:
    """What `results` and `monitor` do right after a crash: open the store read-write, read, close."""
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        with ResultsStore(path) as store:
            store.latest_run_id()
        opened.append(1)
        time.sleep(0.05)


@pytest.mark.slow
def test_supervisor_sigkill_with_a_reader_loses_no_outcome_and_reruns_nothing(tmp_path, site):
    n = 16
    batch = write_batch(tmp_path, site, n, SLOW_FLOW, extra_vars={"ms": "400"})
    state = tmp_path / "state"
    store_file = state / "results.sqlite"
    proc = start_engine("run", str(batch), "--workers", "2", "--state-dir", str(state))
    stop, opened = threading.Event(), []
    reader = threading.Thread(target=_poll_read_write, args=(store_file, stop, opened))
    try:
        wait_for(lambda: store_file.exists() and last_run(state) is not None, 60, "the run")
        run_id, run_dir = last_run(state)
        wait_for(lambda: len(outcomes(state, run_id)) >= 3, 120, "some outcomes")
        sup = psutil.Process(proc.pid)
        workers = [c for c in sup.children() if "resource_tracker" not in " ".join(c.cmdline())]  # forked
        tree = [p for w in workers for p in [w, *w.children(recursive=True)]]
        assert len(workers) == 2, [w.cmdline() for w in workers]
        for w in workers:  # each worker has its own connection only: nothing inherited from the supervisor
            fds = _store_fds(w.pid, store_file)
            assert len(fds) == len(set(fds)), f"worker {w.pid} holds a connection inherited across fork: {fds}"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        reader.start()
        gone_by = time.monotonic() + 3.0
        _, alive = psutil.wait_procs(tree, timeout=3.0)
        assert not alive, f"still alive 3 s after the supervisor died: {[p.pid for p in alive]}"
        assert time.monotonic() <= gone_by + 0.5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        stop.set()
        if reader.is_alive():
            reader.join(30)
    assert opened, "the read-write reader never opened the store"
    before = dict(db(state).execute("SELECT job_id, recorded_at FROM outcomes WHERE run_id = ?",
                                    (run_id,)).fetchall())
    assert 0 < len(before) < n
    # every job a worker logged as finished has its outcome in the store
    finished = {json.loads(line)["job_id"] for line in (Path(run_dir) / "domain.jsonl").read_text().splitlines()
                if '"job_finished"' in line}
    assert finished <= set(before), f"logged as finished, missing from the store: {finished - set(before)}"
    epoch_before = db(state).execute("SELECT MAX(epoch) FROM attempts WHERE run_id = ?", (run_id,)).fetchone()[0]
    killed_at = time.time()

    resumed = engine("run", "--resume", run_id, "--workers", "2", "--state-dir", str(state))
    assert resumed.returncode == EXIT_OK, resumed.stdout + resumed.stderr
    assert_resumed_exactly_once(db(state), outcomes(state, run_id), n, run_id, before, killed_at, epoch_before)


@pytest.mark.slow
def test_a_second_run_on_a_busy_state_directory_is_refused(tmp_path, site):
    batch = write_batch(tmp_path, site, 6, SLOW_FLOW, extra_vars={"ms": "300"}, retries=0)
    state = tmp_path / "state"
    first = start_engine("run", str(batch), "--workers", "1", "--state-dir", str(state))
    try:
        wait_for(lambda: (state / "results.sqlite").exists() and last_run(state) is not None, 60, "the first run")
        second = engine("run", str(batch), "--workers", "1", "--state-dir", str(state), timeout=120)
        assert second.returncode == EXIT_BUSY, second.stdout + second.stderr
        assert str(state) in second.stderr and "Traceback" not in second.stderr
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == EXIT_OK, out + err
    assert db(state).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1  # the refused run left no record
    run_id, _ = last_run(state)
    assert set(outcomes(state, run_id).values()) == {"passed"} and len(outcomes(state, run_id)) == 6


def test_a_rejected_batch_creates_no_state(tmp_path):
    batch = tmp_path / "bad.jsonl"
    batch.write_text('{"id": "a", "flow": \n')
    state = tmp_path / "state"
    res = engine("run", str(batch), "--state-dir", str(state), timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{batch}:1" in res.stderr
    assert not state.exists(), sorted(p.name for p in state.rglob("*"))
