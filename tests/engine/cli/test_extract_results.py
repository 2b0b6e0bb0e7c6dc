"""Extracted data end to end: ``run`` (forked worker, Chromium, SQLite) then ``results --format json|jsonl|csv``.

One run of two jobs: one extracts the page title and the page's echo of a
secret it typed (the secret comes from ``DROVER_SECRET_*``, as in
production), one extracts more than the cap.  Checked from what a user
reads: the exports, and the store file's bytes for the secret.
"""
from __future__ import annotations

import csv
import io
import json
import os

import pytest

from engine.cli.exit_codes import EXIT_JOB_FAILURES
from navigation.credentials import MASK
from navigation.steps.builtin import MAX_EXTRACTED_BYTES
from tests.engine.cli.test_run_evidence import write_jobs
from tests.engine.execution.test_run import engine

SECRET = "s3cret-Extract-9!"
SHOP_FLOW = {"title": "shop", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/echo.html"},
    {"type": "extract", "name": "title", "expression": "document.title"},
    {"type": "change", "selectors": [["#typed"]], "value": {"secret": "shop_password"}},
    {"type": "waitForExpression", "expression": "document.querySelector('#echo').textContent.length > 0"},
    {"type": "extract", "name": "echo", "expression": "({shown: document.querySelector('#echo').textContent})"},
]}
HUGE_FLOW = {"title": "huge", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/echo.html"},
    {"type": "extract", "name": "small", "expression": "'extracted before the failure'"},
    {"type": "extract", "name": "huge", "expression": f"'x'.repeat({MAX_EXTRACTED_BYTES})"},
]}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, site):
    tmp = tmp_path_factory.mktemp("extract")
    batch = write_jobs(tmp, site, [("shop-0", SHOP_FLOW), ("huge-0", HUGE_FLOW)])
    env = {**os.environ, "DROVER_STATE_DIR": str(tmp / "state"), "DROVER_SECRET_shop_password": SECRET}
    res = engine("run", str(batch), "--workers", "1", timeout=600, env=env)

    def results(fmt: str):
        out = engine("results", "last", "--format", fmt, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    return {"res": res, "state": tmp / "state", "results": results}


@pytest.mark.chromium
def test_an_extracted_value_is_in_results_json_and_the_secret_of_the_same_flow_is_not(extracted):
    assert extracted["res"].returncode == EXIT_JOB_FAILURES, extracted["res"].stderr
    jobs = {j["job_id"]: j for j in json.loads(extracted["results"]("json"))["jobs"]}
    assert jobs["shop-0"]["outcome"] == "passed"
    assert jobs["shop-0"]["data"] == {"title": "Drover echo", "echo": {"shown": MASK}}
    for fmt in ("json", "jsonl", "csv"):
        assert SECRET not in extracted["results"](fmt)
    store = extracted["state"] / "results.sqlite"
    assert all(SECRET.encode() not in p.read_bytes() for p in store.parent.glob("results.sqlite*"))


@pytest.mark.chromium
def test_over_the_cap_the_job_fails_with_an_input_error_naming_step_and_size(extracted):
    lines = [json.loads(line) for line in extracted["results"]("jsonl").splitlines()]
    huge = next(j for j in lines if j["job_id"] == "huge-0")
    assert huge["outcome"] == "failed" and huge["category"] == "input" and huge["attempts"] == 1
    assert huge["error"].startswith(f'step 2 (extract): extract "huge": the value is {MAX_EXTRACTED_BYTES + 2} '
                                    f"bytes of JSON; the cap is {MAX_EXTRACTED_BYTES} bytes per job")
    # a failed job keeps what was extracted before the failing step, never a part of the refused value
    assert huge["data"] == {"small": "extracted before the failure"}
    rows = {r["job_id"]: r for r in csv.DictReader(io.StringIO(extracted["results"]("csv")))}
    assert json.loads(rows["shop-0"]["data.echo"]) == {"shown": MASK} and rows["huge-0"]["data.echo"] == ""
    assert "data.huge" not in rows["huge-0"]


def test_the_cap_is_a_setting_that_reaches_the_executors_extract_strategy(tmp_path):
    from engine.config import ConfigError, load_settings
    from engine.execution.assembly import ExecutorPlace, build_executor
    from engine.execution.executor import NoCoordination
    from navigation.credentials import CredentialStore
    from navigation.flow import parse_flow

    step = parse_flow({"title": "t", "steps": [{"type": "extract", "name": "n", "expression": "1"}]},
                      source="t.json").steps[0]
    cfg = tmp_path / "drover.toml"
    for text, cap in (("[engine]\nextract_max_bytes = 100\n", 100), ("[engine]\nworkers = 1\n", MAX_EXTRACTED_BYTES)):
        cfg.write_text(text)
        s = load_settings(str(cfg), env={}, cwd=str(tmp_path)).settings
        executor = build_executor(s, ExecutorPlace("r", tmp_path, str(tmp_path), None, 0), store=None, lifecycle=None,
                                  credentials=CredentialStore(), coordination=NoCoordination(), worker_name="w0")
        assert executor.runner.registry.strategy_for(step).max_bytes == cap
    cfg.write_text("[engine]\nextract_max_bytes = 0\n")
    with pytest.raises(ConfigError, match=r"engine.extract_max_bytes must be 2 \.\. 4194304"):
        load_settings(str(cfg), env={}, cwd=str(tmp_path))
