"""The SQLite results store: one final outcome per job, resume bookkeeping, exports, many writers."""
from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import ResultsStoreError
from engine.records.store import DuplicateOutcome, ResultsStore

REPO = Path(__file__).resolve().parents[3]
RUN = "r-test"


def new_store(tmp_path: Path, jobs: int = 3, run_id: str = RUN, **kw) -> ResultsStore:
    store = ResultsStore(tmp_path / "results.sqlite", **kw)
    store.create_run(run_id, batch="/b.jsonl", mode="parallel", workers=2, run_dir=str(tmp_path / run_id),
                     jobs=[(f"j{i}", i + 1, "flow.json", {"id": f"j{i}"}) for i in range(jobs)],
                     settings={"skip_invalid": False})
    return store


@pytest.fixture
def store(tmp_path):
    with new_store(tmp_path) as s:
        yield s


def finish(store: ResultsStore, job: str, outcome: str = "passed", worker: str = "w0", run_id: str = RUN) -> None:
    attempt = store.next_attempt(run_id, job)
    store.start_attempt(run_id, job, attempt, worker, epoch=1)
    store.end_attempt(run_id, job, attempt, outcome=outcome, duration_ms=12.5,
                      category=None if outcome == "passed" else "navigation",
                      error=None if outcome == "passed" else "boom")
    store.record_outcome(run_id, job, outcome=outcome, attempts=attempt, worker=worker, duration_ms=20.0,
                         category=None if outcome == "passed" else "navigation",
                         error=None if outcome == "passed" else "boom")


def test_a_run_is_recorded_with_its_jobs_and_settings(store, tmp_path):
    rec = store.run(RUN)
    assert (rec.batch, rec.mode, rec.workers, rec.status, rec.finished_at) == ("/b.jsonl", "parallel", 2, "running",
                                                                               None)
    assert rec.settings == {"skip_invalid": False} and rec.run_dir == str(tmp_path / RUN)
    assert store.job_ids(RUN) == ["j0", "j1", "j2"]
    assert store.latest_run_id() == RUN
    store.finish_run(RUN, "completed")
    rec = store.run(RUN)
    assert rec.status == "completed" and rec.finished_at >= rec.started_at
    store.set_run_status(RUN, "running")
    assert store.run(RUN).status == "running"
    with pytest.raises(ResultsStoreError, match="no run 'nope'"):
        store.run("nope")


def test_creating_a_run_is_all_or_nothing(tmp_path):
    with ResultsStore(tmp_path / "results.sqlite") as store:
        with pytest.raises(ResultsStoreError, match="cannot record run r1"):
            store.create_run("r1", batch="b", mode="parallel", workers=1, run_dir="d",
                             jobs=[("a", 1, "f", {}), ("a", 2, "f", {})])  # duplicate job id
        assert store.runs() == [] and store.latest_run_id() is None
        assert store.job_ids("r1") == []


def test_the_second_final_outcome_is_refused_counted_and_the_first_kept(store):
    finish(store, "j0", "passed", worker="w0")
    with pytest.raises(DuplicateOutcome) as info:
        store.record_outcome(RUN, "j0", outcome="failed", attempts=2, worker="w1")
    assert type(info.value).category == "persistence"
    assert "refused the one from w1" in str(info.value)
    assert store.duplicates_refused == 1
    with pytest.raises(DuplicateOutcome):
        store.record_outcome(RUN, "j0", outcome="passed", attempts=1, worker="w0")
    assert store.duplicates_refused == 2
    [o] = store.outcomes(RUN)
    assert (o.job_id, o.outcome, o.worker, o.attempts) == ("j0", "passed", "w0", 1)


def test_the_same_job_id_in_two_runs_has_one_outcome_in_each(tmp_path):
    with new_store(tmp_path) as store:
        store.create_run("r2", batch="b", mode="legacy", workers=1, run_dir="d", jobs=[("j0", 1, "f", {})])
        finish(store, "j0")
        finish(store, "j0", run_id="r2")
        assert [o.run_id for o in store.outcomes(RUN) + store.outcomes("r2")] == [RUN, "r2"]
        assert store.duplicates_refused == 0


