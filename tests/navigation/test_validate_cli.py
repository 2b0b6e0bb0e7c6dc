"""Issue 3 acceptance: ``validate`` on bad flows, drift reported once, and ``replay`` of the shipped examples.

Bad input gets one clear error naming the file (and the step), never a
traceback, and exit code 2 (``EXIT_INPUT``).  A flow with unknown extra
fields is valid, runs, and its drift is reported once on the domain stream.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INPUT, EXIT_JOB_FAILURES, EXIT_OK
from navigation.flow import load_flow
from navigation.runner import FlowRunner
from navigation.steps import default_registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "navigation" / "examples"
SUBPROCESS_TIMEOUT = 240

NAV = {"type": "navigate", "url": "${BASE_URL}/form.html"}

# name -> (file content, what the one error must say)
BAD_FLOWS: dict[str, tuple[str, list[str]]] = {
    "malformed": ('{"title": "broken", "steps": [\n  {"type": "navigate", "url": "x"},\n]}\n',
                  ["malformed JSON at line 3, column 2"]),
    "not_an_object": ('["navigate"]', ["must be a JSON object", "got list"]),
    "missing_steps": ('{"title": "no steps"}', ['"steps" is missing']),
    "steps_not_a_list": ('{"title": "t", "steps": {"type": "navigate"}}', ['"steps" must be a list, got object']),
    "wrong_field_type": (json.dumps({"title": "t", "steps": [
        NAV, {"type": "click", "selectors": [["#name"]], "offsetX": "ten", "offsetY": 5}]}),
        ["step 1 (click)", '"offsetX" must be a number', "got string"]),
    "wrong_timeout_type": (json.dumps({"title": "t", "timeout": "soon", "steps": [NAV]}),
                           ['"timeout"', "got string"]),
    "unknown_step_type": (json.dumps({"title": "t", "steps": [NAV, {"type": "clpi", "value": "x"}]}),
                          ["step 1 (clpi)", 'unknown step type "clpi"']),
    "empty_selectors": (json.dumps({"title": "t", "steps": [NAV, {"type": "click", "selectors": []}]}),
                        ["step 1 (click)", '"selectors" must be a non-empty list']),
    "empty_selector_chain": (json.dumps({"title": "t", "steps": [NAV, {"type": "click", "selectors": [[]]}]}),
                             ["step 1 (click)", '"selectors[0]"']),
    "empty_selector_string": (json.dumps({"title": "t", "steps": [NAV, {"type": "hover", "selectors": [""]}]}),
                              ["step 1 (hover)", '"selectors[0]" is empty']),
}
HUGE_BYTES = 20 * 1024 * 1024


def write_bad(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.json"
    if name == "huge":
        with open(path, "w", encoding="utf-8") as fh:  # valid JSON, only too big
            fh.write('{"title": "big", "steps": [], "pad": "')
            fh.write("x" * HUGE_BYTES)
            fh.write('"}')
    else:
        path.write_text(BAD_FLOWS[name][0], encoding="utf-8")
    return path


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), console=Console(out=out, err=err))
    return code, out.getvalue(), err.getvalue()


def run_module(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("name", [*BAD_FLOWS, "huge"])
def test_validate_gives_one_clear_error_per_bad_flow(tmp_path, name):
    path = write_bad(tmp_path, name)
    code, out, err = run_cli("validate", str(path))
    assert code == EXIT_INPUT == 2
    assert "Traceback" not in out + err and err == ""
    lines = out.splitlines()
    assert len(lines) in (1, 2), out  # "FAIL file: error", or "FAIL file: 1 problem(s)" + the problem
    assert lines[0].startswith(f"FAIL {path}: ")
    if len(lines) == 2:
        assert lines[0] == f"FAIL {path}: 1 problem(s)" and lines[1].startswith("  - ")
    wanted = ["is 20.0 MB, over the 10.0 MB limit"] if name == "huge" else BAD_FLOWS[name][1]
    for text in wanted:
        assert text in out, (text, out)


def test_validate_all_bad_flows_at_once_in_a_real_process(tmp_path):
    paths = [write_bad(tmp_path, name) for name in [*BAD_FLOWS, "huge"]]
    good = EXAMPLES / "form.json"
    proc = run_module("validate", str(good), *map(str, paths))
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL ")]
    assert [line.split(":", 1)[0] for line in fails] == [f"FAIL {p}" for p in paths]  # one each, in order
    assert proc.stdout.splitlines()[0].startswith(f"ok   {good}: ")
    assert proc.stdout.rstrip().endswith(f"1 valid, {len(paths)} invalid")


def test_validate_good_flows_exit_zero():
    examples = sorted(EXAMPLES.glob("*.json"))
    assert len(examples) >= 3
    code, out, err = run_cli("validate", *map(str, examples))
    assert code == EXIT_OK, out + err
    assert out.count("ok   ") == len(examples) and "FAIL" not in out
    proc = run_module("validate", str(examples[0]))
    assert proc.returncode == EXIT_OK and proc.stdout.startswith(f"ok   {examples[0]}: "), proc.stdout + proc.stderr


DRIFTED = {
    "title": "Recorded by a newer Chrome",
    "recordedWith": "Chrome 199",            # unknown, flow level
    "timeout": 15000,
    "steps": [
        {"type": "navigate", "url": "${BASE_URL}/form.html", "comment": "open the form",   # unknown, step level
         "assertedEvents": [{"type": "navigation", "title": "Drover form", "frameId": "main"}]},   # nested
        {"type": "change", "selectors": [["#name"]], "value": "Ada", "uiHint": {"fast": True}},
        {"type": "waitForExpression", "expression": "document.querySelector('#name').value === 'Ada'"},
    ],
}
DRIFT_NAMES = ["flow: recordedWith", "step 0 (navigate): comment", "step 0 (navigate): assertedEvents[0].frameId",
               "step 1 (change): uiHint"]


def test_flow_with_unknown_fields_runs_and_reports_them_once(conn, site, tmp_path, caplog):
    path = tmp_path / "drifted.json"
    path.write_text(json.dumps(DRIFTED), encoding="utf-8")
    caplog.set_level(logging.DEBUG, logger="drover.domain")
    registry = default_registry()
    flow = load_flow(path, extra_types=registry.extra_types())
    result = FlowRunner(registry).run(flow, conn, artifacts_dir=tmp_path / "artifacts",
                                      variables={"BASE_URL": site.base_url})
    assert result.ok, result.error
    assert sorted(str(u) for u in flow.unknown_fields) == sorted(DRIFT_NAMES)
    domain = [r for r in caplog.records if r.name.startswith("drover.domain")]
    reports = [r for r in domain if "unknown field" in r.getMessage()]
    assert len(reports) == 1, [r.getMessage() for r in domain]
    assert sorted(reports[0].unknown_fields) == sorted(DRIFT_NAMES)
    assert reports[0].unknown_field_count == len(DRIFT_NAMES) and reports[0].levelno == logging.WARNING
    assert str(path) == reports[0].flow_source
    assert "Ada" not in repr(vars(reports[0]))  # names only, never values

    code, out, _err = run_cli("validate", str(path))
    assert code == EXIT_OK
    assert f"{len(DRIFT_NAMES)} unknown field(s) ignored" in out
    (line,) = [line for line in out.splitlines() if "unknown fields (kept, not acted on)" in line]  # one summary
    assert line.endswith("count per field: flow.recordedWith: 1, comment: 1, assertedEvents[0].frameId: 1, uiHint: 1")


STEP_LINE = re.compile(r"^(ok  |FAIL) (\d+):(\w+)\s+(?:<(\w+)> )?\s*([\d.]+) ms(?:  \[(.+)\])?$")


def parse_steps(stdout: str) -> list[tuple[str, int, str, str | None, float, str | None]]:
    out = []
    for line in stdout.splitlines():
        m = STEP_LINE.match(line)
        if m:
            out.append((m[1].strip(), int(m[2]), m[3], m[4], float(m[5]), m[6]))
    return out


def test_replay_prints_each_step_with_duration_and_matched_selector(tmp_path):
    flow = EXAMPLES / "form.json"
    proc = run_module("replay", str(flow), "--fixture-site", "--artifacts", str(tmp_path / "art"))
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    steps = parse_steps(proc.stdout)
    recorded = load_flow(flow).steps
    assert [(s[0], s[1], s[2]) for s in steps] == [("ok", s.index, s.type) for s in recorded]
    assert all(s[4] >= 0 for s in steps)
    for (_mark, index, _type, phase, _ms, matched), step in zip(steps, recorded):
        assert phase == step.phase
        if getattr(step, "selectors", ()):
            assert matched in [alt.text for alt in step.selectors], (index, matched)
        else:
            assert matched is None
    assert steps[2][5] == "aria/Name" and steps[8][5] == "aria/Send the form"
    assert re.search(r"^passed: 'Fill in and send the fixture form' in \d+ ms \(12/12 steps\)$", proc.stdout, re.M)


def test_replay_canvas_example_with_a_credentials_file_masks_the_secret(tmp_path):
    secret = "correct horse"  # the fixture site's default password for alice
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"alice_password": secret}), encoding="utf-8")
    os.chmod(creds, 0o600)
    art = tmp_path / "art"
    proc = run_module("replay", str(EXAMPLES / "canvas_login.json"), "--fixture-site",
                      "--credentials", str(creds), "--artifacts", str(art))
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    steps = parse_steps(proc.stdout)
    assert len(steps) == len(load_flow(EXAMPLES / "canvas_login.json").steps)
    assert {s[5] for s in steps if s[2] == "click"} == {"#login"}
    assert secret not in proc.stdout + proc.stderr
    assert [p.name for p in art.iterdir()] == ["canvas-login-done.png"]

    os.chmod(creds, 0o644)  # readable by others: refused with a clear error, nothing runs
    proc = run_module("replay", str(EXAMPLES / "canvas_login.json"), "--fixture-site", "--credentials", str(creds))
    assert proc.returncode != EXIT_OK and "Traceback" not in proc.stderr
    assert str(creds) in proc.stderr and secret not in proc.stdout + proc.stderr


def test_replay_of_a_failing_flow_exits_non_zero_naming_the_step(tmp_path):
    flow = tmp_path / "fails.json"
    flow.write_text(json.dumps({"title": "fails", "steps": [
        {"type": "navigate", "url": "${BASE_URL}/form.html"},
        {"type": "waitForElement", "selectors": [["#not-on-the-page"]], "timeout": 1000}]}), encoding="utf-8")
    proc = run_module("replay", str(flow), "--fixture-site", "--artifacts", str(tmp_path / "art"))
    assert proc.returncode == EXIT_JOB_FAILURES
    assert "Traceback" not in proc.stdout + proc.stderr
    assert [s[:3] for s in parse_steps(proc.stdout)] == [("ok", 0, "navigate"), ("FAIL", 1, "waitForElement")]
    assert "step 1 (waitForElement)" in proc.stderr and "step-01-waitForElement-failure.png" in proc.stderr
