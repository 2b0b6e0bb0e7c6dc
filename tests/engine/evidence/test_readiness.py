"""``python -m engine readiness``: Go / No-Go from a soak's run directory, criterion by criterion.

Every test builds a real run directory in ``tmp_path``
(:mod:`tests.engine.evidence.readiness_runs`), runs the real command
through ``engine.cli.main`` and reads what it printed and what it wrote
back into the directory.
"""
from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest

from engine.cli.main import main
from engine.cli.console import Console
from engine.evidence.criteria import CRITERION_NAMES, ReadinessLimits
from engine.errors import ConfigError
from engine.cli.exit_codes import EXIT_INPUT, EXIT_NO_GO, EXIT_OK
from engine.evidence.slo import load_slo, load_slo_text
from tests.engine.evidence.readiness_runs import (HOUR, OTHER_SHA, SHA, SLO, T0, by_name, drop, make_baseline,
                                                  make_run, matrix, not_met, passing_summary, put, readiness,
                                                  verdict_of)


# -- the whole verdict -----------------------------------------------------------------------------


def test_a_passing_run_is_go_with_all_criteria_and_the_verdict_lands_in_summary_and_report(tmp_path):
    run_dir = make_run(tmp_path)
    code, v = verdict_of(run_dir, "--baseline", make_baseline(tmp_path))
    assert code == EXIT_OK
    assert v["go"] is True and v["reasons"] == [] and v["accepted_risks"] == []
    assert [c["name"] for c in v["criteria"]] == list(CRITERION_NAMES) and len(CRITERION_NAMES) == 13
    assert all(c["ok"] is True and c["waived"] is False and c["description"] and c["limit"] for c in v["criteria"])
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["verdict"] == v
    assert on_disk["verdict"]["soak_reasons"] == [] and on_disk["verdict"]["soak_go"] is True
    original = passing_summary()
    assert {k: on_disk[k] for k in original if k != "verdict"} == {k: v for k, v in original.items() if k != "verdict"}
    page = (run_dir / "report.html").read_text()
    assert 'id="readiness-criteria"' in page and "throughput_vs_legacy" in page
    assert not list(run_dir.glob(".summary.json.*")), "no temp file left behind"


def test_the_verdict_shows_measured_values_and_limits(tmp_path):
    _, v = verdict_of(make_run(tmp_path), "--baseline", make_baseline(tmp_path, parallel=3.0))
    c = by_name(v)
    assert c["throughput_vs_legacy"]["value"] == 6.4 and c["throughput_vs_legacy"]["limit"].startswith(">= 5x")
    assert c["supervisor_memory"]["value"] == 12.0
    assert c["error_rate_last_quarter"]["value"] == 0.0079
    assert c["worker_restarts"]["value"] == 1 and c["worker_restarts"]["limit"] == "<= 3"
    assert c["duration"]["value"] == HOUR + 20
    assert c["no_deadlock"]["value"] == {"unfinished": 0, "over_bound": 0, "max_queue_wait_s": 4.2}
    assert c["p95_budget"]["value"] == round(620 / 800, 4)
    assert c["throughput_regression"]["value"]["change"] == pytest.approx(3.2 / 3.0 - 1, abs=1e-4)
    assert c["slo_budgets"]["value"] == {"pass": 4, "fail": 0, "no_data": 0}


def _fail(dotted: str, value: Any):
    return lambda s, m: put(s, dotted, value)


FAILURES = {
    "unowned_use": [_fail("aggregate.unowned_uses", 1), _fail("aggregate.invalid_transitions", 2)],
    "no_deadlock": [_fail("jobs.unfinished", 2), _fail("jobs.over_bound", 1), _fail("jobs.max_queue_wait_s", 601.0)],
    "throughput_regression": [_fail("throughput.parallel", 3.2 * 0.9)],
    "p95_budget": [_fail("aggregate.latency.flow:checkout.p95", 812.0),
                   _fail("aggregate.latency.phase:click.p95", 300.0)],
    "critical_failures": [lambda s, m: m.__setitem__(slice(None), matrix(auth=2))],
    "rollback_drill": [_fail("rollback_drill.passed", False), _fail("rollback_drill.lost", 1)],
    "duration": [_fail("ended_at", T0 + 0.9 * HOUR), _fail("ended_at", T0 + 1.06 * HOUR),
                 _fail("status", "interrupted"), _fail("halt_reason", "error rate > 10% for 3 windows")],
    "error_rate_last_quarter": [_fail("last_quarter.error_rate", 0.05)],
    "supervisor_memory": [_fail("supervisor_memory.growth_mb", 100.0)],
    "throughput_vs_legacy": [_fail("throughput.legacy", 3.2 / 1.9)],
    "worker_restarts": [_fail("aggregate.worker_restarts", 4)],
    "no_duplicates": [_fail("aggregate.duplicates", 1), _fail("rollback_drill.duplicates", 1)],
    "slo_budgets": [_fail("aggregate.slo.3.status", "fail")],
}
CASES = [pytest.param(name, mutate, id=f"{name}-{i}") for name, ms in FAILURES.items() for i, mutate in enumerate(ms)]