def test_only_passed_and_failed_are_final(store):
    for bad in ("retry", "interrupted", "lost", "pending"):
        with pytest.raises(ValueError, match="final outcome must be one of"):
            store.record_outcome(RUN, "j0", outcome=bad, attempts=1, worker="w0")
    assert store.outcomes(RUN) == [] and store.duplicates_refused == 0


def test_an_outcome_for_a_job_the_run_does_not_have_is_an_error_not_a_duplicate(store):
    with pytest.raises(ResultsStoreError) as info:
        store.record_outcome(RUN, "ghost", outcome="passed", attempts=1, worker="w0")
    assert not isinstance(info.value, DuplicateOutcome)
    assert store.duplicates_refused == 0


def test_constraint_violations_on_attempts_are_store_errors(store):
    store.start_attempt(RUN, "j0", 1, "w0")
    with pytest.raises(ResultsStoreError, match="UNIQUE constraint failed"):
        store.start_attempt(RUN, "j0", 1, "w1")  # the same attempt twice
    with pytest.raises(ResultsStoreError, match="FOREIGN KEY"):
        store.start_attempt(RUN, "ghost", 1, "w0")
    with pytest.raises(ResultsStoreError, match="CHECK constraint failed"):
        store.end_attempt(RUN, "j0", 1, outcome="exploded")


def test_pending_jobs_are_those_without_a_final_outcome_in_batch_order(store):
    assert store.pending_job_ids(RUN) == ["j0", "j1", "j2"]
    finish(store, "j1", "failed")
    assert store.pending_job_ids(RUN) == ["j0", "j2"]
    store.start_attempt(RUN, "j2", 1, "w0")
    store.end_attempt(RUN, "j2", 1, outcome="retry")  # a non-final attempt leaves the job pending
    assert store.pending_job_ids(RUN) == ["j0", "j2"]
    finish(store, "j0")
    finish(store, "j2")
    assert store.pending_job_ids(RUN) == []
    assert store.counts(RUN) == {"jobs": 3, "passed": 2, "failed": 1, "pending": 0, "attempts": 4}


def test_close_open_attempts_ends_only_open_ones_for_a_job_or_the_whole_run(store):
    store.start_attempt(RUN, "j0", 1, "w0")
    store.start_attempt(RUN, "j1", 1, "w1")
    store.start_attempt(RUN, "j2", 1, "w0")
    store.end_attempt(RUN, "j2", 1, outcome="passed")
    assert store.close_open_attempts(RUN, "j0", outcome="lost", error="worker w0 died") == 1
    assert store.close_open_attempts(RUN, "j0", outcome="lost", error="again") == 0
    assert store.close_open_attempts(RUN, None, outcome="interrupted", error="drain") == 1
    got = {a.job_id: (a.outcome, a.error) for a in store.attempts(RUN)}
    assert got == {"j0": ("lost", "worker w0 died"), "j1": ("interrupted", "drain"), "j2": ("passed", None)}
    assert all(a.ended_at is not None for a in store.attempts(RUN))


