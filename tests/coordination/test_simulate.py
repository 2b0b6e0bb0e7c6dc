"""Seeded contention simulations: real processes compete; every invariant is checked after every event."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coordination.simulate import SimulationConfig, SimulationReport, _Model, run_simulation

REPO = Path(__file__).resolve().parents[2]


def _explain(report: SimulationReport) -> str:
    return "\n".join(report.lines())  # includes the seed and the replay command when it fails


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_eight_processes_three_credentials_four_slots(tmp_path: Path, seed: int) -> None:
    cfg = SimulationConfig(procs=8, credentials=3, slots=4, seconds=2.5, seed=seed, directory=str(tmp_path / "sim"))
    report = run_simulation(cfg)
    assert report.ok, _explain(report)
    assert report.lock_acquisitions > 50 and report.slot_claims > 20, _explain(report)
    assert report.invariants_checked > report.events  # more than one check per event
    assert report.max_lock_wait < cfg.lock_timeout and report.max_queue_wait < cfg.slot_timeout


@pytest.mark.parametrize("seed", [11, 12])
def test_random_holders_killed_with_sigkill(tmp_path: Path, seed: int) -> None:
    cfg = SimulationConfig(procs=8, credentials=3, slots=4, seconds=3.0, seed=seed, kill_rate=3.0,
                           directory=str(tmp_path / "sim"))
    report = run_simulation(cfg)
    assert report.ok, _explain(report)
    assert report.kills >= 1, _explain(report)
    assert report.reclaims >= 1 or report.recovered_locks >= 1, _explain(report)


def test_the_checker_can_fail() -> None:
    """A second holder, a falling epoch, a reclaim from a live owner: each is a violation."""
    m = _Model(SimulationConfig())
    ev = {"w": 1, "t": 0.0}
    m.apply({**ev, "k": "cred_acq", "pid": 10, "res": "c", "ep": 5, "wait": 0.0})
    m.apply({**ev, "k": "cred_acq", "pid": 11, "res": "c", "ep": 4, "wait": 0.0})
    m.apply({**ev, "k": "slot_claim", "pid": 10, "slot": 0, "ep": 3, "wait": 0.0})
    m.apply({**ev, "k": "reclaim", "pid": 1, "slot": 0, "dead_pid": 10, "old_ep": 3, "new_ep": 4})
    m.apply({**ev, "k": "timeout", "pid": 12, "res": "c", "waited": 99.0})
    text = "\n".join(m.violations)
    assert "while held by (10, 5)" in text
    assert "epoch went from 5 to 4" in text
    assert "reclaimed from live pid 10" in text
    assert "starvation" in text
    # ...while a dead holder's lock taken over after its kill line is fine:
    ok = _Model(SimulationConfig())
    ok.apply({**ev, "k": "cred_acq", "pid": 10, "res": "c", "ep": 1, "wait": 0.0})
    ok.apply({**ev, "k": "kill", "pid": 1, "victim": 10, "victim_worker": 1})
    ok.apply({**ev, "k": "cred_acq", "pid": 11, "res": "c", "ep": 2, "wait": 0.0})
    assert ok.violations == [] and ok.checks == 6  # epoch, wait bound, single holder: twice


def test_a_failing_report_prints_its_seed_and_replay_command() -> None:
    cfg = SimulationConfig(procs=3, seconds=1.0, seed=987, kill_rate=0.5)
    report = SimulationReport(
        config=cfg, violations=("slot 0 claimed twice",), events=10, invariants_checked=20, table_checks=4,
        slot_claims=1, lock_acquisitions=1, kills=0, reclaims=0, recovered_locks=0, max_lock_wait=0.0,
        max_queue_wait=0.0, p50_lock_wait=0.0, p99_lock_wait=0.0, p99_queue_wait=0.0, retries=0, elapsed=1.0,
        directory="/tmp/x",
    )
    text = _explain(report)
    assert "result FAIL" in text and "seed 987" in text and "violation: slot 0 claimed twice" in text
    assert "replay: python -m coordination.simulate --procs 3" in text and "--seed 987 --kill-rate 0.5" in text


def test_cli_prints_the_figures(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coordination.simulate", "--procs", "3", "--seconds", "1", "--seed", "3",
         "--kill-rate", "1", "--dir", str(tmp_path / "cli")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for needle in ("invariants checked", "max lock wait", "p99 wait", "seed 3", "result PASS"):
        assert needle in done.stdout, done.stdout
    assert done.stderr == ""