def test_every_criterion_has_a_failure_case():
    assert set(FAILURES) == set(CRITERION_NAMES)


@pytest.mark.parametrize("name, mutate", CASES)
def test_each_criterion_fails_on_its_own_figure(tmp_path, name, mutate):
    summary, failures = passing_summary(), matrix()
    mutate(summary, failures)
    code, v = verdict_of(make_run(tmp_path, summary, failures=failures), "--baseline", make_baseline(tmp_path))
    assert code == EXIT_NO_GO and v["go"] is False
    assert not_met(v) == {name}
    assert by_name(v)[name]["ok"] is False
    [reason] = v["reasons"]
    assert reason.startswith(f"{name}: ") and "not measured" not in reason


def test_failure_reasons_carry_the_figures(tmp_path):
    summary = passing_summary()
    put(summary, "throughput.legacy", 3.2 / 1.9)
    put(summary, "aggregate.worker_restarts", 5)
    put(summary, "last_quarter.error_rate", 0.081)
    code, v = verdict_of(make_run(tmp_path, summary), "--baseline", make_baseline(tmp_path))
    assert code == EXIT_NO_GO
    reasons = "\n".join(v["reasons"])
    assert "throughput_vs_legacy: 1.90x < 5x" in reasons
    assert "worker_restarts: 5 worker restart(s) > 3" in reasons
    assert "error_rate_last_quarter: 8.1% of 252 job(s) >= 5.0%" in reasons


# -- what is not there is not a pass ---------------------------------------------------------------


@pytest.mark.parametrize("dotted, names, field", [
    ("jobs", {"no_deadlock"}, "jobs.unfinished"),
    ("last_quarter", {"error_rate_last_quarter"}, "last_quarter"),
    ("last_quarter.error_rate", {"error_rate_last_quarter"}, "last_quarter.error_rate"),
    ("supervisor_memory", {"supervisor_memory"}, "supervisor_memory.growth_mb"),
    ("rollback_drill", {"rollback_drill"}, "rollback_drill"),
    ("throughput", {"throughput_vs_legacy"}, "throughput.parallel"),
    ("throughput.legacy", {"throughput_vs_legacy"}, "throughput.legacy"),
    ("batch", {"throughput_regression"}, "batch sha256 unknown"),
    ("aggregate.duplicates", {"no_duplicates"}, "aggregate.duplicates"),
    ("aggregate.unowned_uses", {"unowned_use"}, "aggregate.unowned_uses"),
    ("aggregate.worker_restarts", {"worker_restarts"}, "aggregate.worker_restarts"),
    ("aggregate.slo", {"slo_budgets"}, "aggregate.slo"),
    ("ended_at", {"duration"}, "ended_at"),
    ("status", {"duration"}, "status not recorded"),
])
def test_a_missing_figure_is_not_measured_and_the_reason_names_it(tmp_path, dotted, names, field):
    summary = passing_summary()
    drop(summary, dotted)
    code, v = verdict_of(make_run(tmp_path, summary), "--baseline", make_baseline(tmp_path))
    assert code == EXIT_NO_GO and v["go"] is False
    assert not_met(v) == names
    for name in names:
        assert by_name(v)[name]["ok"] is None
        assert by_name(v)[name]["status"] == "not measured"
    assert any(r.startswith(f"{n}: not measured (") and field in r for n in names for r in v["reasons"])


