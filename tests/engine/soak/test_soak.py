"""``python -m engine soak``: the batch in a loop with SLO budgets, alerts on three sinks, evidence files."""
from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path

import pytest

from engine.cli.exit_codes import EXIT_BUSY, EXIT_NO_GO, EXIT_OK
from tests.engine.execution.test_run import LIGHT_FLOW, engine, start_engine, write_batch

EVIDENCE = ("summary.json", "alerts.jsonl", "failure_matrix.json", "drilldown.json", "report.html",
            "operational.jsonl", "performance.jsonl", "domain.jsonl", "audit.jsonl")


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        return


@pytest.fixture()
def webhook():
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", _Receiver.received
    server.shutdown()
    server.server_close()
    thread.join(5)


def _run_dir(state: Path) -> Path:
    [run] = list((state / "runs").iterdir())
    return run


@pytest.mark.slow
def test_failing_slo_alerts_on_all_three_sinks_and_gives_no_go(tmp_path, site, webhook):
    url, received = webhook
    batch = write_batch(tmp_path, site, 3, LIGHT_FLOW)
    slo = tmp_path / "slo.json"
    slo.write_text(json.dumps({"window": "6s", "thresholds": {"flow:light": ["p(95) < 1"],
                                                              "unowned_uses": ["count == 0"]}}))
    state = tmp_path / "state"
    res = engine("soak", str(batch), "--duration", "15s", "--workers", "2", "--slo", str(slo),
                 "--webhook", url, "--state-dir", str(state), timeout=180)
    assert res.returncode == EXIT_NO_GO, res.stdout + res.stderr
    assert res.stdout.count("\n") == 1 and "NO-GO" in res.stdout  # quiet enough for cron mail
    assert "ALERT" in res.stderr and "p(95) < 1" in res.stderr
    run_dir = _run_dir(state)
    for name in EVIDENCE:
        assert (run_dir / name).is_file(), f"{name} missing"
    alerts = [json.loads(line) for line in (run_dir / "alerts.jsonl").read_text().splitlines()]
    assert any(a["metric"] == "flow:light" and a["severity"] in ("warn", "critical") for a in alerts)
    assert any(a.get("metric") == "flow:light" for a in received), "the webhook got no breach"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["verdict"]["go"] is False
    assert len(summary["windows"]) >= 2 and summary["cycles"] >= 2
    first = summary["windows"][0]
    assert first["latency"]["flow:light"]["n"] > 0 and "phase:navigate" in first["latency"]
    assert summary["aggregate"]["unowned_uses"] == 0 and summary["aggregate"]["duplicates"] == 0
    # every window's jobs are distinct job ids of the run (ID@cycle), each with one outcome
    total = summary["aggregate"]["jobs"]["passed"] + summary["aggregate"]["jobs"]["failed"]
    assert total == sum(w["jobs"]["passed"] + w["jobs"]["failed"] for w in summary["windows"])


@pytest.mark.slow
def test_passing_slo_gives_go_and_a_second_soak_cannot_start(tmp_path, site):
    batch = write_batch(tmp_path, site, 2, LIGHT_FLOW)
    slo = tmp_path / "slo.toml"
    slo.write_text('window = "5s"\n[thresholds]\n"flow:light" = ["p(95) < 60000"]\nerror_rate = ["rate < 0.5"]\n')
    state = tmp_path / "state"
    first = start_engine("soak", str(batch), "--duration", "10s", "--workers", "1", "--slo", str(slo),
                         "--state-dir", str(state))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (state / "runs").exists():
            time.sleep(0.1)
        second = engine("soak", str(batch), "--duration", "5s", "--state-dir", str(state), timeout=60)
        assert second.returncode == EXIT_BUSY, second.stdout + second.stderr
        assert "another soak" in second.stderr
        out, err = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == EXIT_OK, out + err
    assert "GO" in out and "NO-GO" not in out
    summary = json.loads((_run_dir(state) / "summary.json").read_text())
    assert summary["verdict"] == {"go": True, "reasons": []}
    assert all(r["status"] in ("pass", "no data") for r in summary["aggregate"]["slo"])
