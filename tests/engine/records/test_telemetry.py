"""The four JSON log streams: correlated records, counted losses that never reach the caller, trace."""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coordination.telemetry_context import CONTEXT_FIELDS, STREAMS, bind, stream_logger
from engine.records import streams as telemetry
from engine.cli.exit_codes import EXIT_OK
from engine.records.streams import StreamSink, install, local_losses, read_stream, reset_local_losses, trace

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def run_dir(tmp_path: Path):
    """Sinks installed into a fresh run dir, removed again after the test (they are process-global)."""
    installed: list[telemetry.Telemetry] = []

    def _install(**kw) -> telemetry.Telemetry:
        t = install(tmp_path / "run", **kw)
        installed.append(t)
        return t

    yield tmp_path / "run", _install
    for t in installed:
        t.close()


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_each_stream_gets_its_own_file_and_every_record_carries_the_context(run_dir):
    where, install_ = run_dir
    install_()
    with bind(run_id="r1", correlation_id="r1/j1/a1", worker="w3", session="s3"):
        for stream in STREAMS:
            stream_logger(stream, "test").info(f"hello {stream}", extra={"event": "hello", "n": 1})
    for stream in STREAMS:
        [rec] = records(where / f"{stream}.jsonl")
        assert rec["message"] == f"hello {stream}" and rec["stream"] == stream
        assert {k: rec[k] for k in CONTEXT_FIELDS} == {"run_id": "r1", "correlation_id": "r1/j1/a1",
                                                        "worker": "w3", "session": "s3"}
        assert rec["event"] == "hello" and rec["n"] == 1 and rec["level"] == "INFO"
        assert rec["logger"] == f"drover.{stream}.test" and isinstance(rec["ts"], float)


def test_fields_passed_by_the_caller_win_over_the_bound_context_and_unbound_ones_are_null(run_dir):
    where, install_ = run_dir
    install_()
    log = stream_logger("domain", "test")
    with bind(run_id="r1", correlation_id="r1", worker="supervisor"):
        log.info("assigned", extra={"correlation_id": "r1/j9", "worker": "w1"})
    log.info("outside any run")
    first, second = records(where / "domain.jsonl")
    assert (first["run_id"], first["correlation_id"], first["worker"], first["session"]) == ("r1", "r1/j9", "w1",
                                                                                             None)
    assert all(second[k] is None for k in CONTEXT_FIELDS)


def test_nested_binds_restore_the_outer_context(run_dir):
    where, install_ = run_dir
    install_()
    log = stream_logger("operational", "test")
    with bind(run_id="r1", correlation_id="r1", worker="w0"):
        with bind(correlation_id="r1/j1"):
            log.info("inner")
        log.info("outer")
    inner, outer = records(where / "operational.jsonl")
    assert inner["correlation_id"] == "r1/j1" and outer["correlation_id"] == "r1"
    assert inner["worker"] == outer["worker"] == "w0"


def test_a_full_sink_counts_losses_per_stream_and_never_raises_into_the_caller(run_dir):
    where, install_ = run_dir
    t = install_(overrides={"audit": "/dev/full"})
    audit, ops = stream_logger("audit", "test"), stream_logger("operational", "test")
    for i in range(5):
        audit.info("lock acquired", extra={"i": i})  # must not raise
        ops.info("still fine", extra={"i": i})
    assert t.lost() == {"operational": 0, "performance": 0, "domain": 0, "audit": 5}
    assert t.sinks["audit"].last_error.startswith("ENOSPC")
    assert len(records(where / "operational.jsonl")) == 5  # the other streams are unaffected
    assert local_losses()["audit"] == 5
    reset_local_losses()
    assert local_losses() == dict.fromkeys(STREAMS, 0)


def test_the_environment_can_point_a_stream_elsewhere(run_dir, monkeypatch):
    where, install_ = run_dir
    monkeypatch.setenv("DROVER_LOG_DOMAIN", "/dev/full")
    t = install_()
    stream_logger("domain", "test").info("x")
    assert t.lost()["domain"] == 1 and t.sinks["domain"].path == "/dev/full"


def test_a_sink_that_cannot_even_be_opened_loses_every_record_but_install_does_not_fail(run_dir, tmp_path):
    where, install_ = run_dir
    (tmp_path / "a-file").write_text("")
    t = install_(overrides={"performance": str(tmp_path / "a-file" / "perf.jsonl")})  # ENOTDIR
    assert "cannot open" in t.sinks["performance"].last_error
    for _ in range(3):
        stream_logger("performance", "test").info("timing", extra={"ms": 1.0})
    stream_logger("domain", "test").info("fine")
    assert t.lost()["performance"] == 3 and t.lost()["domain"] == 0