def test_no_drill_and_no_baseline_are_not_measured(tmp_path):
    summary = passing_summary()
    summary["rollback_drill"] = None
    summary["throughput"]["legacy"] = None
    _, v = verdict_of(make_run(tmp_path, summary))
    assert not_met(v) == {"rollback_drill", "throughput_vs_legacy", "throughput_regression"}
    reasons = "\n".join(v["reasons"])
    assert "no rollback drill was run" in reasons and "no --baseline given" in reasons
    assert "throughput.legacy not measured" in reasons


def test_a_queue_wait_from_the_windows_stands_in_for_jobs_max_queue_wait(tmp_path):
    summary = passing_summary()
    del summary["jobs"]["max_queue_wait_s"]
    summary["windows"][1]["queue_wait_max_ms"] = 700_000.0
    _, v = verdict_of(make_run(tmp_path, summary), "--baseline", make_baseline(tmp_path))
    assert by_name(v)["no_deadlock"]["ok"] is False
    assert by_name(v)["no_deadlock"]["value"]["max_queue_wait_s"] == 700.0


def test_an_empty_or_garbled_summary_is_thirteen_times_not_measured_never_a_crash(tmp_path):
    code, v = verdict_of(make_run(tmp_path, {}, slo=None, failures=[]), "--baseline", make_baseline(tmp_path))
    assert code == EXIT_NO_GO and not_met(v) == set(CRITERION_NAMES)
    assert all(c["ok"] is None for c in v["criteria"]) and len(v["reasons"]) == 13
    garbled = {"jobs": "lots", "windows": 5,
               "aggregate": {"unowned_uses": "zero", "duplicates": -1, "worker_restarts": True, "slo": "all good",
                             "latency": {"flow:checkout": {"n": 5, "p95": "fast"}, "phase:click": [1]}},
               "throughput": {"parallel": float("nan"), "legacy": 0}, "rollback_drill": {"passed": "yes"},
               "supervisor_memory": [], "last_quarter": {"error_rate": "0.01"}, "status": 7}
    code, v = verdict_of(make_run(tmp_path, garbled, failures=[{"category": "cdp", "resolved": "no"}], name="g"))
    assert code == EXIT_NO_GO and not any(c["ok"] for c in v["criteria"])


def test_a_failure_matrix_that_is_missing_or_not_json_leaves_that_criterion_unmeasured(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "failure_matrix.json").write_text("[{not json")
    _, v = verdict_of(run_dir, "--baseline", make_baseline(tmp_path))
    assert not_met(v) == {"critical_failures"} and "failure_matrix.json" in by_name(v)["critical_failures"]["reason"]
    (run_dir / "failure_matrix.json").unlink()
    _, v = verdict_of(run_dir, "--baseline", tmp_path / "baseline")
    assert not_met(v) == {"critical_failures"} and "not found" in by_name(v)["critical_failures"]["reason"]
    (run_dir / "failure_matrix.json").write_text(json.dumps([r for r in matrix() if r["category"] != "auth"]))
    _, v = verdict_of(run_dir, "--baseline", tmp_path / "baseline")
    assert not_met(v) == {"critical_failures"} and "no row for auth" in by_name(v)["critical_failures"]["reason"]


def test_a_run_without_an_slo_file_cannot_show_its_p95_budget(tmp_path):
    summary = passing_summary()
    _, v = verdict_of(make_run(tmp_path, summary, slo=None), "--baseline", make_baseline(tmp_path))
    assert not_met(v) == {"p95_budget"} and "no SLO file" in by_name(v)["p95_budget"]["reason"]
    no_p95 = {"thresholds": {"error_rate": ["rate < 0.05"], "flow:checkout": ["p(99) < 1500"]}}
    _, v = verdict_of(make_run(tmp_path, summary, slo=no_p95, name="r2"), "--baseline", tmp_path / "baseline")
    assert not_met(v) == {"p95_budget"} and "no p(95) threshold" in by_name(v)["p95_budget"]["reason"]
    typo = {"thresholds": {"flow:chekout": ["p(95) < 800"]}}
    _, v = verdict_of(make_run(tmp_path, summary, slo=typo, name="r3"), "--baseline", tmp_path / "baseline")
    assert not_met(v) == {"p95_budget"} and "flow:chekout" in by_name(v)["p95_budget"]["reason"]


