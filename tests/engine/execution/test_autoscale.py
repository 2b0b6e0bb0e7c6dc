"""``--sessions auto`` on real Chromium: concurrency climbs on waiting jobs, backs off under a CPU hog.

The hog is two busy-looping Python processes this test starts (and ends, by pid), so the host's CPU
busy share crosses the autoscaler's target whatever the jobs themselves cost.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli.exit_codes import EXIT_OK
from tests._wait import wait_for
from tests.engine.execution.test_run import (
    SLOW_FLOW,
    assert_safe,
    db,
    last_run,
    outcomes,
    start_engine,
    stream_events,
    write_batch,
)

HOG_SECONDS = 20  # a hog ends on its own after this, even if the test cannot end it
HOG = f"import time\nend = time.monotonic() + {HOG_SECONDS}\nwhile time.monotonic() < end:\n    pass\n"


def autoscale_events(run_dir: str) -> list[dict]:
    path = Path(run_dir) / "operational.jsonl"
    if not path.exists():
        return []
    return [r for r in stream_events(run_dir, "operational") if r.get("event") == "autoscale"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_auto_climbs_to_four_sessions_on_slow_pages_and_backs_off_under_a_cpu_hog(tmp_path, site):
    # reset isolation: a fresh context per job starts a renderer (~1.3 CPU-s in Chromium here), which would
    # make these waiting jobs CPU-bound on a 2-core host; a warm page per session leaves them waiting only.
    n = 32
    batch = write_batch(tmp_path, site, n, SLOW_FLOW, extra_vars={"ms": "3000"})
    config = tmp_path / "drover.toml"
    config.write_text('[engine]\njob_isolation = "reset"\n')
    state = tmp_path / "state"
    proc = start_engine("run", str(batch), "--workers", "1", "--sessions", "auto", "--config", str(config),
                        "--state-dir", str(state))
    hogs: list[subprocess.Popen] = []
    try:
        def run_dir() -> str | None:
            found = (state / "results.sqlite").exists() and last_run(state)
            return found[1] if found else None

        def reached(k: int) -> bool:
            d = run_dir()
            return d is not None and any(e["to"] >= k for e in autoscale_events(d))

        wait_for(lambda: reached(4) or proc.poll() is not None, 90, "auto to reach 4 sessions")
        assert proc.poll() is None, "the batch ended before the hog could start"
        hog_started = time.time()
        hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]

        def backed_off() -> bool:
            d = run_dir()
            return any(e["reason"].startswith("down: CPU") for e in autoscale_events(d)) or proc.poll() is not None

        wait_for(backed_off, 30, "a step down under the CPU hog")
        for h in hogs:
            h.kill()
            h.wait(10)
        out, err = proc.communicate(timeout=240)
    finally:
        for h in hogs:
            if h.poll() is None:
                h.kill()
                h.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_OK, out + err
    run_id, rdir = last_run(state)
    assert_safe(rdir, out)
    assert outcomes(state, run_id) == {f"job-{i:03d}": "passed" for i in range(n)}
    # a step down parks sessions after their job: no attempt was cut
    cut = db(state).execute("SELECT COUNT(*) FROM attempts WHERE run_id = ? AND outcome IN ('lost', 'interrupted')",
                            (run_id,)).fetchone()[0]
    assert cut == 0
    events = autoscale_events(rdir)
    ups = [e for e in events if e["reason"].startswith("up:")]
    downs = [e for e in events if e["reason"].startswith("down: CPU") and e["ts"] >= hog_started - 1]
    assert max(e["to"] for e in ups) >= 4, events
    assert downs and all(e["to"] < e["from"] for e in downs), events
    assert all("CPU" in e["reason"] and "%" in e["reason"] for e in ups + downs)  # each with its reason
    # the sessions really ran that many jobs at once (the store's attempt intervals)
    rows = db(state).execute("SELECT started_at, ended_at FROM attempts WHERE run_id = ?", (run_id,)).fetchall()
    edges = sorted([(a, 1) for a, _ in rows] + [(b, -1) for _, b in rows])
    level = peak = 0
    for _, d in edges:
        level += d
        peak = max(peak, level)
    assert peak >= 4, rows
    # the run summary shows the concurrency over time
    assert "concurrency: auto 1..8 sessions" in out, out
    summary = json.loads((Path(rdir) / "summary.json").read_text())
    conc = summary["autoscale"]
    assert conc["peak"] >= 4 and len(conc["timeline"]) == len(conc["changes"]) + 1
