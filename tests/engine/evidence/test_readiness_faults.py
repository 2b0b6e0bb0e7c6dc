"""``readiness --faults FILE``: the fault campaign's report as the ``faults_survived`` criterion.

Each test writes a real report file (the engine's record,
:class:`engine.records.rundir.FaultReport`, the one ``python -m bench
faults --json`` writes) next to a real run directory and runs the real
command; the malformed cases check the exit code, that the message names
the file, and that no verdict was written.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.exit_codes import EXIT_INPUT, EXIT_NO_GO, EXIT_OK
from engine.evidence.criteria import CRITERION_NAMES
from engine.records import rundir
from engine.records.rundir import FaultReport, FaultTrial, FaultViolation
from tests.engine.evidence.readiness_runs import by_name, make_baseline, make_run, readiness, verdict_of

KINDS = ("worker", "browser", "supervisor", "sigterm")


def report(path: Path, kinds: tuple[str, ...] = KINDS, *, violations: tuple[FaultViolation, ...] = (),
           missed: tuple[str, ...] = ()) -> Path:
    """A campaign: a control run and two trials of each kind (the first of a ``missed`` kind not injected)."""
    rep = FaultReport(seed=7, batch="/b.jsonl", batch_sha256="ab" * 32, jobs=12, workers=2)
    rep.add(FaultTrial("control", 0, True, "no fault", 0, 0.0, (0,), 5.0, {"one_final_outcome": 12}), [])
    for kind in kinds:
        for n in (1, 2):
            injected = not (kind in missed and n == 1)
            rep.add(FaultTrial(kind, n, injected, f"SIGKILL {kind}", 3, 0.1, (0,), 6.0, {"one_final_outcome": 12}),
                    [v for v in violations if v.kind == kind and v.trial == n])
    rundir.write_fault_report(path, rep)
    return path


def judged(tmp_path: Path, *faults: Path) -> tuple[int, dict]:
    args = [make_run(tmp_path), "--baseline", make_baseline(tmp_path)]
    for f in faults:
        args += ["--faults", f]
    return verdict_of(*args)


def test_a_clean_campaign_with_every_kind_is_met_and_the_run_stays_go(tmp_path):
    code, v = judged(tmp_path, report(tmp_path / "faults.json"))
    assert code == EXIT_OK and v["go"] is True
    assert [c["name"] for c in v["criteria"]] == [*CRITERION_NAMES, "faults_survived"]
    c = by_name(v)["faults_survived"]
    assert c["ok"] is True and c["value"]["violations"] == 0
    assert c["value"]["injected"] == {k: 2 for k in KINDS}
    assert "sigterm 2 trial(s)" in c["measured"]


def test_two_campaigns_add_up_to_every_kind(tmp_path):
    kill9 = report(tmp_path / "kill9.json", ("worker", "browser", "supervisor"))
    term = report(tmp_path / "term.json", ("sigterm",))
    code, v = judged(tmp_path, kill9, term)
    assert code == EXIT_OK and by_name(v)["faults_survived"]["ok"] is True
    code, v = judged(tmp_path / "one", kill9)  # the SIGTERM campaign alone is missing: not survived
    assert code == EXIT_NO_GO and by_name(v)["faults_survived"]["ok"] is False
    assert "no sigterm trial" in by_name(v)["faults_survived"]["reason"]


def test_a_violation_is_no_go_naming_the_invariant_and_jobs(tmp_path):
    bad = FaultViolation("supervisor", 2, 99, "finished_recorded", ("bench-0003",), "outcome lost")
    code, v = judged(tmp_path, report(tmp_path / "faults.json", violations=(bad,)))
    assert code == EXIT_NO_GO and v["go"] is False
    c = by_name(v)["faults_survived"]
    assert c["ok"] is False and c["value"]["violations"] == 1
    assert "finished_recorded (supervisor trial 2, seed 99): jobs bench-0003" in c["reason"]
    assert any(r.startswith("faults_survived: 1 violation(s)") for r in v["reasons"])


def test_a_kind_whose_every_fault_missed_does_not_count(tmp_path):
    path = tmp_path / "faults.json"
    report(path, missed=("browser",))
    assert by_name(judged(tmp_path, path)[1])["faults_survived"]["ok"] is True  # one browser trial went in
    doc = json.loads(path.read_text())
    for t in doc["per_trial"]:
        if t["kind"] == "browser":
            t["injected"] = False
    path.write_text(json.dumps(doc))
    code, v = judged(tmp_path / "again", path)
    assert code == EXIT_NO_GO
    assert "no browser trial with its fault injected (2 missed)" in by_name(v)["faults_survived"]["reason"]


def _break(path: Path, how: str) -> None:
    doc = json.loads(path.read_text())
    if how == "not json":
        path.write_text('{"format": 1, "seed": ')
        return
    if how == "wrong format":
        doc["format"] = 2
    elif how == "no violations list":
        del doc["violations"]
    elif how == "trial of the wrong type":
        doc["per_trial"][1]["trial"] = "two"
    elif how == "a list":
        doc = [doc]
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("how, says", [
    ("missing", "no such fault report"),
    ("not json", "not JSON"),
    ("wrong format", "format: fault report format 2"),
    ("no violations list", "violations: missing"),
    ("trial of the wrong type", "per_trial[1].trial: expected a whole number >= 0, got 'two'"),
    ("a list", "expected a JSON object"),
])
def test_a_missing_or_malformed_report_is_an_input_error_naming_the_file(tmp_path, how, says):
    path = tmp_path / "faults.json"
    if how != "missing":
        report(path)
        _break(path, how)
    run_dir = make_run(tmp_path)
    before = (run_dir / rundir.SUMMARY).read_bytes()
    code, out, err = readiness(run_dir, "--faults", path)
    assert code == EXIT_INPUT, (out, err)
    assert str(path) in err and says in err, err
    assert (run_dir / rundir.SUMMARY).read_bytes() == before, "a verdict was written from bad input"


def test_the_benchs_report_is_the_engines_record(tmp_path):
    """bench writes the file through the engine's record; the engine reads it back whole, without bench."""
    from bench._faultreport import FaultReport as BenchReport, TrialRecord

    rep = BenchReport(seed=3, batch="b", batch_sha256="cd" * 32, jobs=4, workers=2, reader=True)
    rep.add(TrialRecord("supervisor", 1, True, "SIGKILL engine", 2, 0.0, (-9, 0), 4.0, {"one_final_outcome": 4},
                        time_to_gone_s=0.4, reader_opens=9), [])
    path = rep.write(tmp_path / "faults.json")
    back = rundir.read_fault_report(path)
    assert type(back) is FaultReport and back.to_json() == rep.to_json()
