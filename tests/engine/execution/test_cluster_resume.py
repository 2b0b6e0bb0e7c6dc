"""``--resume`` after the Ray driver is SIGKILLed mid-batch: the same promises as on one host.

The driver (``python -m engine run --backend ray``, a subprocess that starts
its own local Ray instance) is killed with SIGKILL while jobs are in
flight; then ``--resume`` finishes the run.  Checked: every job has exactly
one final outcome, no job that had finished ran again, the fencing epochs
kept rising across the resume, and nothing of the crashed driver — its Ray
processes, actors, Chromium — outlives it or the resume.  The Ray instance
gets a temporary root of its own (``RAY_TMPDIR``), so "nothing left" is
checked precisely: every process of the crashed tree (pids taken before the
kill) is gone — at once, or (Ray's agents) reaped by the resume — and no
process still names that root.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("ray", reason="the Ray backend's tests need Ray (pip install 'drover[ray]')")

from engine.cli.exit_codes import EXIT_OK  # noqa: E402
from tests.engine.execution._resume_checks import assert_resumed_exactly_once  # noqa: E402
from tests.engine.execution.test_run import REPO, SLOW_FLOW, db, last_run, outcomes, wait_for, write_batch  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _naming(root: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(root in part for part in p.info["cmdline"] or []):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return out


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):  # gone, or exiting: nothing to name
        return ""


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_resume_after_the_ray_driver_is_killed_finishes_the_run_exactly_once(tmp_path, site):
    n = 12
    batch = write_batch(tmp_path, site, n, SLOW_FLOW, extra_vars={"ms": "700"})
    state = tmp_path / "state"
    ray_root = tempfile.mkdtemp(prefix="dr-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_TMPDIR": ray_root}
    cmd = [sys.executable, "-m", "engine", "run", "--workers", "2", "--state-dir", str(state), "--backend", "ray"]
    driver = subprocess.Popen([*cmd, str(batch)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    crashed: list[psutil.Process] = []
    try:
        wait_for(lambda: (state / "results.sqlite").exists() and last_run(state) is not None, 120, "the run")
        run_id, run_dir = last_run(state)
        wait_for(lambda: len(outcomes(state, run_id)) >= 3, 240, "some outcomes")
        crashed = _tree(driver.pid)
        names = " ".join(_cmdline(p) for p in crashed)
        assert "raylet" in names and "chrom" in names, names[:2000]  # the tree really holds Ray and the browsers
        driver.send_signal(signal.SIGKILL)
        driver.communicate(timeout=30)
        _, alive = psutil.wait_procs(crashed, timeout=15)
        lingering = [_cmdline(p) for p in alive]
        # Ray's GCS and raylet, the actors and their Chromium die with the driver; only Ray's agents may linger
        # (they try to report to the dead GCS first): the resume reaps them
        assert all("agent" in c.lower() for c in lingering), f"outlived the driver: {lingering}"
        before = dict(db(state).execute("SELECT job_id, recorded_at FROM outcomes WHERE run_id = ?",
                                        (run_id,)).fetchall())
        assert 0 < len(before) < n, before
        epoch_before = db(state).execute("SELECT MAX(epoch) FROM attempts WHERE run_id = ?", (run_id,)).fetchone()[0]
        killed_at = time.time()

        resumed = subprocess.run([*cmd, "--resume", run_id], cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=400)
        assert resumed.returncode == EXIT_OK, resumed.stdout + resumed.stderr
        _, alive = psutil.wait_procs(crashed, timeout=5)
        assert not alive, f"the crashed driver's processes outlived the resume: {[_cmdline(p) for p in alive]}"
        left = _naming(ray_root)
        assert not left, f"processes of the test's Ray instances left behind: {[(p.pid, p.name()) for p in left]}"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
        for p in crashed + _naming(ray_root):  # only what this test started, by pid
            try:
                p.kill()
            except psutil.NoSuchProcess:
                continue
        shutil.rmtree(ray_root, ignore_errors=True)
    assert_resumed_exactly_once(db(state), outcomes(state, run_id), n, run_id, before, killed_at, epoch_before)
    assert Path(run_dir).is_dir()