def test_a_whole_run_threshold_with_no_data_is_not_a_pass(tmp_path):
    summary = passing_summary()
    summary["aggregate"]["slo"][1].update(status="no data", value=None, ok=None)
    _, v = verdict_of(make_run(tmp_path, summary), "--baseline", make_baseline(tmp_path))
    assert not_met(v) == {"slo_budgets"} and "p(99) < 1500: no data" in by_name(v)["slo_budgets"]["reason"]


# -- waivers and limits from the SLO file ----------------------------------------------------------


def test_a_waived_failure_is_go_and_listed_as_an_accepted_risk(tmp_path):
    summary = passing_summary()
    put(summary, "throughput.legacy", 3.2 / 1.9)
    reason = "2-core CI box; measured 1.9x, accepted until the 8-core run"
    slo = dict(SLO, waivers=[{"criterion": "throughput_vs_legacy", "reason": reason}])
    run_dir = make_run(tmp_path, summary, slo=slo)
    code, v = verdict_of(run_dir, "--baseline", make_baseline(tmp_path))
    assert code == EXIT_OK and v["go"] is True and v["reasons"] == []
    c = by_name(v)["throughput_vs_legacy"]
    assert c["waived"] is True and c["ok"] is False and c["waiver_reason"] == reason, "still measured and shown"
    [risk] = v["accepted_risks"]
    assert risk["criterion"] == "throughput_vs_legacy" and risk["reason"] == reason and risk["ok"] is False
    assert risk["measured"].startswith("1.90x")
    code, out, _ = readiness(run_dir, "--baseline", tmp_path / "baseline")
    assert code == EXIT_OK
    assert "Accepted risks" in out and reason in out and "waived (FAIL)" in out
    page = (run_dir / "report.html").read_text()
    assert 'id="accepted-risks"' in page and "accepted until the 8-core run" in page
    assert "1.90x (3.200 vs 1.684 jobs/s)" in page, "the report shows readiness's own wording of the value"
    out, err = io.StringIO(), io.StringIO()
    quiet = Console(out, err, quiet=True)  # what -q builds
    assert main(["-q", "readiness", str(run_dir), "--baseline", str(tmp_path / "baseline")], quiet) == 0
    assert "criterion" not in out.getvalue(), "quiet: no table"
    assert ": GO (" in out.getvalue() and reason in out.getvalue(), "but the verdict and its accepted risks"


def test_a_waiver_for_an_unknown_criterion_is_refused_with_its_name(tmp_path):
    slo = dict(SLO, waivers=[{"criterion": "throughput_vs_legacyy", "reason": "typo"}])
    run_dir = make_run(tmp_path, slo=slo)
    before = (run_dir / "summary.json").read_bytes()
    code, out, err = readiness(run_dir)
    assert code == EXIT_INPUT and out == ""
    assert "slo.json: waivers[0]: unknown criterion 'throughput_vs_legacyy'" in err
    assert "throughput_vs_legacy" in err.split("known:")[1]
    assert (run_dir / "summary.json").read_bytes() == before, "nothing written on bad input"


def test_slo_flag_overrides_the_soaks_copy_and_limits_apply(tmp_path):
    run_dir = make_run(tmp_path)
    strict = tmp_path / "strict.toml"
    strict.write_text('[readiness]\nmin_legacy_ratio = 10\nmax_queue_wait = "2s"\n'
                      '[thresholds]\n"flow:checkout" = ["p(95) < 600"]\n'
                      '[[waivers]]\ncriterion = "rollback_drill"\nreason = "drilled on staging"\n')
    code, v = verdict_of(run_dir, "--baseline", make_baseline(tmp_path), "--slo", strict)
    assert code == EXIT_NO_GO and not_met(v) == {"throughput_vs_legacy", "no_deadlock", "p95_budget"}
    assert v["slo"] == str(strict) and v["limits"]["min_legacy_ratio"] == 10
    assert by_name(v)["throughput_vs_legacy"]["limit"].startswith(">= 10x")
    assert [r["criterion"] for r in v["accepted_risks"]] == ["rollback_drill"]
    code, _, err = readiness(run_dir, "--slo", tmp_path / "missing.json")
    assert code == EXIT_INPUT and "missing.json" in err


