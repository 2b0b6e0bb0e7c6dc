"""The metrics file, the JUnit file and a run's summary record, without a browser: exact buckets, escaping, round trips."""
from __future__ import annotations

import math
import random

import pytest

from engine.evidence.outputs.metrics import EDGES_MS, Family, Figures, cumulative, families, render
from engine.records import rundir
from engine.records.metrics import Histogram, bucket_upper_ms
from engine.records.rundir import BatchRunSummary, FirstFailure, RunJobs, Window


def test_every_le_edge_is_a_bucket_edge_and_its_count_is_exact():
    rng = random.Random(7)
    values = [rng.lognormvariate(5, 2) for _ in range(5000)]
    h = Histogram.of(values)
    for le_s, n in cumulative(h)[:-1]:
        edge_ms = le_s * 1000
        assert any(math.isclose(edge_ms, bucket_upper_ms(b)) for b in range(4000)), edge_ms
        assert n == sum(1 for v in values if v < edge_ms), le_s
    assert cumulative(h)[-1] == (math.inf, 5000)
    assert list(EDGES_MS) == sorted(EDGES_MS) and all(0.98 < e / b / 1000 <= 1.0 for e, b in zip(
        EDGES_MS, (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)))


def _figures(flow: str = "checkout") -> Figures:
    h = Histogram.of([120.0, 480.0, 3100.0])
    agg = Window(jobs=rundir.JobCounts(3, 1), error_rate=0.25, throughput=1.5,
                 latency={f"flow:{flow}": rundir.LatencyStats(3, histogram=h), "phase:click": rundir.LatencyStats(
                     3, histogram=Histogram.of([5.0, 6.0, 7.0]))},
                 unowned_uses=0, invalid_transitions=0, duplicates=0, worker_restarts=2,
                 slo=(rundir.SloResult.judged(f"flow:{flow}", "p(95) < 800", 3100.0, False, False, "run"),))
    return Figures("run", "r1", "parallel", "completed", "local", 2, 2, 3, {"auth": 1}, 0,
                   {"passed": 3, "failed": 1}, agg, 12.5, {"audit": 0})


@pytest.mark.parametrize("openmetrics", [False, True])
def test_both_formats_parse_with_prometheus_client_and_keep_odd_label_values(openmetrics):
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    odd = 'check "out"\\ and\nmore'
    text = render(families(_figures(odd), now=1.0), openmetrics=openmetrics).decode()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert parsed["drover_jobs"].type == "counter"
    assert {(s.labels["outcome"], s.labels.get("category")): s.value for s in parsed["drover_jobs"].samples} == {
        ("passed", None): 3, ("failed", "auth"): 1}
    flow = parsed["drover_flow_duration_seconds"]
    assert {s.labels["flow"] for s in flow.samples} == {odd}
    count = [s.value for s in flow.samples if s.name.endswith("_count")]
    total = [s.value for s in flow.samples if s.name.endswith("_sum")]
    assert count == [3] and total == [pytest.approx(3.7)]
    assert parsed["drover_worker_restarts"].samples[0].value == 2
    assert parsed["drover_slo_threshold_passed"].samples[0].value == 0
    assert ("drover_run" if openmetrics else "drover_run_info") in parsed
    assert text.endswith("# EOF\n") == openmetrics


def test_a_family_without_samples_is_left_out():
    text = render([Family("drover_empty", "counter", "nothing"), Family("drover_x", "gauge", "x", samples=[({}, 1)])],
                  openmetrics=False).decode()
    assert "drover_empty" not in text and "drover_x 1" in text


def test_the_run_summary_record_round_trips_and_is_told_from_a_soaks(tmp_path):
    agg = _figures().aggregate
    rec = BatchRunSummary(run_id="r1", started_at=1.0, ended_at=2.0, elapsed_s=1.0, status="completed",
                          mode="parallel", backend="local", workers=2, concurrency=2, resumed=False,
                          batch=rundir.BatchInfo("/b.jsonl", "ab", 4),
                          jobs=RunJobs(4, 3, 1, 0, 5, 1, {"auth": 1}, {"passed": 3, "failed": 1, "retry": 1}),
                          aggregate=agg, jobs_per_worker={"w0": 2, "w1": 2}, lost_attempts=0, reclaimed_slots=0,
                          lock_wait={"count": 0.0}, telemetry_lost={"audit": 0},
                          first_failure=FirstFailure("r1/j1/a1", "j1", 1, "auth", "wrong password", "2:click", 1.5),
                          slo="/slo.json", verdict=rundir.Verdict(go=False, reasons=("SLO breached: x",)))
    rundir.write_run_summary(tmp_path, rec)
    assert rundir.summary_kind(tmp_path) == "run"
    assert rundir.read_run_summary(tmp_path) == rec
    with pytest.raises(rundir.RunDirError, match="batch run's summary, not a soak's"):
        rundir.read_summary(tmp_path)
    soak_dir = tmp_path / "soak"
    soak_dir.mkdir()
    rundir.write_summary(soak_dir, rundir.SoakSummary(run_id="s1"))
    assert rundir.summary_kind(soak_dir) == "soak"
    with pytest.raises(rundir.RunDirError, match="kind: expected 'run'"):
        rundir.read_run_summary(soak_dir)
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(rundir.RunDirError, match="no summary.json here; give the run directory of a run or a soak"):
        rundir.summary_kind(empty)
