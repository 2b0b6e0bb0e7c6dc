"""Batch validation: every bad line is named with its number before anything runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.records.batch import MAX_BATCH_BYTES, MAX_LINE_BYTES, MAX_LINE_DEPTH, load_batch
from engine.errors import BatchInputError
from navigation.legacy import REGISTRY
from navigation.steps import default_registry

REPO = Path(__file__).resolve().parents[3]

GOOD_FLOW = {"title": "good", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/form.html"},
    {"type": "change", "selectors": [["#name"]], "value": "${name}"},
]}
# "clip" is not a step type: the schema refuses it, so the flow is invalid.
BAD_FLOW = {"title": "bad", "steps": [{"type": "clip", "selectors": [["#x"]]}]}


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    (tmp_path / "good.json").write_text(json.dumps(GOOD_FLOW))
    (tmp_path / "bad.json").write_text(json.dumps(BAD_FLOW))
    return tmp_path


def write(path: Path, lines: list[object]) -> Path:
    """Lines: a dict becomes its JSON; a str is written as it is (for malformed lines)."""
    with path.open("w") as fh:
        for line in lines:
            fh.write((json.dumps(line) if isinstance(line, dict) else line) + "\n")
    return path


def load(path: Path, *, skip: bool = False):
    return load_batch(path, strategies=default_registry(), legacy=REGISTRY, skip_invalid=skip)


def job(i: int | str, **kw) -> dict:
    return {"id": f"j{i}" if isinstance(i, int) else i, "flow": "good.json", **kw}


def error_of(path: Path, *, skip: bool = False) -> str:
    with pytest.raises(BatchInputError) as info:
        load(path, skip=skip)
    assert type(info.value).category == "input"
    return str(info.value)


def test_a_good_batch_loads_with_defaults_and_resolved_flow_paths(flows):
    batch = load(write(flows / "b.jsonl", [
        job(1), "", job(2, credential="shop/alice", vars={"name": "Ada"}, retries=0, timeout=5.5)]))
    assert [j.id for j in batch.jobs] == ["j1", "j2"]
    j1, j2 = batch.jobs
    assert (j1.line, j2.line) == (1, 3)  # a blank line keeps the numbering
    assert j1.flow_key == str((flows / "good.json").resolve()) and j1.flow_key in batch.flows
    assert (j1.retries, j1.timeout, j1.credential, dict(j1.vars)) == (1, 120.0, None, {})
    assert (j2.retries, j2.timeout, j2.credential, dict(j2.vars)) == (0, 5.5, "shop/alice", {"name": "Ada"})
    assert batch.skipped == ()
    assert batch.job("j2") is j2
    with pytest.raises(KeyError):
        batch.job("nope")


def test_a_utf8_byte_order_mark_before_line_1_is_not_part_of_the_job(flows):
    path = flows / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(job(1)).encode() + b"\n" + json.dumps(job(2)).encode() + b"\n")
    assert [j.id for j in load(path).jobs] == ["j1", "j2"]
    path.write_bytes(json.dumps(job(1)).encode() + b"\n\xef\xbb\xbf" + json.dumps(job(2)).encode() + b"\n")
    assert "bom.jsonl:2" in error_of(path)  # only a file's first bytes can be a byte-order mark


BAD_LINES = [
    ('{"id": "x", "flow": ', "not valid JSON"),
    ("[1, 2]", "a job must be a JSON object, got list"),
    ('"just a string"', "a job must be a JSON object, got str"),
    ("42", "a job must be a JSON object, got int"),
    (job(1, colour="red"), "unknown field(s) colour"),
    ({"flow": "good.json"}, '"id" must be a non-empty string'),
    (job("   "), '"id" must be a non-empty string'),
    ({"id": 7, "flow": "good.json"}, '"id" must be a non-empty string'),
    (job("a/b"), 'with no "/"'),
    (job("x" * 201), "at most 200 characters"),
    (job(".."), 'must not be "." or ".."'),
    (job("."), 'must not be "." or ".."'),
    (job("a\nb"), "control characters"),
    (job("a\x1bb"), "control characters"),
    ({"id": "j"}, '"flow" must be a path or "legacy:NAME"'),
    ({"id": "j", "flow": ""}, '"flow" must be a path or "legacy:NAME"'),
    ({"id": "j", "flow": 3}, '"flow" must be a path or "legacy:NAME"'),
    (job(1, credential="alice"), '"credential" must be "scope/name"'),
    (job(1, credential="a/b/c"), '"credential" must be "scope/name"'),
    (job(1, credential="/b"), '"credential" must be "scope/name"'),
    (job(1, credential=5), '"credential" must be "scope/name"'),
    (job(1, vars=["a"]), '"vars" must be an object of strings'),
    (job(1, vars={"n": 1}), '"vars" must be an object of strings'),
    (job(1, retries=-1), '"retries" must be an integer 0..20'),
    (job(1, retries=21), '"retries" must be an integer 0..20'),
    (job(1, retries=True), '"retries" must be an integer 0..20'),
    (job(1, retries=1.5), '"retries" must be an integer 0..20'),
    (job(1, timeout=0), '"timeout" must be seconds'),
    (job(1, timeout=-3), '"timeout" must be seconds'),
    (job(1, timeout=86401), '"timeout" must be seconds'),
    (job(1, timeout="60"), '"timeout" must be seconds'),
    (job(1, timeout=False), '"timeout" must be seconds'),
    (job(1, fallback=""), '"fallback" must name a legacy flow'),
    (job(1, fallback=3), '"fallback" must name a legacy flow'),
    (job(1, navigation="fast"), '"navigation" must be "recorder" or "legacy"'),
    (job(1, flow="legacy:nope"), "no legacy flow named 'nope' (registered: fixture_form)"),
    (job(1, flow="legacy:nope", navigation="legacy"), "no legacy flow named 'nope'"),
    ({"id": "j", "flow": "nope", "navigation": "legacy"}, "no legacy flow named 'nope'"),
    (job(1, flow="bad.json"), "is invalid and the job names no fallback"),
    (job(1, flow="missing.json"), "is invalid and the job names no fallback"),
    (job(1, fallback="nope"), "fallback 'nope' is not a registered legacy flow"),
    ("[" * (MAX_LINE_DEPTH + 1) + "]" * (MAX_LINE_DEPTH + 1), f"nests deeper than {MAX_LINE_DEPTH} levels"),
]


@pytest.mark.parametrize("bad, expected", BAD_LINES, ids=[e for _, e in BAD_LINES])
def test_every_kind_of_bad_line_is_named_with_its_line_number_and_nothing_is_loaded(flows, bad, expected):
    path = write(flows / "b.jsonl", [job("ok1"), bad, job("ok2")])
    msg = error_of(path)
    assert f"{path}: 1 invalid line(s); nothing was run" in msg
    assert f"{path}:2: " in msg and expected in msg, msg
    assert f"{path}:1:" not in msg and f"{path}:3:" not in msg


def test_all_problems_are_reported_together_in_line_order(flows):
    path = write(flows / "b.jsonl", [job(1), "{broken", job(2), job(3, retries=99, timeout=0), "", job(1)])
    msg = error_of(path)
    assert "3 invalid line(s)" in msg
    lines = [ln.strip() for ln in msg.splitlines()[1:]]
    assert [ln.split(": ")[0] for ln in lines] == [f"- {path}:2", f"- {path}:4", f"- {path}:4", f"- {path}:6"]
    assert "duplicate job id 'j1' (first on line 1)" in lines[-1]


def test_duplicate_ids_are_an_error_even_with_different_flows(flows):
    path = write(flows / "b.jsonl", [job("same"), job("other"), job("same", flow="legacy:fixture_form")])
    msg = error_of(path)
    assert f"{path}:3: duplicate job id 'same' (first on line 1)" in msg


def test_skip_invalid_keeps_the_good_lines_and_reports_every_bad_one(flows):
    path = write(flows / "b.jsonl", [job(1), "nope", job(2, retries=-1), job(3), job(1)])
    batch = load(path, skip=True)
    assert [j.id for j in batch.jobs] == ["j1", "j3"]
    assert [j.line for j in batch.jobs] == [1, 4]
    assert len(batch.skipped) == 3
    assert batch.skipped[0].startswith(f"{path}:2: not valid JSON")
    assert batch.skipped[1].startswith(f"{path}:3: ") and "retries" in batch.skipped[1]
    assert batch.skipped[2].startswith(f"{path}:5: duplicate job id 'j1'")


def test_skip_invalid_with_no_good_line_left_is_still_an_error_listing_the_bad_ones(flows):
    path = write(flows / "b.jsonl", ["nope", job(1, retries=-1)])
    msg = error_of(path, skip=True)
    assert "no valid jobs in the batch" in msg
    assert f"{path}:1: not valid JSON" in msg and f"{path}:2: " in msg


def test_empty_and_blank_batches_have_no_jobs(flows):
    for content in ("", "\n\n   \n"):
        path = flows / "empty.jsonl"
        path.write_text(content)
        assert "no valid jobs in the batch" in error_of(path)


def test_legacy_flows_by_prefix_and_by_navigation_setting(flows):
    batch = load(write(flows / "b.jsonl", [
        job(1, flow="legacy:fixture_form"),
        {"id": "j2", "flow": "fixture_form", "navigation": "legacy"},
        {"id": "j3", "flow": "legacy:fixture_form", "navigation": "legacy"},  # not prefixed twice
        job(4, navigation="recorder"),
    ]))
    keys = [j.flow_key for j in batch.jobs]
    assert keys[:3] == ["legacy:fixture_form"] * 3
    assert [j.legacy for j in batch.jobs] == ["fixture_form"] * 3 + [None]
    assert keys[3] == str((flows / "good.json").resolve())
    assert batch.flows.keys() == {keys[3]}  # legacy jobs load no recorder flow


def test_an_invalid_recorder_flow_with_a_fallback_is_accepted_and_the_reason_kept(flows):
    batch = load(write(flows / "b.jsonl", [job(1, flow="bad.json", fallback="fixture_form"),
                                            job(2, flow="missing.json", fallback="fixture_form")]))
    bad_key = str((flows / "bad.json").resolve())
    missing_key = str((flows / "missing.json").resolve())
    assert [j.fallback for j in batch.jobs] == ["fixture_form", "fixture_form"]
    assert bad_key not in batch.flows and "clip" in batch.flow_errors[bad_key]
    assert "no such file" in batch.flow_errors[missing_key]


def test_a_valid_flow_with_an_unregistered_fallback_is_still_refused(flows):
    path = write(flows / "b.jsonl", [job(1, fallback="ghost")])
    assert "fallback 'ghost' is not a registered legacy flow" in error_of(path)


def test_each_flow_file_is_loaded_once_however_many_jobs_use_it(flows, monkeypatch):
    import engine.records.batch as batch_module

    calls = []
    real = batch_module.load_flow
    monkeypatch.setattr(batch_module, "load_flow", lambda p, **kw: calls.append(p) or real(p, **kw))
    load(write(flows / "b.jsonl", [job(i) for i in range(50)] + [job(f"b{i}", flow="bad.json", fallback="fixture_form")
                                                                  for i in range(5)]))
    assert sorted(calls) == sorted({str((flows / "good.json").resolve()), str((flows / "bad.json").resolve())})


def test_flow_paths_are_relative_to_the_batch_file_not_the_working_directory(flows, tmp_path, monkeypatch):
    sub = flows / "batches"
    sub.mkdir()
    monkeypatch.chdir(tmp_path.parent)
    path = write(sub / "b.jsonl", [job(1, flow="../good.json"), job(2, flow=str(flows / "good.json"))])
    batch = load(path)
    assert {j.flow_key for j in batch.jobs} == {str((flows / "good.json").resolve())}


def test_file_level_problems(flows):
    assert "no such batch file" in error_of(flows / "nope.jsonl")
    assert "is a directory" in error_of(flows)


NUL_FIELDS = [
    (job(1, flow="go\0od.json"), '"flow" must not contain a NUL byte'),
    (job(1, flow="legacy:fixture\0form"), '"flow" must not contain a NUL byte'),
    (job("j\0x"), '"id" must not contain a NUL byte'),
    (job(1, credential="shop/al\0ice"), '"credential" must not contain a NUL byte'),
]


@pytest.mark.parametrize("bad, expected", NUL_FIELDS, ids=["flow", "legacy-flow", "id", "credential"])
def test_a_nul_byte_in_a_field_that_becomes_a_path_is_a_bad_line_not_a_crash(flows, bad, expected):
    """json.dumps writes the NUL as \\u0000: valid JSON whose string no file system path can hold."""
    path = write(flows / "b.jsonl", [job("ok1"), bad, job("ok2")])
    msg = error_of(path)
    assert f"{path}: 1 invalid line(s); nothing was run" in msg
    assert f"{path}:2: {expected}" in msg, msg
    assert "\0" not in msg  # the message names the field; it does not send a NUL to the terminal
    batch = load(path, skip=True)
    assert [j.id for j in batch.jobs] == ["ok1", "ok2"]
    assert len(batch.skipped) == 1 and batch.skipped[0].startswith(f"{path}:2: {expected}")


def test_a_nul_byte_in_the_batch_path_is_a_batch_input_error_naming_it(flows):
    path = flows / "b\0.jsonl"
    msg = error_of(path)
    assert msg.startswith(f"{flows}/b\\0.jsonl: is not a usable file name"), msg


@pytest.mark.timeout(30)  # the defect was a hang in open(): fail in 30 s, not after the suite's 300
def test_a_fifo_batch_is_refused_without_opening_it(flows):
    fifo = flows / "batch.fifo"
    os.mkfifo(fifo)
    assert error_of(fifo) == f"{fifo}: is a FIFO (named pipe), not a batch file (it must be a regular file)"
    link = flows / "link.jsonl"
    link.symlink_to(fifo)  # the name looks like a batch; what it points to decides
    assert "is a FIFO (named pipe)" in error_of(link)


def test_a_device_is_refused_as_a_batch(flows):
    assert error_of(Path("/dev/null")) == ("/dev/null: is a character device, not a batch file "
                                           "(it must be a regular file)")


@pytest.mark.timeout(30)
def test_a_file_swapped_for_a_fifo_after_the_stat_is_refused_by_fstat_without_blocking(flows, monkeypatch):
    """Close the stat -> open race: the name passes the first check, then names a FIFO when it is opened."""
    import engine.records.batch as batch_module

    path = write(flows / "b.jsonl", [job(1)])
    fifo = flows / "swap.fifo"
    os.mkfifo(fifo)
    real_open = os.open

    def swapping_open(name, flags, *args):
        if os.fspath(name) == str(path) and fifo.exists():
            os.replace(fifo, path)  # between the stat and the open, as another process could
        return real_open(name, flags, *args)

    monkeypatch.setattr(batch_module.os, "open", swapping_open)  # batch_module.os is os: pass others through
    assert "is a FIFO (named pipe), not a batch file" in error_of(path)


@pytest.mark.timeout(30)
def test_a_fifo_named_as_a_flow_is_an_invalid_flow_on_that_line(flows):
    os.mkfifo(flows / "pipe.json")
    path = write(flows / "b.jsonl", [job(1), job(2, flow="pipe.json")])
    msg = error_of(path)
    assert f"{path}:2: flow pipe.json is invalid and the job names no fallback" in msg
    assert "is a FIFO (named pipe), not a flow file (it must be a regular file)" in msg
    batch = load(path, skip=True)
    assert [j.id for j in batch.jobs] == ["j1"]


def engine_run(batch: Path, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "run", str(batch), "--state-dir", str(state)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_the_cli_refuses_bad_batches_with_exit_2_naming_file_and_line_and_leaves_no_state(flows):
    """A refused batch must leave the state directory as it found it: no results.sqlite, no lock, nothing."""
    nul = flows / "nul.jsonl"
    nul.write_bytes(json.dumps(job(1)).encode() + b"\n" + json.dumps(job(2, flow="go\0od.json")).encode() + b"\n")
    fifo = flows / "fifo.jsonl"
    os.mkfifo(fifo)
    malformed = write(flows / "malformed.jsonl", [job(1), job(2), '{"id": "j3", "flow": '])
    cases = [(nul, f"{nul}:2: \"flow\" must not contain a NUL byte"),
             (fifo, f"{fifo}: is a FIFO (named pipe), not a batch file"),
             (malformed, f"{malformed}:3: not valid JSON")]
    for batch, expected in cases:
        state = flows / f"state-{batch.stem}"
        res = engine_run(batch, state)
        assert res.returncode == 2, (batch, res.returncode, res.stderr[-2000:])
        assert expected in res.stderr, res.stderr
        assert "Traceback" not in res.stderr, res.stderr
        left = sorted(str(p.relative_to(state)) for p in state.rglob("*")) if state.exists() else []
        assert left == [], f"{batch.name}: the refused run left {left} in {state}"


def test_a_batch_over_the_size_limit_is_refused_before_it_is_read(flows):
    path = flows / "huge.jsonl"
    with path.open("wb") as fh:
        fh.truncate(MAX_BATCH_BYTES + 1)  # sparse: costs no disk
    msg = error_of(path)
    assert "is 64.0 MB, over the 64.0 MB limit for a batch file" in msg


def test_a_line_over_the_line_limit_is_refused_with_its_number(flows):
    huge = json.dumps(job(2, vars={"pad": "x" * MAX_LINE_BYTES}))
    msg = error_of(write(flows / "b.jsonl", [job(1), huge, job(3)]))
    assert f":2: line is longer than {MAX_LINE_BYTES} bytes" in msg


def test_brackets_inside_strings_do_not_count_as_nesting(flows):
    deep_text = "[{" * 100 + '\\"' + "}]" * 3
    batch = load(write(flows / "b.jsonl", [job(1, vars={"text": deep_text})]))
    assert batch.jobs[0].vars["text"] == deep_text


def test_a_deeply_nested_line_is_refused_without_crashing_the_process(flows):
    """orjson 3.8 dies with SIGSEGV on ~200k nested brackets; a 1 MiB line holds 500k. Run in a child."""
    n = (MAX_LINE_BYTES - 64) // 2
    path = flows / "deep.jsonl"
    with path.open("w") as fh:
        fh.write(json.dumps(job(1)) + "\n")
        fh.write('{"id": "deep", "flow": "good.json", "vars": ' + "[" * n + "]" * n + "}\n")
        fh.write("{" * (MAX_LINE_BYTES - 64) + "\n")  # unbalanced too
    code = textwrap.dedent(f"""
        from engine.records.batch import load_batch
        from engine.errors import BatchInputError
        from navigation.legacy import REGISTRY
        from navigation.steps import default_registry
        try:
            load_batch({str(path)!r}, strategies=default_registry(), legacy=REGISTRY)
        except BatchInputError as exc:
            print(exc)
            raise SystemExit(2)
        raise SystemExit(0)
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, f"exit {res.returncode} (negative = killed by signal): {res.stderr[-2000:]}"
    assert f"{path}:2: JSON nests deeper than {MAX_LINE_DEPTH} levels" in res.stdout
    assert f"{path}:3: JSON nests deeper than {MAX_LINE_DEPTH} levels" in res.stdout
    assert "2 invalid line(s)" in res.stdout


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=80), st.text(max_size=80).map(str.encode),
                          st.builds(lambda d: json.dumps(d).encode(),
                                    st.dictionaries(st.sampled_from(["id", "flow", "retries", "vars", "x"]),
                                                    st.one_of(st.none(), st.integers(-5, 30), st.text(max_size=5),
                                                              st.just("good.json")), max_size=5))),
                max_size=6))
def test_any_input_either_loads_or_gives_a_batch_input_error(flows, lines):
    path = flows / "fuzz.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    try:
        batch = load(path, skip=True)
    except BatchInputError as exc:
        assert str(exc).startswith(str(path))
        return
    assert len({j.id for j in batch.jobs}) == len(batch.jobs)
    assert all(j.flow_key for j in batch.jobs)


def test_job_spec_round_trips_what_the_store_records(flows):
    batch = load(write(flows / "b.jsonl", [job(1, credential="s/n", vars={"a": "b"}, fallback="fixture_form")]))
    spec = batch.jobs[0].spec()
    assert spec == {"id": "j1", "flow": str((flows / "good.json").resolve()), "credential": "s/n",
                    "vars": {"a": "b"}, "retries": 1, "timeout": 120.0, "fallback": "fixture_form"}
    assert os.path.isabs(spec["flow"])