def test_unserialisable_records_are_counted_not_raised(run_dir):
    where, install_ = run_dir
    t = install_()
    log = stream_logger("domain", "test")
    log.info("big", extra={"n": 2 ** 70})  # past orjson's 64-bit integers
    log.info("surrogate \ud800")
    log.info("bad %s %s", "only-one-arg")
    log.info("ok", extra={"obj": object(), "path": Path("/x")})  # unknown types are stringified
    assert t.lost()["domain"] == 3
    [ok] = records(where / "domain.jsonl")
    assert ok["message"] == "ok" and "object" in ok["obj"] and ok["path"] == "/x"


def test_a_short_write_is_counted_as_a_loss(tmp_path):
    """A write that hits a file-size limit part-way lands torn: that record is lost, and says so."""
    code = textwrap.dedent(f"""
        import logging, resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        from engine.records.streams import StreamSink
        sink = StreamSink({str(tmp_path / "ops.jsonl")!r}, "operational")
        log = logging.getLogger("drover.short")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(sink)
        for i in range(10):
            log.info("x" * 150)
        print(sink.lost, sink.last_error)
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lost = int(res.stdout.split()[0])
    whole = [line for line in (tmp_path / "ops.jsonl").read_bytes().split(b"\n")[:-1]]
    assert all(json.loads(line) for line in whole)
    assert len(whole) + lost == 10, (len(whole), res.stdout)
    assert 0 < len(whole) < 10  # some landed whole, one was torn, the rest refused


def _append_many(path: str, worker: int, n: int) -> None:
    sink = StreamSink(path, "domain")
    log = logging.getLogger(f"drover.concurrency.{worker}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(sink)
    with bind(worker=f"w{worker}"):
        for i in range(n):
            log.info("record", extra={"i": i, "pad": "y" * 3000})
    sink.close()
    os._exit(0 if sink.lost == 0 else 1)


def test_processes_appending_to_one_stream_interleave_whole_records(tmp_path):
    path = str(tmp_path / "domain.jsonl")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, w, 300)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    recs = list(read_stream(path))
    assert len(recs) == 1200 and all(r["message"] == "record" for r in recs)
    for w in range(4):
        assert [r["i"] for r in recs if r["worker"] == f"w{w}"] == list(range(300))


def test_read_stream_reports_a_garbled_line_instead_of_skipping_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"ts": 1.0, "message": "a"}\n{"ts": 2.0, "mess\n\n[1, 2]\n{"ts": 3.0, "message": "c"}\n')
    recs = list(read_stream(path))
    assert [r["message"] for r in recs] == ["a", f"unreadable record at {path}:2", "c"]
    assert recs[1]["level"] == "ERROR" and recs[1]["stream"] == "audit"


def _write(run: Path, stream: str, recs: list[dict]) -> None:
    with (run / f"{stream}.jsonl").open("a") as fh:
        for r in recs:
            fh.write(json.dumps({"stream": stream, **r}) + "\n")


@pytest.fixture
def traced(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    _write(run, "operational", [
        {"ts": 1.0, "run_id": "r1", "correlation_id": "r1", "message": "run started"},
        {"ts": 2.0, "run_id": "r1", "correlation_id": "r1/j1", "job_id": "j1", "message": "job assigned"},
        {"ts": 9.0, "run_id": "r1", "correlation_id": "r1", "message": "run finished"}])
    _write(run, "domain", [
        {"ts": 3.0, "run_id": "r1", "correlation_id": "r1/j1/a1", "message": "attempt started"},
        {"ts": 3.0, "run_id": "r1", "correlation_id": "r1/j10/a1", "message": "other job, same time"},
        {"ts": 6.0, "run_id": "r1", "correlation_id": "r1/j1/a10", "message": "tenth attempt"}])
    _write(run, "performance", [
        {"ts": 5.0, "run_id": "r1", "correlation_id": "r1/j1/a1/s2", "message": "step timing"}])
    _write(run, "audit", [
        {"ts": 3.0, "run_id": "r1", "correlation_id": "r1/j1/a1", "message": "lock acquired"},
        {"ts": 4.0, "run_id": "r2", "correlation_id": "r2/j1/a1", "message": "another run"}])
    return run


def test_trace_orders_records_by_time_then_stream(traced):
    recs = trace(traced, "r1")
    assert [r["ts"] for r in recs] == sorted(r["ts"] for r in recs)
    at_three = [(r["stream"], r["message"]) for r in recs if r["ts"] == 3.0]
    assert at_three == [("audit", "lock acquired"), ("domain", "attempt started"), ("domain", "other job, same time")]
    assert len(recs) == 8 and all(r["run_id"] == "r1" for r in recs)


def test_trace_matches_a_job_or_attempt_by_whole_correlation_segments(traced):
    job = [r["message"] for r in trace(traced, "j1")]
    assert job == ["job assigned", "lock acquired", "attempt started", "another run", "step timing", "tenth attempt"]
    assert "other job, same time" not in job  # j10 is not j1
    attempt = [r["message"] for r in trace(traced, "r1/j1/a1")]
    assert attempt == ["lock acquired", "attempt started", "step timing"]  # a10 is not a1
    assert [r["message"] for r in trace(traced, "r1/j1")] == ["job assigned", "lock acquired", "attempt started",
                                                             "step timing", "tenth attempt"]
    assert trace(traced, "r1/j") == [] and trace(traced, "nothing") == []


def test_trace_limits_to_the_streams_asked_for_and_skips_missing_files(traced):
    (traced / "performance.jsonl").unlink()
    recs = trace(traced, "r1/j1/a1", streams=("audit", "performance"))
    assert [r["message"] for r in recs] == ["lock acquired"]


def test_close_detaches_the_sinks(run_dir):
    where, install_ = run_dir
    t = install_()
    t.close()
    stream_logger("domain", "test").info("after close")
    assert records(where / "domain.jsonl") == []
    assert not any(isinstance(h, StreamSink) for h in logging.getLogger("drover.domain").handlers)


def test_installing_again_replaces_the_old_sinks_instead_of_doubling_records(run_dir, tmp_path):
    where, install_ = run_dir
    install_()
    second = install(tmp_path / "run2")
    try:
        stream_logger("domain", "test").info("once")
        assert records(where / "domain.jsonl") == []
        assert len(records(tmp_path / "run2" / "domain.jsonl")) == 1
    finally:
        second.close()


# -- end to end: a run whose audit stream points at a full disk ------------------------------------

LIGHT_FLOW = {"title": "light", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/form.html"},
    {"type": "change", "selectors": [["#name"]], "value": "${name}"},
]}


@pytest.mark.slow
def test_a_run_with_its_audit_stream_on_a_full_disk_completes_and_reports_the_loss(tmp_path, site):
    (tmp_path / "light.json").write_text(json.dumps(LIGHT_FLOW))
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps({"id": f"job-{i}", "flow": "light.json", "credential": "site/alice",
                                         "vars": {"BASE_URL": site.base_url, "name": f"N{i}"}}) + "\n"
                             for i in range(3)))
    state = tmp_path / "state"
    env = {**os.environ, "DROVER_LOG_AUDIT": "/dev/full"}
    res = subprocess.run([sys.executable, "-m", "engine", "run", str(batch), "--workers", "2",
                          "--state-dir", str(state)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == EXIT_OK, res.stdout + res.stderr
    db = sqlite3.connect(state / "results.sqlite")
    run_id, run_dir = db.execute("SELECT run_id, run_dir FROM runs").fetchone()
    assert db.execute("SELECT COUNT(*) FROM outcomes WHERE run_id = ? AND outcome = 'passed'",
                      (run_id,)).fetchone()[0] == 3
    db.close()
    # worker-side audit records (credential locks, slot ownership: >= 4 per job) are lost and counted
    line = next((ln for ln in res.stdout.splitlines() if "telemetry:" in ln), "")
    assert "telemetry: records lost per stream: audit=" in line, res.stdout
    assert int(line.split("audit=")[1].split(",")[0]) >= 4 * 3, line
    assert not (Path(run_dir) / "audit.jsonl").exists()
    # the streams that could be written carry the correlation context on every record
    by_worker: dict[str, set] = {}
    for stream in ("operational", "performance", "domain"):
        recs = list(read_stream(Path(run_dir) / f"{stream}.jsonl"))
        assert recs, stream
        for rec in recs:
            assert set(CONTEXT_FIELDS) <= set(rec), rec
            assert rec["run_id"] == run_id and str(rec["correlation_id"]).startswith(run_id), rec
            if rec["logger"] != "drover.operational.engine.execution.supervisor":  # its "job assigned" names the worker
                by_worker.setdefault(rec["worker"], set()).add(rec["session"])
    assert by_worker.get("supervisor") == {None}
    assert {w: s for w, s in by_worker.items() if w != "supervisor"} == {"w0": {"s0"}, "w1": {"s1"}}, by_worker
    attempts = [r for r in read_stream(Path(run_dir) / "domain.jsonl") if r.get("event") == "attempt_started"]
    assert sorted(r["correlation_id"] for r in attempts) == [f"{run_id}/job-{i}/a1" for i in range(3)]
