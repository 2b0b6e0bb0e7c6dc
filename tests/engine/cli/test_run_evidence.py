"""Evidence for every run, and what CI and monitoring read from it: ``run --slo --junit --metrics --summary-export``.

One real run (forked worker, Chromium, SQLite) of three passing jobs and one
that fails at a click, with a breached SLO threshold; each test reads one of
its outputs with the consumer a CI server or a scraper would use.  A second,
legacy-path run with a threshold that holds checks exit 0, OpenMetrics and
a ``[browser] extra_args`` flag that reaches the browser.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.cli.exit_codes import EXIT_INPUT, EXIT_NO_GO, EXIT_OK
from tests.engine.evidence.sample_runs import read_page, render_in_chromium
from tests.engine.execution.test_run import LIGHT_FLOW, engine

BROKEN_FLOW = {"title": "broken", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/form.html", "phase": "Open"},
    {"type": "click", "selectors": [["#no-such-button"]], "timeout": 1500, "phase": "Act"},
]}
LANG_FLOW = {"title": "lang", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/form.html"},
    {"type": "waitForExpression", "expression": "navigator.languages[0] === 'de-DE'", "timeout": 3000},
]}


def write_jobs(tmp: Path, site, jobs: list[tuple[str, dict]], name: str = "batch.jsonl") -> Path:
    for _, flow in jobs:
        (tmp / f"{flow['title']}.json").write_text(json.dumps(flow))
    batch = tmp / name
    batch.write_text("".join(json.dumps({"id": job_id, "flow": f"{flow['title']}.json", "retries": 0,
                                         "vars": {"BASE_URL": site.base_url, "name": job_id}}) + "\n"
                             for job_id, flow in jobs))
    return batch


@pytest.fixture(scope="module")
def breached(tmp_path_factory, site):
    """One run with 1 failed job and a breached threshold, its state directory given by DROVER_STATE_DIR."""
    tmp = tmp_path_factory.mktemp("evidence")
    batch = write_jobs(tmp, site, [("job-0", LIGHT_FLOW), ("job-1", LIGHT_FLOW), ("bad-0", BROKEN_FLOW),
                                   ("job-2", LIGHT_FLOW)])
    slo = tmp / "slo.json"
    slo.write_text(json.dumps({"thresholds": {"flow:light": ["p(95) < 1"], "unowned_uses": ["count == 0"],
                                              "error_rate": ["rate < 0.5"]}}))
    state = tmp / "state"
    out = {"junit": tmp / "junit.xml", "metrics": tmp / "drover.prom", "export": tmp / "k6.json"}
    res = engine("run", str(batch), "--workers", "1", "--slo", str(slo), "--junit", str(out["junit"]),
                 "--metrics", str(out["metrics"]), "--summary-export", str(out["export"]), timeout=600,
                 env={**os.environ, "DROVER_STATE_DIR": str(state)})
    [run_dir] = list((state / "runs").iterdir())
    return {"res": res, "state": state, "run_dir": run_dir, "tmp": tmp, **out}


@pytest.mark.chromium
def test_a_breached_slo_exits_4_and_names_the_threshold_on_stderr(breached):
    res = breached["res"]
    assert res.returncode == EXIT_NO_GO, res.stdout + res.stderr
    assert "error: SLO breached: flow:light p(95) < 1: measured " in res.stderr, res.stderr
    assert "unowned_uses" not in res.stderr and "error_rate" not in res.stderr  # only the breached one is named
    summary = json.loads((breached["run_dir"] / "summary.json").read_text())
    assert summary["kind"] == "run" and summary["verdict"]["go"] is False
    assert summary["jobs"] | {"failed_by_category": None, "attempts_by_outcome": None} == {
        "total": 4, "passed": 3, "failed": 1, "pending": 0, "attempts": 4, "retries": 0,
        "failed_by_category": None, "attempts_by_outcome": None}
    assert summary["jobs"]["failed_by_category"] == {"navigation": 1}
    assert summary["first_failure"]["job_id"] == "bad-0" and summary["first_failure"]["step"]
    by_threshold = {(r["metric"], r["expr"]): r["status"] for r in summary["aggregate"]["slo"]}
    assert by_threshold == {("flow:light", "p(95) < 1"): "fail", ("unowned_uses", "count == 0"): "pass",
                            ("error_rate", "rate < 0.5"): "pass"}
    assert (breached["run_dir"] / "slo.json").is_file() and (breached["run_dir"] / "failure_matrix.json").is_file()


@pytest.mark.chromium
def test_the_junit_file_has_one_testcase_per_job_and_one_failure_for_the_failed_job(breached):
    from junitparser import Failure, JUnitXml

    xml = JUnitXml.fromfile(str(breached["junit"]))
    suites = {s.name: s for s in xml}
    jobs = next(s for name, s in suites.items() if name.startswith("drover run "))
    cases = {c.name: c for c in jobs}
    assert sorted(cases) == ["bad-0", "job-0", "job-1", "job-2"]
    assert jobs.tests == 4 and jobs.failures == 1 and jobs.errors == 0 and jobs.skipped == 0
    failed = [c for c in cases.values() if not c.is_passed]
    assert [c.name for c in failed] == ["bad-0"]
    [failure] = failed[0].result
    assert isinstance(failure, Failure) and failure.type == "navigation"
    assert failure.message.startswith("[navigation] ") and "click" in failure.message
    assert "[artifacts:" not in failure.message
    text = failure.text
    assert "category: navigation" in text and "step: " in text and "trace: python -m engine trace" in text
    artifacts = [line.strip() for line in text.splitlines() if line.startswith("  ")]
    assert artifacts and all(Path(a).is_file() for a in artifacts), text
    assert cases["bad-0"].classname == "broken" and cases["job-0"].classname == "light"
    # the SLO thresholds are a suite of their own: the breached one is its one failure
    slo = next(s for name, s in suites.items() if name.startswith("drover SLO "))
    assert slo.tests == 3 and slo.failures == 1


@pytest.mark.chromium
def test_the_metrics_file_parses_and_its_counters_equal_the_results_table(breached):
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(breached["metrics"].read_text())}
    res = engine("results", "last", "--format", "json", env={**os.environ, "DROVER_STATE_DIR": str(breached["state"])})
    assert res.returncode == 0, res.stderr
    table = json.loads(res.stdout)["jobs"]
    jobs = families["drover_jobs"]  # the parser names a counter's family without _total; samples keep it
    assert jobs.type == "counter" and {s.name for s in jobs.samples} == {"drover_jobs_total"}
    counted = {(s.labels["outcome"], s.labels.get("category")): s.value for s in jobs.samples}
    expected: dict[tuple[str, str | None], float] = {}
    for row in table:
        if row["outcome"] == "passed":
            expected[("passed", None)] = expected.get(("passed", None), 0) + 1
        elif row["outcome"] == "failed":
            key = ("failed", row["category"])
            expected[key] = expected.get(key, 0) + 1
    assert counted == expected == {("passed", None): 3, ("failed", "navigation"): 1}
    assert families["drover_jobs_pending"].samples[0].value == sum(r["outcome"] == "pending" for r in table) == 0
    attempts = {s.labels["outcome"]: s.value for s in families["drover_attempts"].samples}
    assert sum(attempts.values()) == sum(r["attempts"] for r in table)
    # histograms: per flow and per phase, cumulative `le` buckets ending in +Inf == _count == jobs of that flow
    for name, label in (("drover_flow_duration_seconds", "flow"), ("drover_phase_duration_seconds", "phase")):
        fam = families[name]
        assert fam.type == "histogram"
        series = {s.labels[label] for s in fam.samples}
        for key in series:
            buckets = [(float(s.labels["le"]), s.value) for s in fam.samples
                       if s.name.endswith("_bucket") and s.labels[label] == key]
            assert [le for le, _ in buckets] == sorted(le for le, _ in buckets) and buckets[-1][0] == float("inf")
            assert all(a <= b for (_, a), (_, b) in zip(buckets, buckets[1:]))
            count = next(s.value for s in fam.samples if s.name.endswith("_count") and s.labels[label] == key)
            assert buckets[-1][1] == count
    flows = {s.labels["flow"]: s.value for s in families["drover_flow_duration_seconds"].samples
             if s.name.endswith("_count")}
    assert flows == {"light": 3, "broken": 1}
    assert {"click", "navigate", "change"} <= {s.labels["phase"] for s in families["drover_phase_duration_seconds"].samples}
    assert families["drover_workers"].samples[0].value == 1 and families["drover_concurrency"].samples[0].value == 1
    assert families["drover_unowned_session_uses"].samples[0].value == 0
    slo = {s.labels["threshold"]: s.value for s in families["drover_slo_threshold_passed"].samples}
    assert slo == {"p(95) < 1": 0, "count == 0": 1, "rate < 0.5": 1}


@pytest.mark.chromium
def test_the_summary_export_reads_like_k6s(breached):
    doc = json.loads(breached["export"].read_text())
    m = doc["metrics"]
    assert m["iterations"]["count"] == 4 and m["checks"] == {"passes": 3, "fails": 1, "value": 0.75}
    assert set(m["flow:light"]) >= {"avg", "min", "med", "max", "p(90)", "p(95)", "thresholds"}
    assert m["flow:light"]["thresholds"] == {"p(95) < 1": True}  # k6's sense: true = failed
    assert m["unowned_uses"]["thresholds"] == {"count == 0": False}
    assert doc["drover"]["slo_go"] is False and doc["drover"]["jobs"]["failed"] == 1


@pytest.mark.chromium
def test_report_renders_a_run_directory_and_chromium_shows_it_without_errors(breached, browser):
    run_dir = breached["run_dir"]
    (run_dir / "report.html").unlink()
    res = engine("report", str(run_dir))
    assert res.returncode == EXIT_OK, res.stdout + res.stderr
    assert res.stdout.strip() == str(run_dir / "report.html")
    text, page = read_page(run_dir)
    for ident in ("run-header", "kpis", "verdict", "flow-percentiles-chart", "flow-percentiles-table",
                  "phase-percentiles-chart", "slo-status-table", "failure-matrix", "drilldown-records"):
        page.by_id(ident)
    assert "Drover run evidence" in page.plain and "NO-GO" in page.plain and "SLO verdict" in page.plain
    assert "windows-table" not in text and "alerts-list" not in text  # a soak's sections, not a run's
    # the drilldown expands the run's first failure
    drill = json.loads((run_dir / "drilldown.json").read_text())
    assert "/bad-0/a1" in drill["correlation_id"] and drill["reason"] == "the run's first failed attempt"
    shown = render_in_chromium(browser, run_dir / "report.html")
    assert shown.problems == ([], [], []), shown.problems
    assert shown.requests <= {(run_dir / "report.html").resolve().as_uri()}, shown.requests
    bars = {p["id"]: p["bars"] for p in shown.got["plots"]}
    assert bars.get("flow-percentiles-chart-svg") == 3 * 2, shown.got["plots"]  # p50/p95/p99 of two flows
    assert shown.got["matrix"] is not None and min(shown.got["matrix"]["size"]) > 50
    assert not shown.got["overflow"]
    (run_dir / "report.png").write_bytes(shown.png)
    if os.environ.get("DROVER_ARTIFACTS"):
        artifacts = Path(os.environ["DROVER_ARTIFACTS"])
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "run-report.png").write_bytes(shown.png)


@pytest.mark.chromium
def test_readiness_refuses_a_run_directory_naming_why(breached):
    res = engine("readiness", str(breached["run_dir"]))
    assert res.returncode == EXIT_INPUT, res.stdout + res.stderr
    assert "batch run's summary, not a soak's" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.chromium
def test_a_held_threshold_exits_0_on_the_legacy_path_with_openmetrics_and_browser_flags(tmp_path, site):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    batch = write_jobs(tmp_path, site, [("lang-0", LANG_FLOW), ("lang-1", LANG_FLOW)])
    slo = tmp_path / "slo.toml"
    slo.write_text('[thresholds]\n"flow:lang" = ["p(95) < 60000"]\nerror_rate = ["rate == 0"]\n')
    config = tmp_path / "drover.toml"
    config.write_text(f'[engine]\nstate_dir = "{tmp_path / "state"}"\n\n[browser]\nextra_args = ["--accept-lang=de-DE,de"]\n')
    om = tmp_path / "drover.om"
    res = engine("run", str(batch), "--mode", "legacy", "--config", str(config), "--slo", str(slo),
                 "--metrics", str(om), timeout=600)
    assert res.returncode == EXIT_OK, res.stdout + res.stderr  # the flow only passes with the flag applied
    families = {f.name: f for f in text_string_to_metric_families(om.read_text())}
    assert om.read_text().endswith("# EOF\n")
    assert {s.labels["outcome"]: s.value for s in families["drover_jobs"].samples} == {"passed": 2}
    assert families["drover_run"].type == "info" and families["drover_concurrency"].samples[0].value == 1
    [run_dir] = list((tmp_path / "state" / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["mode"] == "legacy" and summary["verdict"] == {"go": True, "reasons": []}
    assert json.loads((run_dir / "slo.json").read_text())["thresholds"]["error_rate"] == ["rate == 0"]


@pytest.mark.parametrize("args, complaint", [
    (["--slo", "{tmp}/missing.json"], "cannot read SLO file"),
    (["--junit", "{tmp}/no-such-dir/junit.xml"], "--junit {tmp}/no-such-dir/junit.xml: the directory"),
    (["--metrics", "{tmp}"], "is a directory"),
])
def test_bad_evidence_options_are_refused_before_anything_runs(tmp_path, site, args, complaint):
    batch = write_jobs(tmp_path, site, [("job-0", LIGHT_FLOW)])
    state = tmp_path / "state"
    res = engine("run", str(batch), "--state-dir", str(state), *[a.format(tmp=tmp_path) for a in args], timeout=60)
    assert res.returncode == EXIT_INPUT, res.stdout + res.stderr
    assert complaint.format(tmp=tmp_path) in res.stderr and "Traceback" not in res.stderr
    assert not state.exists()  # nothing was created, nothing ran


@pytest.mark.slow
@pytest.mark.chromium
def test_a_soak_writes_its_metrics_file_at_the_end(tmp_path, site):
    from prometheus_client.parser import text_string_to_metric_families

    from engine.records.store import ResultsStore

    batch = write_jobs(tmp_path, site, [("job-0", LIGHT_FLOW), ("job-1", LIGHT_FLOW)])
    state, metrics = tmp_path / "state", tmp_path / "soak.prom"
    res = engine("soak", str(batch), "--duration", "8s", "--window", "4s", "--workers", "1", "--state-dir", str(state),
                 "--metrics", str(metrics), timeout=300)
    assert res.returncode in (EXIT_OK, EXIT_NO_GO), res.stdout + res.stderr
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    [run_dir] = list((state / "runs").iterdir())
    with ResultsStore(state / "results.sqlite") as store:
        counts = store.counts(run_dir.name)
    jobs = {s.labels["outcome"]: s.value for s in families["drover_jobs"].samples}
    assert jobs.get("passed", 0) == counts["passed"] > 0 and sum(jobs.values()) == counts["passed"] + counts["failed"]
    assert families["drover_soak_windows"].samples[0].value >= 1
    info = families["drover_run_info"].samples[0].labels
    assert info["kind"] == "soak" and info["run_id"] == run_dir.name
