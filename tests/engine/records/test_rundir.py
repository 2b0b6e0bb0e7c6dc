"""The run directory: a record per file that reads back what it wrote, one atomic write, errors that name the field."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
from pathlib import Path

import pytest

from engine.records import rundir
from engine.records.metrics import Histogram
from engine.records.rundir import (AcceptedRisk, Alert, BatchInfo, CriterionRow, Diagnostic, Drilldown, FailureRow,
                                   JobAccounting, JobCounts, LastQuarter, LatencyStats, Reading, RollbackDrill,
                                   RunDirError, SloResult, SoakPhase, SoakSummary, SupervisorMemory, Throughputs,
                                   Verdict, Window, WorkerResources)

SAMPLE = Path(__file__).parents[1] / "evidence" / "data" / "soak_run"
T0 = 1795571265.2


def a_window(index: int | None = 0, **over) -> Window:
    fields = dict(
        index=index, start=T0, end=T0 + 60.0, jobs=JobCounts(40, 2), error_rate=2 / 42, throughput=0.7,
        throughput_per_worker={"w0": 0.35, "w1": 0.35},
        latency={"flow:checkout": LatencyStats(40, 410.0, 780.0, 900.0, 950.0, 430.5, 300.0,
                                               Histogram.of([300.0, 410.0, 950.0])),
                 "phase:click": LatencyStats(120, 18.0, 41.0, 63.0, 90.0, 21.0, 2.0)},
        resources={"w0": WorkerResources(12, 310.5, 420.0, 42.0, 7.0), "w1": WorkerResources(3, fds=9.0)},
        queue_wait_max_ms=4200.0, partial=False, supervisor_rss_mb=61.4, unowned_uses=0, invalid_transitions=0,
        duplicates=1, worker_restarts=0, idle_workers_s=0.0, queued=3, mode="parallel",
        slo=(SloResult.judged("flow:checkout", "p(95) < 800", 780.0, True, False, index),
             SloResult.judged("error_rate", "rate < 0.01", None, None, True, index)))
    fields.update(over)
    return Window(**fields)


def an_alert(**over) -> Alert:
    fields = dict(ts=T0 + 5, severity="critical", rule="deadlock", metric="idle_workers_s", value=900.0,
                  threshold="idle_workers_s > 600", window=3, message="stuck", run_id="r1")
    fields.update(over)
    return Alert(**fields)


def a_verdict() -> Verdict:
    rows = (CriterionRow("duration", "the soak completed", 3620.0, "ran 1h00m20s", "completed, 1h ± 5.0%", True,
                         "ran 1h00m20s"),
            CriterionRow("throughput_vs_legacy", "parallel vs legacy", 1.9, "1.90x", ">= 5x", False, "1.90x < 5x",
                         True, "2-core box"),
            CriterionRow("no_deadlock", "no job stuck", {"unfinished": None, "over_bound": 0}, "not recorded",
                         "0 unfinished", None, "jobs.unfinished not recorded"))
    return Verdict(go=False, reasons=("no_deadlock: not measured (jobs.unfinished not recorded)",), kind="readiness",
                   run_id="r1", evaluated_at=T0 + 7300, criteria=rows,
                   accepted_risks=(AcceptedRisk("throughput_vs_legacy", "2-core box", "1.90x", 1.9, False),),
                   limits={"max_regression": 0.05, "critical_categories": ["cdp"]}, slo="r1/slo.json",
                   baseline=None, soak_reasons=("SLO breached",), soak_go=False)


def a_summary() -> SoakSummary:
    aggregate = a_window(None, mode="run", slo=(SloResult.judged("flow:checkout", "p(95) < 800", 786.0, True, False,
                                                                 "run"),))
    return SoakSummary(
        run_id="r1", started_at=T0, ended_at=T0 + 7200.5, target_duration_s=7200.0, window_s=3600.0, workers=2,
        mode="parallel+rollback-drill", status="completed", halt_reason=None, cycles=84,
        batch=BatchInfo("batch.jsonl", "5f2a" * 16, 12),
        windows=(a_window(0).without_histograms(), a_window(1, partial=True).without_histograms()),
        aggregate=aggregate, throughput=Throughputs(3.0, 3.2, 0.5),
        jobs=JobAccounting(1010, 1008, 0, 2, 0, 14.2, 4.2),
        last_quarter=LastQuarter(T0 + 5400, T0 + 7200, 250, 2, 0.008),
        supervisor_memory=SupervisorMemory(60.0, 61.0, 70.5, 73.0, 12.0, ((0.0, 60.0), (5.0, 61.0))),
        phases=(SoakPhase("parallel", T0, T0 + 2880, 380, "completed", 0),
                SoakPhase("legacy", T0 + 2880, T0 + 4320, 24, "completed", 0)),
        rollback_drill=RollbackDrill(True, T0 + 2880, T0 + 4320, 380, 24, 600, 0, 0, None),
        alerts_fired={"info": 2, "warn": 0, "critical": 0}, run_alerts=(an_alert(window="run"),), verdict=a_verdict())


RECORDS = [
    pytest.param(JobCounts(3, None), id="JobCounts"),
    pytest.param(LatencyStats(3, 1.0, 2.0, 3.0, 4.0, 2.5, 0.5, Histogram.of([1.0, 2.0, 4.0])), id="LatencyStats"),
    pytest.param(WorkerResources(2, browser_uss_mb=100.0, fds=31.0), id="WorkerResources"),
    pytest.param(SloResult.judged("phase:click", "p(99) < 300", 310.0, False, True, "run"), id="SloResult"),
    pytest.param(a_window(), id="Window"),
    pytest.param(a_window(None, jobs=None, slo=None, mode=None, supervisor_rss_mb=None), id="Window-sparse"),
    pytest.param(an_alert(), id="Alert"),
    pytest.param(an_alert(threshold=800.0, value=None, window=None), id="Alert-old-threshold"),
    pytest.param(FailureRow("cdp", 3, 2, T0, T0 + 9, ("r1/j1/a1",), "socket closed", "CDPError",
                            (("reconnect", 2), ("retry", 1)), False, 1), id="FailureRow"),
    pytest.param(FailureRow("auth", 0, 0, None, None, (), None, None, (), None, 0), id="FailureRow-zero"),
    pytest.param(CriterionRow("p95_budget", value=0.97, limit="every p(95) holds", ok=True), id="CriterionRow"),
    pytest.param(a_verdict(), id="Verdict-readiness"),
    pytest.param(Verdict(go=True, reasons=()), id="Verdict-soak"),
    pytest.param(BatchInfo("b.jsonl", None, 4), id="BatchInfo"),
    pytest.param(Throughputs(None, 3.2, None), id="Throughputs"),
    pytest.param(JobAccounting(1, 1, 0, 0, 0, 2.0, None), id="JobAccounting"),
    pytest.param(LastQuarter(T0, T0 + 1, 0, 0, None), id="LastQuarter"),
    pytest.param(SupervisorMemory(10.0, None, None, None, None, ()), id="SupervisorMemory"),
    pytest.param(SoakPhase("legacy", T0, None, 0, "skipped", 0), id="SoakPhase"),
    pytest.param(RollbackDrill(False, None, None, 1, 0, 0, 2, 1, "no job completed in the legacy phase"),
                 id="RollbackDrill"),
    pytest.param(a_summary(), id="SoakSummary"),
    pytest.param(SoakSummary(run_id="r2", rollback_drill_recorded=False), id="SoakSummary-without-drill"),
    pytest.param(Drilldown("r1/j1/a1", "failed attempt", ({"ts": T0, "stream": "domain", "message": "x"},), "r1",
                           T0 + 1, {"domain": 1, "audit": 0}, "python -m engine trace r1/j1/a1"), id="Drilldown"),
    pytest.param(Diagnostic(T0, "deadlock: stuck", {"run_id": "r1", "windows": [{"index": 3}]}), id="Diagnostic"),
]


@pytest.mark.parametrize("record", RECORDS)
def test_every_record_reads_back_what_it_wrote(record):
    wire = record.to_json()
    assert type(record).from_json(json.loads(json.dumps(wire))) == record
    assert type(record).from_json(wire, reading=Reading(lenient=True)) == record


def test_the_wire_form_is_what_the_soak_has_always_written():
    w = a_window(slo=None).to_json()
    assert list(w) == ["index", "start", "end", "jobs", "error_rate", "throughput", "throughput_per_worker",
                       "latency", "resources", "queue_wait_max_ms", "partial", "supervisor_rss_mb", "unowned_uses",
                       "invalid_transitions", "duplicates", "worker_restarts", "idle_workers_s", "queued", "mode"]
    assert w["resources"]["w1"] == {"samples": 3, "fds": 9.0}  # a figure never sampled is left out
    assert "histogram" in w["latency"]["flow:checkout"] and "histogram" not in w["latency"]["phase:click"]
    assert Verdict(go=True).to_json() == {"go": True, "reasons": []}
    assert list(a_verdict().to_json())[:3] == ["kind", "go", "run_id"]
    assert "rollback_drill" not in SoakSummary(rollback_drill_recorded=False).to_json()
    assert SoakSummary().to_json()["rollback_drill"] is None


def test_the_sample_run_directory_parses_strictly():
    s = rundir.read_summary(SAMPLE)
    assert s.run_id == "r20261125-102745-7f3a" and len(s.windows) == 2 and s.aggregate.index is None
    assert s.windows[0].latency["flow:checkout"].p95 == 780.0 and s.windows[1].jobs == JobCounts(120, 2)
    assert s.verdict.go is True and s.verdict.kind is None and len(s.verdict.criteria) == 6
    assert s.verdict.accepted_risks[0].criterion == "throughput >= 5x legacy sequential"  # "name" in older verdicts
    assert s.rollback_drill_recorded is False
    alerts = rundir.read_alerts(SAMPLE)
    assert [a.severity for a in alerts] == ["info", "warn"] and alerts[0].threshold == 800.0
    rows = rundir.read_failure_matrix(SAMPLE)
    assert [r.category for r in rows][:2] == ["navigation", "cdp"] and rows[1].containment[1] == ("browser restart", 1)
    assert SoakSummary.from_json(s.to_json()) == s
    assert all(FailureRow.from_json(r.to_json()) == r for r in rows)
    path, text = rundir.read_slo_copy(SAMPLE)
    assert path.name == rundir.SLO_COPY and "thresholds" in text
    assert rundir.read_drilldown(SAMPLE) is None and rundir.read_windows(SAMPLE) == ()


@pytest.mark.parametrize("doc, field", [
    ({"windows": [{"jobs": {"passed": "many"}}]}, "windows[0].jobs.passed"),
    ({"aggregate": {"latency": {"flow:x": {"p95": "fast"}}}}, "aggregate.latency.flow:x.p95"),
    ({"aggregate": {"duplicates": -1}}, "aggregate.duplicates"),
    ({"workers": True}, "workers"),
    ({"status": 7}, "status"),
    ({"rollback_drill": {"passed": "yes"}}, "rollback_drill.passed"),
    ({"verdict": {"criteria": [{"ok": "no"}]}}, "verdict.criteria[0].ok"),
    ({"supervisor_memory": {"samples": [[1.0]]}}, "supervisor_memory.samples[0]"),
    ({"windows": 5}, "windows"),
    ({"aggregate": {"latency": {"flow:x": {"n": 1, "histogram": {"buckets": {"x": 1}}}}}},
     "aggregate.latency.flow:x.histogram"),
])
def test_bad_input_names_the_file_and_the_field(doc, field):
    with pytest.raises(RunDirError) as info:
        SoakSummary.from_json(doc, file="runs/r1/summary.json")
    assert (info.value.path, info.value.field) == ("runs/r1/summary.json", field)
    assert str(info.value).startswith(f"runs/r1/summary.json: {field}: expected") or "histogram" in field
    assert type(info.value).category == "input"
    reading = Reading(lenient=True)
    SoakSummary.from_json(doc, file="runs/r1/summary.json", reading=reading)  # lenient: no data, and said why
    assert [i.at for i in reading.issues] == [field]


def test_lenient_reading_keeps_what_it_can_and_says_what_it_skipped():
    reading = Reading(lenient=True)
    s = SoakSummary.from_json({"windows": [{"index": 0, "error_rate": "bad", "throughput": float("nan")}, 3],
                               "aggregate": {"latency": {"phase:click": [1]}}}, file="/x/summary.json",
                              reading=reading)
    assert s.windows[0].error_rate is None and s.windows[0].throughput is None  # NaN is "no value", not an issue
    assert s.windows[1] == Window() and s.aggregate.latency == {}
    assert sorted(str(i) for i in reading.issues) == [
        "summary.json: aggregate.latency.phase:click: expected an object, got a list (skipped)",
        "summary.json: windows[0].error_rate: expected a number, got 'bad'",
        "summary.json: windows[1]: expected an object, got 3"]


def test_a_file_that_is_not_json_or_not_an_object_is_an_error_in_both_modes(tmp_path):
    with pytest.raises(RunDirError, match="no such directory"):
        rundir.read_summary(tmp_path / "missing")
    with pytest.raises(RunDirError, match=f"no {rundir.SUMMARY} here"):
        rundir.read_summary(tmp_path)
    (tmp_path / rundir.SUMMARY).write_text("{not json")
    with pytest.raises(RunDirError, match=r"the soak summary is not JSON \(line 1, column 2"):
        rundir.read_summary(tmp_path, Reading(lenient=True))
    (tmp_path / rundir.SUMMARY).write_bytes(b'{"run_id": "\xff"}')
    with pytest.raises(RunDirError, match="not UTF-8"):
        rundir.read_summary(tmp_path)
    (tmp_path / rundir.SUMMARY).write_text("[]")
    with pytest.raises(RunDirError, match="expected a JSON object, found list"):
        rundir.read_summary(tmp_path)
    (tmp_path / rundir.FAILURE_MATRIX).write_text("7")
    with pytest.raises(RunDirError, match="expected a list of rows"):
        rundir.read_failure_matrix(tmp_path)


def test_torn_lines_are_skipped_when_lenient_and_refused_when_strict(tmp_path):
    good = json.dumps(an_alert().to_json())
    (tmp_path / rundir.ALERTS).write_text(f'{good}\n{{"ts": 1, "sev\n[1, 2]\n\n{good}\n')
    reading = Reading(lenient=True)
    assert rundir.read_alerts(tmp_path, reading) == (an_alert(), an_alert())
    assert [str(i) for i in reading.issues] == ["alerts.jsonl line 2: not JSON (skipped)",
                                                "alerts.jsonl line 3: not an object (skipped)"]
    with pytest.raises(RunDirError) as info:
        rundir.read_alerts(tmp_path)
    assert info.value.field == "line 2"
    assert rundir.read_alerts(tmp_path / "nowhere") is None


def test_the_failure_matrix_also_reads_its_older_shapes(tmp_path):
    row = FailureRow("cdp", 1, 1, T0, T0, ("r1/j1/a1",), "x", None, (("retry", 1),), True, 0)
    (tmp_path / rundir.FAILURE_MATRIX).write_text(json.dumps({"rows": [row.to_json()]}))
    assert rundir.read_failure_matrix(tmp_path) == (row,)
    by_category = {"cdp": {k: v for k, v in row.to_json().items() if k != "category"}}
    (tmp_path / rundir.FAILURE_MATRIX).write_text(json.dumps(by_category))
    assert rundir.read_failure_matrix(tmp_path) == (row,)
    (tmp_path / rundir.FAILURE_MATRIX).write_text(json.dumps([{"category": "auth", "containment": "quarantine"}]))
    assert rundir.read_failure_matrix(tmp_path)[0].containment == (("quarantine", None),)


def test_the_summary_and_the_windows_go_through_the_run_directory(tmp_path):
    summary = a_summary()
    rundir.write_summary(tmp_path, summary)
    assert rundir.read_summary(tmp_path) == summary
    for w in summary.windows:
        rundir.append_window(tmp_path, w)
    assert rundir.read_windows(tmp_path) == summary.windows
    rundir.write_failure_matrix(tmp_path, [RECORDS[8].values[0]])
    assert rundir.read_failure_matrix(tmp_path) == (RECORDS[8].values[0],)
    drill = RECORDS[-2].values[0]
    rundir.write_drilldown(tmp_path, drill)
    assert rundir.read_drilldown(tmp_path) == drill
    (tmp_path / rundir.DRILLDOWN).write_text(json.dumps([{"ts": 1.0, "stream": "audit"}]))  # a bare record list
    assert rundir.read_drilldown(tmp_path).records == ({"ts": 1.0, "stream": "audit"},)


def test_replacing_the_verdict_keeps_every_other_key_and_value(tmp_path):
    doc = {"run_id": "r1", "windows": [{"index": 0, "error_rate": float("nan")}], "newer_key": {"a": [1, 2]},
           "verdict": {"go": False, "reasons": ["SLO breached"]}}
    (tmp_path / rundir.SUMMARY).write_text(json.dumps(doc))
    seen = []

    def make(previous):
        seen.append(previous)
        return a_verdict()

    assert rundir.replace_verdict(tmp_path, make) == a_verdict()
    assert seen == [Verdict(go=False, reasons=("SLO breached",))]
    text = (tmp_path / rundir.SUMMARY).read_text()
    back = json.loads(text)
    assert "NaN" in text and back["newer_key"] == {"a": [1, 2]} and back["verdict"] == a_verdict().to_json()


def test_the_atomic_write_keeps_the_mode_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / rundir.REPORT
    rundir.write_atomic(path, b"one")
    assert stat.S_IMODE(path.stat().st_mode) == rundir.FILE_MODE
    os.chmod(path, 0o600)
    rundir.write_report(tmp_path, "two")
    assert path.read_text() == "two" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [rundir.REPORT]
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError):
        rundir.write_atomic(tmp_path / "dir", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", rundir.REPORT]
    with pytest.raises(FileNotFoundError):
        rundir.write_atomic(tmp_path / "gone" / "x.json", b"x")


def test_diagnostics_never_overwrite_each_other(tmp_path):
    d = Diagnostic(T0, "halted", {"path": tmp_path, "tags": {"b", "a"}, "alert": an_alert()})
    first, second = rundir.write_diagnostic(tmp_path, d), rundir.write_diagnostic(tmp_path, d)
    assert first != second and rundir.diagnostics(tmp_path) == [first, second]
    back = rundir.read_diagnostic(first)
    assert back.reason == "halted" and back.context["tags"] == ["a", "b"] and back.context["path"] == str(tmp_path)
    assert back.context["alert"] == an_alert().to_json()


def test_the_alerts_file_appends_whole_records(tmp_path):
    f = rundir.alerts_file(tmp_path)
    f.append(an_alert().to_json())
    f.append(an_alert(rule="again").to_json())
    f.close()
    assert [a.rule for a in rundir.read_alerts(tmp_path)] == ["deadlock", "again"]
    assert stat.S_IMODE((tmp_path / rundir.ALERTS).stat().st_mode) & 0o007 == 0
    gone = rundir.alerts_file(tmp_path / "gone")
    with pytest.raises(FileNotFoundError):
        gone.append(an_alert().to_json())


def test_the_error_keeps_its_facts_across_a_process_boundary():
    err = pickle.loads(pickle.dumps(RunDirError("/r/summary.json", "windows[2].index", "expected a whole number")))
    assert (err.path, err.field, err.problem) == ("/r/summary.json", "windows[2].index", "expected a whole number")
    assert str(err) == "/r/summary.json: windows[2].index: expected a whole number"


def test_every_file_name_and_the_streams(tmp_path):
    assert rundir.stream_path(tmp_path, "audit") == tmp_path / "audit.jsonl"
    assert rundir.run_lock_path(tmp_path).name == rundir.SUPERVISOR_LOCK
    shutil.copytree(SAMPLE, tmp_path / "run")
    for name in (rundir.SUMMARY, rundir.ALERTS, rundir.FAILURE_MATRIX, rundir.SLO_COPY):
        assert (tmp_path / "run" / name).is_file(), name
