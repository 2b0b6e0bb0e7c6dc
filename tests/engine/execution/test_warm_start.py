"""Warm start: a forked worker's browser (and first context or warm page) is up before its first job begins.

Why a test: without it the first job of every worker pays a browser start
(0.5-2 s here), which is what made Drover's per-job p95 worse than
Playwright's while its p50 was better (issue 17).  The check is an order
of events, not a timing, so it holds on a loaded machine and fails the
moment the warm-up is skipped: the worker's ``browser started`` record
(operational stream) must be stamped before the first job began, the job's
start being its ``job finished`` record's time minus the job's own
duration (both from the same process, measured from ``Executor.run``'s
entry, which is where a cold start would launch the browser).  The
difference is the browser's start-up at least when warm start is missing,
so the margin is large either way.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import Settings
from engine.execution.runs import RunRequest, execute, prepare

FLOW = {"title": "warm start", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/form.html"},
    {"type": "waitForExpression", "expression": "document.readyState === 'complete'", "timeout": 10000},
]}


def _records(run_dir: Path, stream: str) -> list[dict]:
    return [json.loads(line) for line in (run_dir / f"{stream}.jsonl").read_text().splitlines() if line]


@pytest.mark.parametrize("isolation", ["context", "reset"])
def test_the_first_job_of_a_worker_does_not_pay_a_browser_start(tmp_path, site, isolation):
    (tmp_path / "flow.json").write_text(json.dumps(FLOW))
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps({"id": f"job-{i}", "flow": "flow.json", "retries": 0,
                                         "vars": {"BASE_URL": site.base_url}}) + "\n" for i in range(2)))
    req = RunRequest(str(batch), Settings(workers=1, state_dir=str(tmp_path / "state"), job_isolation=isolation))
    prepared = prepare(req)
    summary = execute(req, prepared)
    assert summary.outcomes == {"passed": 2, "failed": 0, "pending": 0}, summary.outcomes

    ops = _records(prepared.run_dir, "operational")
    assert [r["event"] for r in ops if r.get("event") == "warm_start_failed"] == []
    starts = [r for r in ops if r.get("message") == "browser started"]
    assert len(starts) == 1, starts  # one browser for both jobs, started once
    finished = sorted((r for r in _records(prepared.run_dir, "domain") if r.get("event") == "job_finished"),
                      key=lambda r: r["ts"])
    assert len(finished) == 2, finished
    first = finished[0]
    first_began = first["ts"] - first["duration_ms"] / 1000
    assert starts[0]["worker"] == first["worker"]
    assert starts[0]["ts"] < first_began, (
        f"the browser started {starts[0]['ts'] - first_began:.3f} s after the first job began "
        f"(startup {starts[0].get('startup_s')} s): the worker did not warm up before asking for a job")
    if isolation == "context":  # the first job used the context warm() opened: no second context/page setup
        spare = [r for r in ops if r.get("event") == "isolation_fallback"]
        assert spare == [], spare