def test_a_toml_slo_copied_as_slo_json_is_read(tmp_path):
    toml = ('window = "30m"\n[thresholds]\n"flow:checkout" = ["p(95) < 800"]\n'
            '[readiness]\nmax_worker_restarts = 0\n')
    _, v = verdict_of(make_run(tmp_path, slo=toml), "--baseline", make_baseline(tmp_path))
    assert not_met(v) == {"worker_restarts"} and by_name(v)["p95_budget"]["ok"] is True


def test_a_broken_slo_json_in_the_run_dir_is_bad_input_naming_it(tmp_path):
    run_dir = make_run(tmp_path, slo="{\"thresholds\": ")
    code, _, err = readiness(run_dir)
    assert code == EXIT_INPUT and str(run_dir / "slo.json") in err and "not valid JSON" in err


@pytest.mark.parametrize("section, message", [
    ({"max_regresion": 0.1}, "readiness: unknown key(s) ['max_regresion']"),
    ({"max_regression": 5}, "readiness.max_regression: must be a fraction in [0, 1)"),
    ({"max_regression": "5%"}, "readiness.max_regression: must be a number"),
    ({"max_queue_wait": "ten minutes"}, "readiness.max_queue_wait: cannot parse duration"),
    ({"max_queue_wait": True}, "readiness.max_queue_wait: must be a number > 0"),
    ({"max_worker_restarts": 1.5}, "readiness.max_worker_restarts: must be a whole number >= 0"),
    ({"min_legacy_ratio": 0}, "readiness.min_legacy_ratio: must be a number > 0"),
    ({"max_memory_growth_mb": None}, "readiness.max_memory_growth_mb: must be a number > 0"),
    ({"critical_categories": ["cdp", "browser"]}, "readiness.critical_categories[1]: unknown failure category"),
    ({"critical_categories": []}, "waive critical_failures"),
    ({"critical_categories": ["cdp", "cdp"]}, "listed twice"),
    ([], "readiness must be an object"),
])
def test_bad_readiness_sections_name_the_file_and_the_key(tmp_path, section, message):
    path = tmp_path / "slo.json"
    path.write_text(json.dumps({"readiness": section}))
    with pytest.raises(ConfigError) as info:
        load_slo(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_readiness_limits_parse_and_default(tmp_path):
    path = tmp_path / "slo.json"
    path.write_text(json.dumps({"readiness": {"max_queue_wait": "10m", "max_regression": 0.1,
                                              "critical_categories": ["cdp", "persistence"],
                                              "max_worker_restarts": 0}}))
    limits = load_slo(path).readiness
    assert limits == ReadinessLimits(max_queue_wait_s=600.0, max_regression=0.1,
                                     critical_categories=("cdp", "persistence"), max_worker_restarts=0)
    path.write_text("{}")
    assert load_slo(path).readiness == ReadinessLimits()


def test_critical_categories_limit_which_unresolved_failures_block(tmp_path):
    slo = dict(SLO, readiness={"critical_categories": ["cdp", "persistence"]})
    _, v = verdict_of(make_run(tmp_path, slo=slo, failures=matrix(telemetry=1)), "--baseline", make_baseline(tmp_path))
    assert v["go"] is True
    _, v = verdict_of(make_run(tmp_path, slo=slo, failures=matrix(persistence=4), name="r2"),
                      "--baseline", tmp_path / "baseline")
    assert not_met(v) == {"critical_failures"} and by_name(v)["critical_failures"]["value"] == {"persistence": 4}


def test_load_slo_text_reads_json_or_toml_and_names_the_source():
    assert load_slo_text('{"window": "10m"}', "x/slo.json").window_s == 600.0
    assert load_slo_text('window = "10m"', "x/slo.json").window_s == 600.0
    with pytest.raises(ConfigError, match=r"x/slo\.json: not valid TOML: .*\(and not JSON either\)"):
        load_slo_text("window: 10m", "x/slo.json")
    with pytest.raises(ConfigError, match=r"x/slo\.json: line 1 column .*not valid JSON"):
        load_slo_text("{window: 10m}", "x/slo.json")


# -- baselines -------------------------------------------------------------------------------------


@pytest.mark.parametrize("drop_pct, ok", [(6, False), (4, True), (0, True)])
def test_throughput_regression_against_a_run_dir_gate_is_five_percent(tmp_path, drop_pct, ok):
    run_dir = make_run(tmp_path, passing_summary(parallel=3.2 * (1 - drop_pct / 100)))
    code, v = verdict_of(run_dir, "--baseline", make_baseline(tmp_path, parallel=3.2))
    assert by_name(v)["throughput_regression"]["ok"] is ok
    assert code == (EXIT_OK if ok else EXIT_NO_GO)
    if not ok:
        assert "6.0% slower than baseline r20261118-090000-base" in v["reasons"][0]


def test_a_saved_baseline_file_round_trips(tmp_path):
    base_dir = make_baseline(tmp_path, parallel=3.2)
    saved = tmp_path / "baselines" / "base.json"
    saved.parent.mkdir()
    code, out, _ = readiness(base_dir, "--save-baseline", saved)
    assert code == EXIT_NO_GO, "no baseline of its own, still saved"
    assert f"baseline saved: {saved}" in out
    doc = json.loads(saved.read_text())
    assert doc["kind"] == "drover-readiness-baseline" and doc["version"] == 1
    assert (doc["run_id"], doc["throughput"], doc["batch_sha256"], doc["workers"]) == (
        "r20261118-090000-base", 3.2, SHA, 2)
    assert isinstance(doc["saved_at"], float)
    run_dir = make_run(tmp_path, passing_summary(parallel=3.2 * 0.94))
    _, v = verdict_of(run_dir, "--baseline", saved)
    assert by_name(v)["throughput_regression"]["ok"] is False and v["baseline"] == str(saved)
    _, v = verdict_of(run_dir, "--baseline", base_dir / "summary.json")
    assert by_name(v)["throughput_regression"]["ok"] is False


def test_the_baseline_falls_back_to_the_aggregate_throughput(tmp_path):
    base = make_baseline(tmp_path, throughput={"overall": None, "parallel": None, "legacy": None})
    _, v = verdict_of(make_run(tmp_path), "--baseline", base)
    c = by_name(v)["throughput_regression"]
    assert c["value"]["baseline"] == 3.1 and c["ok"] is True


@pytest.mark.parametrize("over, words", [
    ({"batch": {"path": "other.jsonl", "sha256": OTHER_SHA, "jobs": 40}},
     "different batch (sha256 5f2a5f2a5f2a here, 9c1e9c1e9c1e in"),
    ({"workers": 4}, "different worker count (2 here, 4 in the baseline)"),
    ({"batch": None}, "batch sha256 unknown for the baseline"),
])
def test_a_baseline_of_another_batch_or_worker_count_is_not_comparable(tmp_path, over, words):
    code, v = verdict_of(make_run(tmp_path), "--baseline", make_baseline(tmp_path, **over))
    c = by_name(v)["throughput_regression"]
    assert code == EXIT_NO_GO and c["ok"] is None and c["value"]["comparable"] is False
    assert "NOT COMPARABLE" in c["reason"] and words in c["reason"]
    assert not_met(v) == {"throughput_regression"}


@pytest.mark.parametrize("content, words", [
    ("{broken", "is not JSON"),
    ("[1, 2]", "a baseline is a JSON object"),
    ('{"hello": 1}', "neither a soak summary nor a readiness baseline"),
    ('{"kind": "drover-readiness-baseline", "version": 2, "throughput": 3}', "is not a readiness baseline"),
    ('{"kind": "drover-readiness-baseline", "version": 1, "throughput": "fast"}', "throughput must be a number > 0"),
    ('{"kind": "drover-readiness-baseline", "version": 1, "throughput": 3, "workers": "two"}', "workers has the wrong"),
])
def test_a_malformed_baseline_is_bad_input_naming_the_file(tmp_path, content, words):
    bad = tmp_path / "base.json"
    bad.write_text(content)
    run_dir = make_run(tmp_path)
    code, out, err = readiness(run_dir, "--baseline", bad)
    assert code == EXIT_INPUT and out == ""
    assert str(bad) in err and words in err
    assert "readiness" not in json.loads((run_dir / "summary.json").read_text())["verdict"].get("kind", "")


def test_a_baseline_directory_without_a_summary_or_a_missing_file_is_bad_input(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = readiness(make_run(tmp_path), "--baseline", empty)
    assert code == EXIT_INPUT and str(empty) in err and "without summary.json" in err
    code, _, err = readiness(tmp_path / "run", "--baseline", tmp_path / "nope.json")
    assert code == EXIT_INPUT and "nope.json" in err


def test_saving_a_baseline_from_a_halted_run_is_refused(tmp_path):
    summary = passing_summary()
    summary.update(status="halted", halt_reason="duplicate outcome")
    run_dir = make_run(tmp_path, summary)
    code, _, err = readiness(run_dir, "--save-baseline", tmp_path / "b.json")
    assert code == EXIT_INPUT and "did not complete (status halted)" in err
    assert not (tmp_path / "b.json").exists()
    summary = passing_summary()
    del summary["throughput"]
    del summary["aggregate"]["throughput"]
    code, _, err = readiness(make_run(tmp_path, summary, name="r2"), "--save-baseline", tmp_path / "b.json")
    assert code == EXIT_INPUT and "has no throughput" in err


# -- the files it reads and writes -----------------------------------------------------------------


def test_rerunning_keeps_the_soaks_own_reasons_and_every_other_key(tmp_path):
    summary = passing_summary()
    summary["verdict"] = {"go": False, "reasons": ["SLO breached"]}
    summary["extra_key_from_a_newer_soak"] = {"nested": [1, 2]}
    run_dir = make_run(tmp_path, summary)
    readiness(run_dir)
    readiness(run_dir, "--baseline", make_baseline(tmp_path))
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["verdict"]["soak_reasons"] == ["SLO breached"] and on_disk["verdict"]["soak_go"] is False
    assert on_disk["verdict"]["kind"] == "readiness" and on_disk["verdict"]["baseline"]
    assert on_disk["extra_key_from_a_newer_soak"] == {"nested": [1, 2]}


def test_a_report_that_cannot_be_written_is_a_warning_not_a_verdict(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "report.html").mkdir()  # os.replace onto a directory fails: ReportError
    code, out, err = readiness(run_dir, "--baseline", make_baseline(tmp_path))
    assert code == EXIT_OK and "GO" in out
    assert "warning: report.html not rebuilt" in err
    assert json.loads((run_dir / "summary.json").read_text())["verdict"]["go"] is True


def test_human_output_is_a_table_with_every_criterion_and_the_verdict(tmp_path):
    summary = passing_summary()
    put(summary, "supervisor_memory.growth_mb", 140.5)
    code, out, err = readiness(make_run(tmp_path, summary), "--baseline", make_baseline(tmp_path))
    assert code == EXIT_NO_GO and err == ""
    assert "readiness r20261125-102745-pass: NO-GO (12 of 13 criteria met, 0 waived)" in out
    lines = out.splitlines()
    assert lines[0].split() == ["criterion", "result", "measured", "limit"]
    for name in CRITERION_NAMES:
        assert any(line.startswith(name + " ") for line in lines), name
    assert "Why no-go:" in out and "  - supervisor_memory: grew 140.5 MB >= 100 MB" in out
    assert "report: " in out
    code, out, _ = readiness(make_run(tmp_path, name="good"), "--baseline", tmp_path / "baseline")
    assert code == EXIT_OK and ": GO (13 of 13 criteria met" in out and "Why no-go" not in out


def test_json_output_is_one_document(tmp_path):
    code, out, _ = readiness(make_run(tmp_path), "--json", "--baseline", make_baseline(tmp_path),
                             "--save-baseline", tmp_path / "b.json")
    v = json.loads(out)
    assert code == EXIT_OK and v["go"] is True and len(v["criteria"]) == 13
    assert (tmp_path / "b.json").is_file()


@pytest.mark.parametrize("make, words", [
    (lambda root: root / "missing", "no such directory"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "no summary.json here"),
    (lambda root: (root / "bad").mkdir() or (root / "bad" / "summary.json").write_text("{") and root / "bad",
     "is not JSON"),
])
def test_a_run_dir_without_a_readable_summary_is_bad_input(tmp_path, make, words):
    run_dir = make(tmp_path)
    code, out, err = readiness(run_dir)
    assert code == EXIT_INPUT and out == "" and words in err and str(run_dir) in err


def test_nan_in_a_summary_survives_the_rewrite(tmp_path):
    summary = passing_summary()
    summary["windows"][0]["error_rate"] = float("nan")
    run_dir = make_run(tmp_path, summary)
    readiness(run_dir)
    text = (run_dir / "summary.json").read_text()
    assert "NaN" in text and copy.deepcopy(json.loads(text))["windows"][0]["index"] == 0