def test_resume_bookkeeping_after_a_killed_supervisor(tmp_path):
    """What --resume relies on: open attempts become interrupted, only unfinished jobs are pending,
    and their next attempt numbers continue after the interrupted ones."""
    path = tmp_path / "results.sqlite"
    with new_store(tmp_path, jobs=4):
        pass
    first = ResultsStore(path)
    finish(first, "j0")
    first.start_attempt(RUN, "j1", 1, "w0")
    first.end_attempt(RUN, "j1", 1, outcome="retry")
    first.start_attempt(RUN, "j1", 2, "w0")  # in flight when the supervisor was killed
    first.start_attempt(RUN, "j2", 1, "w1")  # in flight too
    # the killed process never closes its connection cleanly; a second process picks up
    with ResultsStore(path) as resumed:
        assert resumed.close_open_attempts(RUN, None, outcome="interrupted", error="supervisor stopped") == 2
        assert resumed.pending_job_ids(RUN) == ["j1", "j2", "j3"]
        assert [resumed.next_attempt(RUN, j) for j in ("j1", "j2", "j3")] == [3, 2, 1]
        for job in ("j1", "j2", "j3"):
            finish(resumed, job, worker="w9")
        assert resumed.pending_job_ids(RUN) == []
        outcomes = {o.job_id: (o.worker, o.attempts) for o in resumed.outcomes(RUN)}
        assert outcomes == {"j0": ("w0", 1), "j1": ("w9", 3), "j2": ("w9", 2), "j3": ("w9", 1)}
        assert [a.attempt for a in resumed.attempts(RUN, "j0")] == [1]  # a finished job was not re-run
    first.close()


def test_attempt_details_round_trip(store):
    store.start_attempt(RUN, "j0", 1, "w3", epoch=7)
    steps = [{"key": "0:navigate", "type": "navigate", "ms": 1.5, "ok": True}]
    store.end_attempt(RUN, "j0", 1, outcome="failed", category="timeout", error="slow", duration_ms=99.0,
                      matched={"1": "#name"}, steps=steps, artifacts=["a/shot.png"])
    [a] = store.attempts(RUN, "j0")
    assert (a.worker, a.epoch, a.outcome, a.category, a.error, a.duration_ms) == ("w3", 7, "failed", "timeout",
                                                                                  "slow", 99.0)
    assert (a.matched, a.steps, a.artifacts) == ({"1": "#name"}, steps, ["a/shot.png"])
    assert a.ended_at >= a.started_at


def test_export_rows_csv_include_pending_jobs_and_attempt_counts(store):
    finish(store, "j0")
    finish(store, "j2", "failed")
    store.start_attempt(RUN, "j1", 1, "w1")
    rows = store.export_rows(RUN)
    assert [(r["job_id"], r["line"], r["outcome"], r["attempts"]) for r in rows] == [
        ("j0", 1, "passed", 1), ("j1", 2, "pending", 1), ("j2", 3, "failed", 1)]
    assert rows[2]["category"] == "navigation" and rows[2]["error"] == "boom" and rows[2]["worker"] == "w0"
    parsed = list(csv.DictReader(io.StringIO(store.export_csv(RUN))))
    assert [r["job_id"] for r in parsed] == ["j0", "j1", "j2"]
    assert list(parsed[0]) == ["job_id", "line", "flow", "outcome", "attempts", "category", "error", "duration_ms",
                               "worker"]
    assert parsed[1]["outcome"] == "pending" and parsed[1]["worker"] == ""


def test_export_csv_of_an_empty_run_is_a_header(tmp_path):
    with new_store(tmp_path, jobs=0) as store:
        assert store.export_csv(RUN).strip() == "job_id"


def test_csv_quotes_errors_with_commas_quotes_and_newlines(store):
    nasty = 'bad, "very"\nbad'
    store.start_attempt(RUN, "j0", 1, "w0")
    store.record_outcome(RUN, "j0", outcome="failed", attempts=1, worker="w0", error=nasty)
    parsed = list(csv.DictReader(io.StringIO(store.export_csv(RUN))))
    assert parsed[0]["error"] == nasty


def test_results_command_exports_json_and_csv(tmp_path):
    with new_store(tmp_path) as store:
        finish(store, "j0")
        finish(store, "j1", "failed")

    def results(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "engine", "results", *args, "--state-dir", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)

    res = results(RUN, "--format", "json", "--attempts")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["run"]["run_id"] == RUN and doc["run"]["status"] == "running"
    assert [(j["job_id"], j["outcome"]) for j in doc["jobs"]] == [("j0", "passed"), ("j1", "failed"),
                                                                   ("j2", "pending")]
    assert [(a["job_id"], a["attempt"], a["outcome"]) for a in doc["attempts"]] == [("j0", 1, "passed"),
                                                                                    ("j1", 1, "failed")]
    res = results("last", "--format", "csv")
    assert res.returncode == 0
    assert [r["outcome"] for r in csv.DictReader(io.StringIO(res.stdout))] == ["passed", "failed", "pending"]


