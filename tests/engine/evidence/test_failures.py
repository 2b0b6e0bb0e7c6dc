"""The failure matrix, built from a real results store and real stream files of a run."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable, Iterator

import pytest

from coordination.errors import CATEGORIES
from coordination.telemetry_context import bind, stream_logger
from engine.records import streams as telemetry
from engine.errors import ResultsStoreError
from engine.evidence.failures import build_failure_matrix, error_class, matrix_lines, normalise_error, to_dicts
from engine.records.store import ResultsStore

RUN = "r20260603-101500-ab12"
JOBS = ["j1", "j2", "j3", "j4", "j5", "j6", "j7", "j8"]

ops = stream_logger("operational", "engine.execution.supervisor")
domain = stream_logger("domain", "engine.execution.executor")
audit = stream_logger("audit", "coordination._table")
lifecycle = stream_logger("operational", "navigation.lifecycle")


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[ResultsStore, Path, Path]]:
    """A recorded run: the store in the state dir, the four streams in the run dir."""
    run_dir = tmp_path / "runs" / RUN
    sinks = telemetry.install(run_dir)
    store_path = tmp_path / "results.sqlite"
    store = ResultsStore(store_path)
    store.create_run(RUN, batch="batch.jsonl", mode="parallel", workers=2, run_dir=str(run_dir),
                     jobs=[(j, i + 1, "checkout.json", {}) for i, j in enumerate(JOBS)])
    try:
        yield store, store_path, run_dir
    finally:
        store.close()
        sinks.close()


@contextlib.contextmanager
def attempt(store: ResultsStore, job: str, n: int, worker: str) -> Iterator[str]:
    """One attempt as the executor runs it: the store row, and the correlation context bound for its logs."""
    cid = f"{RUN}/{job}/a{n}"
    store.start_attempt(RUN, job, n, worker)
    with bind(run_id=RUN, correlation_id=cid, worker=worker, session=f"s{worker[1:]}", job_id=job):
        domain.info("attempt started", extra={"event": "attempt_started", "job_id": job, "attempt": n})
        yield cid


def finished(store: ResultsStore, job: str, n: int, outcome: str, category: str | None = None,
             error: str | None = None, worker: str = "w0") -> None:
    store.end_attempt(RUN, job, n, outcome=outcome, category=category, error=error)
    if outcome in ("passed", "failed"):
        store.record_outcome(RUN, job, outcome=outcome, attempts=n, worker=worker, category=category, error=error)


def supervisor(fn: Callable[[], None]) -> None:
    with bind(run_id=RUN, correlation_id=RUN, worker="supervisor"):
        fn()


def record_the_run(store: ResultsStore, run_dir: Path) -> None:
    # j1: the browser's connection dropped; the lifecycle restarted the browser; the retry passed
    with attempt(store, "j1", 1, "w0"):
        lifecycle.warning("reconnect attempt failed", extra={"event": "reconnect", "action": "restart",
                                                             "outcome": "ok", "attempt": 1})
        lifecycle.info("browser started", extra={"event": "restart", "pid": 4243, "port": 40111})
    finished(store, "j1", 1, "retry", "cdp", "CDP connection lost: ws://127.0.0.1:39411/devtools/browser/"
                                            "5f1c2d3e-aa closed (pid 4242)")
    with attempt(store, "j1", 2, "w0"):
        pass
    finished(store, "j1", 2, "passed")

    # j2: its worker was SIGKILLed mid-job; the supervisor re-queued it and a new worker passed it
    with attempt(store, "j2", 1, "w1"):
        pass
    supervisor(lambda: ops.error("worker died", extra={"event": "worker_died", "worker_index": 1, "pid": 5150,
                                                       "exit_code": -9, "job_id": "j2"}))
    store.close_open_attempts(RUN, "j2", outcome="lost", error="worker w1 died (exit -9)")
    supervisor(lambda: domain.warning("job re-queued after its worker died",
                                      extra={"event": "job_requeued", "job_id": "j2", "lost": 1}))
    with attempt(store, "j2", 2, "w1"):
        pass
    finished(store, "j2", 2, "passed", worker="w1")

    # j3: a wrong credential: not retryable, the job failed for good
    with attempt(store, "j3", 1, "w0"):
        pass
    finished(store, "j3", 1, "failed", "auth", "login rejected for alice: wrong password (HTTP 401)")

    # j4: two timeouts with different numbers, the same cause; the third attempt passed
    for n, ms in ((1, 5000), (2, 5012)):
        with attempt(store, "j4", n, "w1"):
            pass
        finished(store, "j4", n, "retry", "timeout", f"step 3 (waitForElement): timed out after {ms} ms")
    with attempt(store, "j4", 3, "w1"):
        pass
    finished(store, "j4", 3, "passed", worker="w1")

    # j5: passed, and a second outcome from a presumed-dead worker was refused
    with attempt(store, "j5", 1, "w0") as cid:
        pass
    finished(store, "j5", 1, "passed")
    with bind(run_id=RUN, correlation_id=cid, worker="w1"):
        domain.error("duplicate outcome refused", extra={
            "event": "duplicate_outcome", "job_id": "j5",
            "error": f"job 'j5' of run {RUN} already has a final outcome (refused the one from w1)"})

    # j6: its recorder flow did not load; the legacy fallback ran and passed
    with attempt(store, "j6", 1, "w0"):
        domain.warning("recorder flow invalid: using the job's legacy fallback", extra={
            "event": "fallback", "job_id": "j6", "fallback": "fixture_form",
            "reason": "FlowValidationError: checkout.json: step 2: unknown step type 'hover'"})
    finished(store, "j6", 1, "passed")

    # j7: a selector was not found; the worker fenced its slot off (coordination's own audit record)
    with attempt(store, "j7", 1, "w0"):
        audit.warning("slot quarantined", extra={"slot": 0, "caller_worker": 0, "reason": "page unusable",
                                                 "new_epoch": 9})
    finished(store, "j7", 1, "failed", "navigation",
             "SelectorNotFound: step 4 (click): #buy not found on https://shop.test/cart?id=9 "
             "[artifacts: /tmp/x/artifacts/j7/a1/step-4.png]")

    # j8: drained (interrupted) — that is not a failure
    with attempt(store, "j8", 1, "w1"):
        pass
    store.close_open_attempts(RUN, "j8", outcome="interrupted", error="drained")

    # a torn line in one stream (a disk that filled mid-record)
    with open(run_dir / "performance.jsonl", "ab") as fh:
        fh.write(b'{"ts": 1795571265.2, "event": "attempt_tim\n')


def test_every_category_has_a_row_with_counts_causes_containment_and_resolution(run):
    store, store_path, run_dir = run
    record_the_run(store, run_dir)
    rows = {r.category: r for r in build_failure_matrix(store_path, RUN, run_dir)}
    assert list(rows) == list(CATEGORIES)

    cdp = rows["cdp"]
    assert (cdp.count, cdp.jobs, cdp.resolved, cdp.unresolved_jobs) == (2, 2, True, 0)
    assert cdp.examples == (f"{RUN}/j1/a1", f"{RUN}/j2/a1")
    assert dict(cdp.containment) == {"retry": 2, "browser restart": 1, "worker restart": 1}
    assert cdp.root_cause in ("CDP connection lost: <url> closed (pid <n>)", "worker w<n> died (exit -<n>)")

    auth = rows["auth"]
    assert (auth.count, auth.resolved, auth.unresolved_jobs, auth.containment) == (1, False, 1, (("none", 1),))
    assert auth.root_cause == "login rejected for alice: wrong password (HTTP <n>)"

    timeout = rows["timeout"]
    assert (timeout.count, timeout.jobs, timeout.resolved) == (2, 1, True)
    assert timeout.root_cause == "step <n> (waitForElement): timed out after <n> ms"
    assert timeout.containment == (("retry", 2),)
    assert timeout.examples == (f"{RUN}/j4/a1", f"{RUN}/j4/a2")

    persistence = rows["persistence"]
    assert (persistence.count, persistence.error_class, persistence.examples) == (
        1, "DuplicateOutcome", (f"{RUN}/j5/a1",))
    assert persistence.containment == (("duplicate refused", 1),) and persistence.resolved is True
    assert persistence.root_cause == "job 'j<n>' of run r<n>-<n>-ab<n> already has a final outcome (refused the " \
                                     "one from w<n>)"

    inp = rows["input"]
    assert (inp.count, inp.containment, inp.resolved, inp.error_class) == (
        1, (("fallback", 1),), True, "FlowValidationError")
    assert inp.root_cause == "checkout.json: step <n>: unknown step type 'hover'"

    nav = rows["navigation"]
    assert (nav.count, nav.error_class, nav.containment, nav.resolved) == (
        1, "SelectorNotFound", (("quarantine", 1),), False)
    assert nav.root_cause == "step <n> (click): #buy not found on <url>"

    tel = rows["telemetry"]
    assert (tel.count, tel.resolved, tel.first_seen) == (1, None, None)
    lines = (run_dir / "performance.jsonl").read_text().splitlines()
    assert tel.examples == (f"{run_dir / 'performance.jsonl'}:{len(lines)}",)

    seen = [r.first_seen for r in rows.values() if r.count and r.first_seen is not None]
    assert all(r.first_seen <= r.last_seen for r in rows.values() if r.first_seen is not None) and seen
    assert cdp.first_seen < cdp.last_seen


def test_every_example_expands_into_a_correlation_chain_with_trace(run):
    store, store_path, run_dir = run
    record_the_run(store, run_dir)
    for row in build_failure_matrix(store_path, RUN, run_dir):
        if row.category == "telemetry":
            continue
        for example in row.examples:
            chain = telemetry.trace(run_dir, example)
            assert chain, (row.category, example)
            assert all(r["correlation_id"].startswith(example) for r in chain)
            assert chain[0]["event"] == "attempt_started"


def test_dicts_and_lines_for_the_evidence_package(run):
    store, store_path, run_dir = run
    record_the_run(store, run_dir)
    rows = build_failure_matrix(store_path, RUN, run_dir)
    dicts = to_dicts(rows)
    assert [d["category"] for d in dicts] == list(CATEGORIES)
    assert dicts[0]["containment"] == ["retry", "browser restart", "worker restart"]  # most applied first
    assert dicts[0]["containment_counts"] == {"retry": 2, "browser restart": 1, "worker restart": 1}
    assert set(dicts[0]) == {"category", "count", "jobs", "first_seen", "last_seen", "examples", "root_cause",
                             "error_class", "containment", "containment_counts", "resolved", "unresolved_jobs"}
    assert json.loads(json.dumps(dicts)) == dicts
    text = "\n".join(matrix_lines(rows))
    assert "auth" in text and "NO (1)" in text and f"trace: {RUN}/j3/a1" in text
    assert "cause: SelectorNotFound: step <n> (click): #buy not found on <url>" in text


def test_a_clean_run_lists_all_seven_categories_with_zero_counts(run):
    store, store_path, run_dir = run
    for job in JOBS:
        with attempt(store, job, 1, "w0"):
            pass
        finished(store, job, 1, "passed")
    rows = build_failure_matrix(store_path, RUN, run_dir)
    assert [(r.category, r.count, r.resolved, r.examples, r.containment) for r in rows] == [
        (c, 0, None, (), ()) for c in CATEGORIES]


def test_an_unknown_run_or_a_missing_store_is_an_error_not_an_empty_matrix(run, tmp_path):
    _store, store_path, run_dir = run
    with pytest.raises(ResultsStoreError, match="no run 'r-nope'"):
        build_failure_matrix(store_path, "r-nope", run_dir)
    with pytest.raises(ResultsStoreError, match="no results store at"):
        build_failure_matrix(tmp_path / "elsewhere.sqlite", RUN, run_dir)
    assert not (tmp_path / "elsewhere.sqlite").exists()


@pytest.mark.parametrize("a, b", [
    ("CDP connection lost: ws://127.0.0.1:39411/devtools/browser/5f1c closed (pid 4242)",
     "CDP connection lost: ws://127.0.0.1:40999/devtools/browser/77aa closed (pid 17)"),
    ("browser launch failed: /tmp/drover-profile-abc123/Default is locked",
     "browser launch failed: /tmp/drover-profile-zz9/Default is locked"),
    ("target 8F3A2B1C9D0E4F56 detached", "target 0A1B2C3D4E5F6071 detached"),
    ("step 2 (click): timed out after 5000 ms [artifacts: a.png, b.html]", "step 7 (click): timed out after 12.5 ms"),
])
def test_identical_causes_normalise_to_one_message(a, b):
    assert normalise_error(a) == normalise_error(b)


def test_different_causes_stay_apart_and_classes_are_read_from_the_message_or_record():
    assert normalise_error("wrong password for alice") != normalise_error("wrong password for bob")
    assert normalise_error(None) == "(no message)"
    assert error_class("StepTimeout: step 3 timed out") == "StepTimeout"
    assert error_class("step 3 timed out") is None
    assert error_class("x", {"error_class": "CDPConnectionLost"}) == "CDPConnectionLost"


def test_a_quarantine_record_bound_to_no_attempt_is_pinned_on_that_workers_attempt_only(run):
    store, store_path, run_dir = run
    with attempt(store, "j1", 1, "w0"):
        pass
    finished(store, "j1", 1, "failed", "navigation", "page crashed")  # w0's attempt ended just before
    with attempt(store, "j2", 1, "w1"), attempt(store, "j3", 1, "w0"):
        with bind(run_id=RUN, correlation_id=RUN, worker="w0"):  # the worker's own context, no attempt
            audit.warning("slot quarantined", extra={"slot": 0, "reason": "renderer hung"})
    finished(store, "j2", 1, "failed", "navigation", "page crashed", worker="w1")
    finished(store, "j3", 1, "failed", "navigation", "page crashed")
    [nav] = [r for r in build_failure_matrix(store_path, RUN, run_dir) if r.category == "navigation"]
    assert dict(nav.containment) == {"none": 2, "quarantine": 1}
