"""Extracted data on the Ray backend: the actor's writes go through the coordinator, and the data goes with them.

A real ``run --backend ray`` (a local Ray instance started by the run, in
its own process, so nothing is shared with the cluster of test_cluster.py).
"""
from __future__ import annotations

import json
import os

import pytest

from engine.cli.exit_codes import EXIT_OK
from navigation.credentials import MASK
from tests.engine.cli.test_extract_results import SECRET, SHOP_FLOW
from tests.engine.cli.test_run_evidence import write_jobs
from tests.engine.execution.test_run import engine

pytest.importorskip("ray", reason="the Ray backend's tests need Ray (pip install 'drover[ray]')")
pytestmark = [pytest.mark.slow, pytest.mark.chromium, pytest.mark.timeout(600)]


def test_a_ray_actors_extracted_data_reaches_the_results_masked(tmp_path, site):
    batch = write_jobs(tmp_path, site, [("ray-0", SHOP_FLOW), ("ray-1", SHOP_FLOW)])
    env = {**os.environ, "DROVER_STATE_DIR": str(tmp_path / "state"), "DROVER_SECRET_shop_password": SECRET,
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    res = engine("run", str(batch), "--backend", "ray", "--workers", "1", timeout=600, env=env)
    assert res.returncode == EXIT_OK, res.stderr[-3000:]
    out = engine("results", "last", "--format", "jsonl", env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    jobs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(j["job_id"], j["outcome"], j["data"]) for j in jobs] == [
        (job, "passed", {"title": "Drover echo", "echo": {"shown": MASK}}) for job in ("ray-0", "ray-1")]
    assert SECRET not in out.stdout