def test_the_database_is_in_wal_mode_so_readers_do_not_block_writers(tmp_path):
    with new_store(tmp_path) as writer:
        raw = sqlite3.connect(tmp_path / "results.sqlite")
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        raw.execute("BEGIN")
        assert raw.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 3  # a read transaction is open
        finish(writer, "j0")  # ... and the writer is not blocked by it
        raw.execute("COMMIT")
        raw.close()


def test_a_writer_waiting_past_its_timeout_gets_a_store_error_not_a_hang(tmp_path):
    with new_store(tmp_path) as _, ResultsStore(tmp_path / "results.sqlite", timeout=0.2) as impatient:
        holder = sqlite3.connect(tmp_path / "results.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        t0 = time.monotonic()
        with pytest.raises(ResultsStoreError, match="database is locked"):
            impatient.start_attempt(RUN, "j0", 1, "w0")
        assert time.monotonic() - t0 < 10
        assert impatient.counts(RUN)["jobs"] == 3  # reading still works
        holder.execute("ROLLBACK")
        holder.close()
        impatient.start_attempt(RUN, "j0", 1, "w0")


def test_opening_a_store_where_it_cannot_be_created_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ResultsStoreError, match="cannot open results store"):
        ResultsStore(tmp_path / "file" / "results.sqlite")


# -- many writers -------------------------------------------------------------------

WRITERS = 4
JOBS = 60


def _writer(path: str, index: int, start: mp.Event, out: mp.Queue) -> None:
    """One process: an attempt of its own for every job, then a try at every job's final outcome."""
    store = ResultsStore(path)
    won, refused = [], 0
    start.wait(60)
    for i in range(JOBS):
        job = f"j{(i + index * 7) % JOBS}"  # each writer walks the jobs from a different place
        store.start_attempt(RUN, job, index + 1, f"w{index}")
        store.end_attempt(RUN, job, index + 1, outcome="passed", duration_ms=float(index))
        try:
            store.record_outcome(RUN, job, outcome="passed", attempts=index + 1, worker=f"w{index}")
            won.append(job)
        except DuplicateOutcome:
            refused += 1
    assert store.duplicates_refused == refused
    store.close()
    out.put((index, won, refused))


def test_four_processes_writing_at_once_lose_nothing_and_store_one_outcome_per_job(tmp_path):
    with new_store(tmp_path, jobs=JOBS):
        pass
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path / "results.sqlite"), i, start, out))
             for i in range(WRITERS)]
    for p in procs:
        p.start()
    start.set()
    try:
        results = [out.get(timeout=240) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join(5)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    won = {job: index for index, jobs, _ in results for job in jobs}
    assert sum(len(jobs) for _, jobs, _ in results) == JOBS == len(won)  # every job won exactly once
    assert sum(refused for *_, refused in results) == (WRITERS - 1) * JOBS
    with ResultsStore(tmp_path / "results.sqlite") as store:
        attempts = store.attempts(RUN)
        assert len(attempts) == WRITERS * JOBS  # no lost writes
        assert all(a.outcome == "passed" and a.ended_at is not None for a in attempts)
        assert {(a.job_id, a.attempt) for a in attempts} == {(f"j{j}", i + 1) for j in range(JOBS)
                                                              for i in range(WRITERS)}
        outcomes = store.outcomes(RUN)
        assert len(outcomes) == JOBS
        assert {o.job_id: int(o.worker[1:]) for o in outcomes} == won  # the stored outcome is the winner's
        assert store.pending_job_ids(RUN) == []
