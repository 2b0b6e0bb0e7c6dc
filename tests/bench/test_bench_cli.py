"""``python -m bench``: smoke runs of every command, and the regression gate that must fail on a slowdown.

No timing is asserted except the gate's own verdict: a run with a large
injected per-step delay (1.5 s after each of the form flow's 6 steps, so
at least 9 s more per job on a job of about a second) is compared against
a baseline saved from an unchanged run and must fail.  The gate rule itself
is tested on synthetic numbers.  The commands run as subprocesses, the way
an operator runs them (and so the engine's forked workers do not start
from the test process).
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench import _gate
from bench._fingerprint import fingerprint
from bench._flows import BATCH_VERSION, FORM_FLOW, job_flows, with_delay
from bench._run import worker_counts
from engine.cli.console import Console

ROOT = Path(__file__).resolve().parents[2]


def real_chromium(fn):
    return pytest.mark.chromium(pytest.mark.slow(fn))


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


# -- the gate rule on synthetic numbers ------------------------------------------------------------


@pytest.mark.parametrize("baseline, current, control, passed", [
    ([10.0, 10.1, 9.9], [8.0, 8.1, 7.9], None, False),      # 20% slower, far beyond a 0.2 range
    ([10.0, 10.1, 9.9], [9.7, 9.8, 9.6], None, True),       # 3% slower: under the 5% limit
    ([10.0, 12.0, 8.0], [9.0, 9.2, 8.8], None, True),       # 10% slower, but the baseline's range is 4.0
    ([10.0, 10.1, 9.9], [12.0, 12.5, 11.0], None, True),    # faster
    ([10.0], [9.0], None, False),                           # one run each: no noise estimate, 10% decides
    # with re-runs of the baseline configuration alongside, they are the reference (same machine load):
    ([10.0, 10.1, 9.9], [9.0, 9.1, 8.9], [10, 13, 7], True),  # 10% below, but the re-runs spread 6.0
    ([10.0, 10.1, 9.9], [6.0, 6.1, 5.9], [7.0, 7.1, 6.9], False),  # machine 30% slower now; still 14% below it
    ([10.0, 10.1, 9.9], [8.0, 8.1, 7.9], [8.2, 8.1, 8.3], True),   # 20% below the file, but the machine is too
])
def test_gate_rule(baseline, current, control, passed) -> None:
    verdict = _gate.evaluate(baseline, current, control)
    assert verdict.passed is passed
    assert verdict.lines[-1].startswith("PASS" if passed else "FAIL")


def test_an_ab_gate_measures_noise_on_back_to_back_pairs() -> None:
    # measured here (2-core VM, 20 ms per step injected): every pair slower, but the machine drifted so much
    # that the unpaired ranges (0.17 jobs/s) hid the 0.16 jobs/s drop
    control = [1.741, 1.752, 1.767, 1.809, 1.910]
    current = [1.630, 1.587, 1.607, 1.727, 1.630]
    v = _gate.evaluate([1.861] * 5, current, control)
    assert not v.passed and "back-to-back pairs" in v.lines[1] and 0.05 < v.noise < 0.1
    # the same drop, but pairs that disagree about it: not a measurable regression
    v = _gate.evaluate([1.861] * 5, [1.63, 1.95, 1.50, 1.80, 1.30], control)
    assert v.passed and "within the run-to-run noise" in v.lines[-1]
    assert _gate.paired_margin([1.0]) == 0.0 and _gate.paired_margin([0.1, 0.1, 0.1]) == pytest.approx(0.0, abs=1e-12)


def test_gate_names_the_noise_and_the_drift() -> None:
    v = _gate.evaluate([10.0], [7.0], [8.0])
    assert not v.passed and v.noise == 0.0
    assert any("no noise estimate" in w for w in v.warnings)
    assert any("-20.0% off the saved baseline" in w for w in v.warnings)
    assert "12.5% against the baseline configuration re-run now" in v.lines[-1]
    assert "machine drift" in v.lines[0]
    within = _gate.evaluate([10.0, 11.0], [9.4, 9.6], threshold=0.05)
    assert within.passed and "within the run-to-run noise" in within.lines[-1]


def test_gate_needs_runs() -> None:
    with pytest.raises(ValueError):
        _gate.evaluate([], [1.0])


def test_different_machine_warns_loudly() -> None:
    now = fingerprint()
    doc = {"fingerprint": {**now, "cpu_model": "Some Other CPU", "cores": 64}}
    warnings = _gate.machine_warnings(doc, now)
    assert "DIFFERENT MACHINE" in "\n".join(warnings)
    assert any("cores: baseline 64" in w for w in warnings)
    assert _gate.machine_warnings({"fingerprint": now}, now) == []


def test_baseline_files_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(_gate.BaselineError, match="not JSON"):
        _gate.load(bad, BATCH_VERSION)
    other = tmp_path / "other.json"
    other.write_bytes(orjson.dumps({"kind": "something else"}))
    with pytest.raises(_gate.BaselineError, match="not a Drover bench baseline"):
        _gate.load(other, BATCH_VERSION)
    with pytest.raises(_gate.BaselineError, match="cannot read"):
        _gate.load(tmp_path / "missing.json", BATCH_VERSION)


def test_slowdown_is_a_real_step_after_every_step() -> None:
    slow = with_delay(FORM_FLOW, 20)
    assert len(slow["steps"]) == 2 * len(FORM_FLOW["steps"])
    injected = slow["steps"][1::2]
    assert all(s["type"] == "waitForExpression" and "setTimeout" in s["expression"] for s in injected)
    assert injected[1]["phase"] == "Open" and "phase" not in injected[0]
    assert with_delay(FORM_FLOW, 0) is FORM_FLOW


def test_batch_pattern_and_worker_counts() -> None:
    assert job_flows(6, ("form", "canvas")) == ["form", "form", "canvas"] * 2
    assert job_flows(2, ("canvas",)) == ["canvas", "canvas"]
    assert worker_counts(4) == [1, 2, 4] and worker_counts(6) == [1, 2, 4, 6] and worker_counts(1) == [1]


def test_peer_without_playwright_explains_how_to_install(monkeypatch) -> None:
    from bench import _peer

    monkeypatch.setattr(_peer, "playwright_version", lambda: None)
    out, err = io.StringIO(), io.StringIO()
    code = _peer.peer_command(argparse.Namespace(), Console(out, err))
    assert code == 5
    assert "pip install playwright" in err.getvalue() and "executable_path" in err.getvalue()


# -- the commands, end to end on real Chromium -----------------------------------------------------


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """A smoke run that saves a baseline (2 form jobs, 1 worker)."""
    path = tmp_path_factory.mktemp("bench") / "baseline.json"
    out = tmp_path_factory.getbasetemp() / "run.json"
    r = bench("run", "--smoke", "--jobs", "2", "--save-baseline", str(path), "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    for text in ("throughput:", "latency per flow", "latency per phase", "coordination", "CPU", "peak memory",
                 "baseline saved"):
        assert text in r.stdout, (text, r.stdout)
    summary = orjson.loads(out.read_bytes())
    assert summary["jobs"] == {"passed": 2, "failed": 0, "retries": summary["jobs"]["retries"]}
    assert summary["coordination"]["commands_per_job"]["form"] > 0
    assert "Open" in summary["latency_ms"]["per_phase"]["form"]
    return path


@real_chromium
def test_run_saves_a_baseline_with_a_fingerprint(baseline: Path) -> None:
    doc = _gate.load(baseline, BATCH_VERSION)
    assert doc["fingerprint"]["cores"] == os.cpu_count()
    assert doc["config"] == {"workers": 1, "jobs": 2, "flows": ["form"], "isolation": "context",
                             "inject_delay_ms": 0.0}
    assert len(doc["summary"]["throughput"]["values"]) == 1


@real_chromium
def test_gate_fails_on_a_deliberate_slowdown(baseline: Path) -> None:
    r = bench("run", "--smoke", "--inject-delay-ms", "1500", "--compare", str(baseline))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "gate: FAIL: throughput regressed" in r.stdout
    assert "re-run alongside" in r.stdout  # the unchanged configuration ran in the same invocation


@real_chromium
def test_compare_refuses_another_configuration(baseline: Path) -> None:
    r = bench("run", "--smoke", "--workers", "2", "--compare", str(baseline))
    assert r.returncode == 2 and "not comparable" in r.stderr


@real_chromium
def test_scale_smoke() -> None:
    r = bench("scale", "--smoke", "--max-workers", "2", "--jobs-per-worker", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"]


@pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                    reason="Playwright for Python is not installed (optional extra: pip install playwright)")
@real_chromium
def test_peer_smoke(tmp_path: Path) -> None:
    out = tmp_path / "peer.json"
    r = bench("peer", "--smoke", "--jobs", "2", "--latency-rounds", "20", "--modes",
              "drover:reset,playwright:context", "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ratio Drover/Playwright:" in r.stdout and "ratio Drover/Playwright latency" in r.stdout
    assert "p95 Drover reset:" in r.stdout and "x PW ctx" in r.stdout
    rows = orjson.loads(out.read_bytes())["runners"]
    assert set(rows) == {"Drover reset", "Playwright context"}
    for row in rows.values():  # every runner: throughput, p95, CPU per job and CDP commands per job
        assert row["throughput"]["values"][0] > 0 and row["job_ms"]["n"] == 2 and row["job_ms"]["p95"] > 0
        assert row["cpu_per_job_s"] > 0 and row["cdp_commands_per_job"] > 5, row
    assert rows["Drover reset"]["p95_vs"]["playwright"] == "Playwright context"


def test_peer_matrix_ratios_and_p95_by_round() -> None:
    from bench._peer import Runner, matrix

    def run(throughput: float, ms: list[float], cpu_s: float, cdp: float) -> dict:
        return {"throughput": throughput, "job_ms": [("form", m) for m in ms], "failed": 0, "cpu_s": cpu_s,
                "passed": len(ms), "cdp_per_job": cdp, "errors": []}

    rows = matrix({Runner("drover", "reset"): [run(2.0, [100, 200, 300], 1.2, 41), run(3.0, [100, 150], 0.8, 43)],
                   Runner("playwright", "context"): [run(1.0, [300, 400], 3.0, 110), run(1.0, [120, 130], 3.0, 110)]})
    reset, pw = rows["Drover reset"], rows["Playwright context"]
    assert reset["vs_playwright_context"]["per_round"] == [2.0, 3.0]
    assert reset["vs_playwright_context"]["ratio_of_means"] == 2.5
    assert abs(reset["vs_playwright_context"]["geometric_mean"] - 6 ** 0.5) < 1e-9
    assert reset["cpu_per_job_s"] == 2.0 / 5 and pw["cpu_per_job_s"] == 6.0 / 4
    assert reset["cdp_commands_per_job"] == 42 and pw["cdp_commands_per_job"] == 110
    assert reset["p95_per_round"] == [300, 150] and reset["p95_vs"]["playwright_p95_per_round"] == [400, 130]
    assert reset["p95_vs"]["rounds_not_worse"] == 1  # 300 <= 400, but 150 > 130
    assert "p95_vs" not in pw


def test_peer_modes_and_round_order() -> None:
    from bench._peer import Runner, modes_arg, round_order

    runners = modes_arg("all")
    assert [r.name for r in runners] == ["Drover context", "Drover reset", "Drover page", "Playwright context",
                                         "Playwright page"]
    assert Runner("drover", "reset").peer_isolation == "context" and Runner("drover", "page").peer_isolation == "page"
    for bad in ("playwright:reset", "drover:context", "selenium:page", "drover:nope,playwright:page"):
        with pytest.raises(argparse.ArgumentTypeError):
            modes_arg(bad)
    orders = [round_order(runners, i) for i in range(1, 6)]
    assert all(sorted(o, key=runners.index) == list(runners) for o in orders)  # everyone runs every round
    for runner in runners:  # and takes every position once over five rounds
        assert sorted(o.index(runner) for o in orders) == list(range(5))
    two = modes_arg("drover:reset,playwright:context")
    assert [round_order(two, i) for i in (1, 2)] == [list(two), list(two)[::-1]]  # A,B then B,A
