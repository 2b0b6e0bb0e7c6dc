"""A run on a local Ray instance of its own: every actor finds a Python worker process started, engine imported.

Without it the third actor of a two-worker run (two workers and the
coordinator) waited for a new process to start and import Ray, and every
actor imported the engine on the run's clock (see
``engine.execution.cluster.backend.start_local_instance``).  The driver's
``actor_ready`` record says, per actor, whether its process was up before
the driver asked for the actor, and whether Ray imported the actor's module
as the process started (its preload) rather than the actor's creation.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import psutil
import pytest

pytest.importorskip("ray", reason="the Ray backend's tests need Ray (pip install 'drover[ray]')")

from engine.cli.exit_codes import EXIT_OK  # noqa: E402
from tests.engine.execution.test_cluster_resume import _naming  # noqa: E402
from tests.engine.execution.test_run import LIGHT_FLOW, REPO, db, engine, last_run, outcomes, stream_events, \
    write_batch  # noqa: E402

pytestmark = [pytest.mark.timeout(300)]


def test_each_actor_of_a_run_on_its_own_instance_gets_a_prestarted_process_with_the_engine_imported(tmp_path, site):
    batch = write_batch(tmp_path, site, 4, LIGHT_FLOW)
    state = tmp_path / "state"
    ray_root = tempfile.mkdtemp(prefix="dr-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    try:
        done = engine("run", "--workers", "2", "--state-dir", str(state), "--backend", "ray", str(batch),
                      env={**env, "RAY_TMPDIR": ray_root})
        assert done.returncode == EXIT_OK, done.stdout + done.stderr
        assert "RAY_AUTH_MODE" not in done.stdout + done.stderr  # Ray's warning: token auth asked for explicitly
        left = _naming(ray_root)
        assert not left, f"the run's Ray instance left processes behind: {[(p.pid, p.name()) for p in left]}"
    finally:
        for p in _naming(ray_root):  # only what this test started, by the root it gave Ray
            try:
                p.kill()
            except psutil.NoSuchProcess:
                continue
        shutil.rmtree(ray_root, ignore_errors=True)
    run_id, run_dir = last_run(state)
    assert set(outcomes(state, run_id).values()) == {"passed"}, outcomes(state, run_id)
    ready = [r for r in stream_events(run_dir, "operational") if r.get("event") == "actor_ready"]
    assert len(ready) == 2, ready
    for r in ready:
        assert r["prestarted"] and r["process_age_s"] > r["wait_s"], r
        assert r["preloaded"], r
    # the attempts' starts, sent without waiting, are all recorded, each before its attempt's end
    rows = db(state).execute("SELECT started_at, ended_at, epoch FROM attempts WHERE run_id = ?",
                             (run_id,)).fetchall()
    assert len(rows) == 4 and all(s is not None and e is not None and s <= e and ep > 0 for s, e, ep in rows), rows


def test_a_local_instance_starts_in_a_process_that_imported_ray_before(tmp_path):
    """Ray reads its auth mode at import: asking for token auth after that would leave the driver unable to
    reach the GCS it started (``ray.init`` failed); then the mode is left to Ray."""
    code = ("import ray, sys\nfrom engine.execution.cluster import start_local_instance\n"
            "start_local_instance(1)\nprint(ray.is_initialized())\nray.shutdown()\n")
    ray_root = tempfile.mkdtemp(prefix="dr-ray-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**env, "RAY_TMPDIR": ray_root})
        assert done.returncode == 0 and done.stdout.strip() == "True", done.stdout + done.stderr[-3000:]
    finally:
        for p in _naming(ray_root):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                continue
        shutil.rmtree(ray_root, ignore_errors=True)
