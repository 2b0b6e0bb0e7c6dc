"""Alerts: default critical triggers, SLO breaches on all three sinks, overrides, a webhook that fails safely."""
from __future__ import annotations

import collections
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from coordination.telemetry_context import bind, stream_logger
from engine.records import streams as telemetry
from engine.soak.alerts import (DEFAULT_RULES, Alert, AlertConfig, AlertManager, AlertRule, Condition, JsonlSink,
                           StderrSink, WebhookSink, recent_errors, severity_rank, write_diagnostic)
from engine.errors import ConfigError, EngineError
from engine.evidence.slo import load_slo
from tests.engine.evidence.test_slo import window


class Receiver:
    """A real HTTP endpoint on 127.0.0.1: records every POST and answers with the next queued status."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: collections.deque[int] = collections.deque()
        self.hold = threading.Event()  # set: answer; clear: hang until released (for timeouts)
        self.hold.set()
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "type": self.headers["Content-Type"],
                                          "body": json.loads(body)})
                receiver.got.set()
                receiver.hold.wait(10)
                status = receiver.statuses.popleft() if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-secret?sig=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def run_dir(tmp_path: Path):
    """A run directory with the four streams installed (the alert code logs into them)."""
    where = tmp_path / "run"
    t = telemetry.install(where)
    yield where
    t.close()


def ops_records(run_dir: Path, event: str) -> list[dict]:
    return [r for r in telemetry.read_stream(run_dir / "operational.jsonl") if r.get("event") == event]


def slo_file(tmp_path: Path, data: dict, name: str = "slo.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def no_sleep(_s: float) -> None:
    return None


# -- the three sinks ----------------------------------------------------------------------------------


def test_an_slo_breach_reaches_stderr_alerts_jsonl_and_the_webhook_within_one_evaluation(tmp_path, run_dir,
                                                                                           receiver):
    spec = load_slo(slo_file(tmp_path, {"window": "30s", "thresholds": {"flow:checkout": ["p(95) < 1"],
                                                                         "error_rate": ["rate < 0.5"]}}))
    lines: list[str] = []
    webhook = WebhookSink(receiver.url, timeout=2.0)
    manager = AlertManager.from_spec(spec, [StderrSink(lines.append), JsonlSink(run_dir), webhook], run_id="r1")
    alerts = manager.evaluate(window(index=0))
    manager.close()

    [alert] = alerts
    assert (alert.severity, alert.rule, alert.metric, alert.value, alert.threshold, alert.window) == (
        "warn", "slo_breach", "flow:checkout", 780.0, "p(95) < 1", 0)
    assert lines == ["ALERT warn [slo_breach] window 0: SLO breached in window 0: flow:checkout p(95) < 1 "
                     "(measured 780)"]
    [record] = [json.loads(x) for x in (run_dir / "alerts.jsonl").read_text().splitlines()]
    assert record == {"ts": alert.ts, "severity": "warn", "rule": "slo_breach", "metric": "flow:checkout",
                      "value": 780.0, "threshold": "p(95) < 1", "window": 0, "message": alert.message,
                      "run_id": "r1"}
    [posted] = receiver.requests
    assert posted["body"] == record and posted["type"] == "application/json"
    assert posted["path"] == "/hooks/T0KEN-secret?sig=abc"
    assert (webhook.delivered, webhook.failures) == (1, 0)
    assert manager.breached and manager.critical == () and manager.halt_reason is None
    assert [r.status for r in manager.last_results] == ["fail", "pass"]
    [logged] = ops_records(run_dir, "alert")
    assert (logged["severity"], logged["rule"], logged["level"]) == ("warn", "slo_breach", "WARNING")


def test_an_abort_on_fail_breach_is_critical_and_halts_with_a_diagnostic(tmp_path, run_dir):
    spec = load_slo(slo_file(tmp_path, {"thresholds": {"flow:checkout": [
        "p(95) < 1000", {"threshold": "p(99) < 800", "abortOnFail": True}]}}))
    manager = AlertManager.from_spec(spec, [JsonlSink(run_dir)], run_id="r1")
    assert manager.evaluate(window(index=0), []) != []
    assert manager.critical[0].severity == "critical"
    assert manager.halt_reason == "slo_breach: SLO breached in window 0: flow:checkout p(99) < 800 (measured 900)"
    with bind(run_id="r1", correlation_id="r1/j7/a1", worker="w0"):
        stream_logger("domain", "test").warning("step failed", extra={"event": "step_failed", "error": "boom"})
    path = manager.write_diagnostic(run_dir, windows=[window(index=0)])
    assert path.parent == run_dir and path.name.startswith("diagnostic-") and path.suffix == ".json"
    diag = json.loads(path.read_text())
    assert diag["reason"] == manager.halt_reason and diag["run_id"] == "r1"
    assert diag["alert"]["threshold"] == "p(99) < 800" and diag["windows"][0]["index"] == 0
    assert [r["event"] for r in diag["recent_errors"]] == ["alert", "step_failed"]  # the alert itself is logged
    assert diag["recent_errors"][1]["correlation_id"] == "r1/j7/a1"
    assert [s["status"] for s in diag["slo"]] == ["pass", "fail"]
    assert not list(run_dir.glob("*.tmp"))


# -- the default critical triggers -----------------------------------------------------------------------


def rules_fired(manager: AlertManager, w: dict, history: list[dict]) -> list[tuple[str, str]]:
    return [(a.rule, a.severity) for a in manager.evaluate(w, history)]


def test_error_rate_over_ten_percent_is_critical_only_after_three_consecutive_windows():
    manager = AlertManager([])
    history: list[dict] = []
    fired = []
    for i, rate in enumerate([0.2, 0.3, 0.15, 0.05, 0.2, 0.2, 0.2]):
        w = window(index=i, error_rate=rate)
        fired.append(rules_fired(manager, w, history))
        history = (history + [w])[-5:]  # the soak keeps a bounded history
    assert fired == [[], [], [("error_rate_sustained", "critical")], [], [], [],
                     [("error_rate_sustained", "critical")]]
    assert manager.critical[0].message == "error rate 0.15 > 0.1 for 3 consecutive windows"
    assert manager.critical[0].threshold == "error_rate > 0.1 for 3 consecutive windows"


def test_a_gap_or_a_window_without_jobs_breaks_the_streak():
    manager = AlertManager([])
    hot = [window(index=0, error_rate=0.5), window(index=1, error_rate=0.5)]
    assert rules_fired(manager, window(index=3, error_rate=0.5), hot) == []  # window 2 is missing
    idle = window(index=1, error_rate=0.0, jobs={"passed": 0, "failed": 0})
    assert rules_fired(manager, window(index=2, error_rate=0.5), [hot[0], idle]) == []
    assert rules_fired(manager, window(index=2, error_rate=0.5), hot) == [("error_rate_sustained", "critical")]
    # a history that already holds the current window does not count it twice
    assert rules_fired(AlertManager([]), hot[1], hot) == []


def test_duplicates_memory_and_deadlock_are_critical_in_the_window_they_happen():
    manager = AlertManager([])
    assert rules_fired(manager, window(index=0), []) == []
    assert rules_fired(manager, window(index=1, duplicates=1), []) == [("duplicate_outcomes", "critical")]
    assert rules_fired(manager, window(index=2, supervisor_rss_mb=1024.0), []) == []
    assert rules_fired(manager, window(index=3, supervisor_rss_mb=1030.5), []) == [("supervisor_memory", "critical")]
    assert rules_fired(manager, window(index=4, idle_workers_s=900.0, queued=0), []) == []  # idle, nothing waits
    assert rules_fired(manager, window(index=5, idle_workers_s=601.0, queued=4), []) == [("deadlock", "critical")]
    messages = [a.message for a in manager.critical]
    assert messages == ["1 duplicate outcome(s) refused in window 1",
                        "supervisor memory 1030.5 MB past the 1024 MB limit",
                        "all workers idle for 601 s while 4 job(s) wait (deadlock?)"]
    assert manager.halt_reason == "duplicate_outcomes: 1 duplicate outcome(s) refused in window 1"
    assert manager.counts == {"info": 0, "warn": 0, "critical": 3}


def test_worker_restarts_count_over_the_whole_soak_and_fire_once():
    manager = AlertManager([])
    fired = [rules_fired(manager, window(index=i, worker_restarts=n), []) for i, n in enumerate([2, 2, 1, 1, 3])]
    assert fired == [[], [], [], [("worker_restarts", "critical")], []]
    assert manager.critical[0].value == 6.0 and manager.critical[0].threshold == "worker_restarts > 5 (run total)"
    # the open window evaluated every tick counts with its latest figure, never twice
    ticks = AlertManager([])
    for n in (1, 2, 2, 2):
        ticks.evaluate(window(index=0, worker_restarts=n))
    assert ticks.critical == ()
    ticks.evaluate(window(index=1, worker_restarts=1))
    ticks.evaluate(window(index=1, worker_restarts=4))
    assert [a.value for a in ticks.critical] == [6.0]
    ticks.evaluate(window(index=0, worker_restarts=50))  # a stale window is ignored
    assert len(ticks.critical) == 1


def test_severities_are_ordered_data():
    assert [severity_rank(s) for s in ("info", "warn", "critical")] == [0, 1, 2]
    assert {r.severity for r in DEFAULT_RULES} == {"critical"}
    assert {r.name for r in DEFAULT_RULES} == {"error_rate_sustained", "duplicate_outcomes", "supervisor_memory",
                                               "worker_restarts", "deadlock"}


# -- overrides from the SLO file --------------------------------------------------------------------------


def test_the_slo_file_moves_limits_changes_severities_disables_and_adds_rules(tmp_path):
    spec = load_slo(slo_file(tmp_path, {
        "thresholds": {"throughput": ["value > 100"]},
        "alerts": {"supervisor_memory": {"threshold": 2048},
                   "worker_restarts": {"severity": "warn", "threshold": 1},
                   "duplicate_outcomes": {"enabled": False},
                   "error_rate_sustained": {"windows": 2, "threshold": 0.2},
                   "deadlock": {"while": None, "threshold": 30},
                   "slo_breach": {"severity": "info"},
                   "slow_fleet": {"metric": "throughput", "op": "<", "threshold": 0.5, "severity": "warn",
                                  "message": "throughput {value} jobs/s below {bound} in window {window}"}}}))
    config = AlertConfig.from_spec(spec)
    assert [r.name for r in config.rules] == ["error_rate_sustained", "supervisor_memory", "worker_restarts",
                                              "deadlock", "slow_fleet"]
    assert config.slo_breach_severity == "info"
    manager = AlertManager.from_spec(spec, [])
    assert rules_fired(manager, window(index=0, supervisor_rss_mb=1500.0, duplicates=3), []) == [
        ("slo_breach", "info")]
    got = rules_fired(manager, window(index=1, worker_restarts=2, throughput=0.4, error_rate=0.3,
                                      idle_workers_s=31.0, queued=0),
                      [window(index=0, error_rate=0.25)])
    assert got == [("error_rate_sustained", "critical"), ("worker_restarts", "warn"), ("deadlock", "critical"),
                   ("slow_fleet", "warn"), ("slo_breach", "info")]
    assert manager.recent[-2].message == "throughput 0.4 jobs/s below 0.5 in window 1"
    assert manager.critical and manager.counts["warn"] == 2


@pytest.mark.parametrize("alerts, message", [
    ({"supervisor_memory": {"limit": 5}}, 'alerts["supervisor_memory"]: unknown key(s) [\'limit\']'),
    ({"supervisor_memory": {"severity": "page"}}, "severity must be one of"),
    ({"supervisor_memory": {"threshold": "1GB"}}, "threshold must be a number"),
    ({"deadlock": {"while": {"metric": "queued", "op": ">"}}}, 'alerts["deadlock"]: while must be'),
    ({"deadlock": {"metric": "idle_seconds"}}, "unknown metric 'idle_seconds'"),
    ({"nightly": {"metric": "queued"}}, 'alerts["nightly"]: a new rule needs [\'op\', \'threshold\', \'severity\']'),
    ({"nightly": {"enabled": False}}, "no default rule 'nightly' to disable"),
    ({"Bad-Name": {"metric": "queued", "op": ">", "threshold": 1, "severity": "warn"}}, "lower_case"),
    ({"deadlock": {"message": "stuck for {seconds}"}}, "unknown field {seconds}"),
    ({"deadlock": {"message": "stuck for {value:.1f}"}}, "write plain {value}"),
    ({"worker_restarts": {"windows": 3}}, "cannot also need consecutive windows"),
    ({"error_rate_sustained": {"windows": 0}}, "windows must be an integer >= 1"),
    ({"slo_breach": {"severity": "critical", "enabled": False}}, 'alerts["slo_breach"]: only "severity"'),
    ({"deadlock": 600}, 'alerts["deadlock"]: must be an object'),
])
def test_bad_overrides_name_the_file_and_the_rule(tmp_path, alerts, message):
    path = slo_file(tmp_path, {"alerts": alerts})
    with pytest.raises(ConfigError) as info:
        AlertConfig.from_spec(load_slo(path))
    assert message in str(info.value) and str(path) in str(info.value)


def test_no_slo_file_means_the_default_rules():
    assert AlertConfig.from_spec(None) == AlertConfig(DEFAULT_RULES, "warn")
    manager = AlertManager.from_spec(None, [])
    assert manager.evaluate(window()) == [] and manager.last_results == ()
    assert manager.evaluate_run(window(index="run")) == []


def test_a_threshold_that_never_saw_data_in_the_whole_run_is_a_warning(tmp_path, run_dir):
    spec = load_slo(slo_file(tmp_path, {"thresholds": {"flow:chekout": ["p(95) < 800"],
                                                       "flow:checkout": ["p(95) < 700"]}}))
    lines: list[str] = []
    manager = AlertManager.from_spec(spec, [StderrSink(lines.append)])
    assert manager.evaluate(window(index=0))[0].rule == "slo_breach"
    got = manager.evaluate_run(window(index="run"))
    assert [(a.rule, a.severity, a.metric, a.window) for a in got] == [
        ("slo_breach", "warn", "flow:checkout", "run"), ("slo_no_data", "warn", "flow:chekout", "run")]
    assert lines[1].startswith("ALERT warn [slo_breach] whole run: SLO breached over the whole run")
    assert "is the flow or phase name right?" in lines[2]


def test_rules_are_checked_when_built():
    with pytest.raises(ConfigError, match="unknown operator '=>'"):
        Condition("queued", "=>", 1)
    with pytest.raises(ConfigError, match="severity must be one of"):
        AlertRule("x", "fatal", Condition("queued", ">", 1), "m")
    with pytest.raises(ConfigError, match="names must be unique"):
        AlertManager([], DEFAULT_RULES + DEFAULT_RULES[:1])


# -- failing sinks never raise into the soak -----------------------------------------------------------


def an_alert(rule: str = "deadlock") -> Alert:
    return Alert(1795571265.2, "critical", rule, "idle_workers_s", 900.0, "idle_workers_s > 600", 3, "stuck", "r1")


def test_a_webhook_answering_500_is_retried_then_counted_and_logged_without_its_token(run_dir, receiver):
    receiver.statuses.extend([500, 503, 502])
    delays: list[float] = []
    sink = WebhookSink(receiver.url, timeout=2.0, retries=2, backoff_s=0.25, sleep=delays.append)
    sink.emit(an_alert())  # does not raise
    assert len(receiver.requests) == 3 and delays == [0.25, 0.5]
    assert (sink.delivered, sink.failures, sink.requests) == (0, 1, 3)
    assert sink.last_error == "HTTP 502 Bad Gateway"
    [logged] = ops_records(run_dir, "alert_webhook_failed")
    assert logged["target"] == receiver.url.split("/hooks")[0] and logged["tries"] == 3
    assert "T0KEN" not in (run_dir / "operational.jsonl").read_text()
    sink.emit(an_alert())  # the receiver recovered
    assert (sink.delivered, sink.failures) == (1, 1)


def test_client_errors_and_redirects_are_not_retried_or_followed(receiver):
    receiver.statuses.extend([400, 302])
    sink = WebhookSink(receiver.url, retries=3, sleep=no_sleep)
    sink.emit(an_alert())
    sink.emit(an_alert())
    assert len(receiver.requests) == 2 and sink.failures == 2
    assert sink.last_error.startswith("HTTP 302")


def test_an_unreachable_or_hanging_webhook_is_bounded_and_a_breaker_stops_hammering_it(receiver):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    now = [0.0]
    dead = WebhookSink(f"http://127.0.0.1:{dead_port}/x", timeout=0.5, retries=1, sleep=no_sleep,
                       breaker_after=2, cooldown_s=60.0, clock=lambda: now[0])
    for _ in range(5):
        dead.emit(an_alert())
    assert (dead.failures, dead.skipped, dead.requests) == (5, 3, 4)
    assert "ConnectionRefusedError" in dead.last_error
    now[0] = 61.0  # the cooldown is over: it tries again
    dead.emit(an_alert())
    assert dead.requests == 6

    receiver.hold.clear()  # the receiver accepts and never answers
    hanging = WebhookSink(receiver.url, timeout=0.2, retries=0, sleep=no_sleep)
    hanging.emit(an_alert())
    assert hanging.failures == 1 and "timed out" in hanging.last_error.lower()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "127.0.0.1:8080/hook", "http://",
                                 "javascript:alert(1)"])
def test_only_http_and_https_webhooks_are_accepted(url):
    with pytest.raises(ConfigError, match="must be http:// or https://"):
        WebhookSink(url)


def test_a_broken_stderr_or_a_vanished_run_dir_is_counted_not_raised(tmp_path, run_dir):
    def broken(_line: str) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    stderr, jsonl = StderrSink(broken), JsonlSink(tmp_path / "gone")
    manager = AlertManager([stderr, jsonl])
    manager.evaluate(window(index=0, duplicates=2))
    assert manager.sink_failures == {"StderrSink": 1, "JsonlSink": 1}
    assert {r["sink"] for r in ops_records(run_dir, "alert_sink_failed")} == {"stderr", str(tmp_path / "gone" /
                                                                                          "alerts.jsonl")}


# -- diagnostics ----------------------------------------------------------------------------------------


def test_diagnostic_files_never_overwrite_each_other_and_read_only_the_tail_of_the_streams(tmp_path, run_dir):
    log = stream_logger("operational", "test")
    for i in range(300):
        log.error("worker died", extra={"event": "worker_died", "n": i})
        log.info("noise", extra={"event": "noise", "pad": "x" * 200})
    errors = recent_errors(run_dir, limit=5, tail_bytes=4096)
    assert [e["n"] for e in errors] == [295, 296, 297, 298, 299]
    first = write_diagnostic(run_dir, "manual", {"windows": [], "path": tmp_path, "tags": {"b", "a"}})
    second = write_diagnostic(run_dir, "manual", {"recent_errors": []})
    assert first != second and first.exists() and second.exists()
    body = json.loads(first.read_text())
    assert body["reason"] == "manual" and body["path"] == str(tmp_path) and body["tags"] == ["a", "b"]
    assert len(body["recent_errors"]) == 20 and json.loads(second.read_text())["recent_errors"] == []
    with pytest.raises(EngineError, match="cannot write diagnostic"):
        write_diagnostic(tmp_path / "missing", "x", {"recent_errors": []})


def test_a_window_the_slos_cannot_read_raises_but_the_critical_alerts_were_already_out(tmp_path, run_dir):
    spec = load_slo(slo_file(tmp_path, {"thresholds": {"flow:checkout": ["p(90) < 800"]}}))
    manager = AlertManager.from_spec(spec, [JsonlSink(run_dir)])
    with pytest.raises(ValueError, match="has no 'p90'"):
        manager.evaluate(window(index=0, duplicates=1))
    manager.close()
    [record] = [json.loads(x) for x in (run_dir / "alerts.jsonl").read_text().splitlines()]
    assert record["rule"] == "duplicate_outcomes" and manager.halt_reason is not None
