"""Remote browsers end to end: ``python -m engine run --cdp-endpoint URL`` against a Chromium the test owns.

The browser is the test's (:class:`tests._remote_browser.ExternalChromium`: its
own process, its own port on 127.0.0.1).  Drover connects to it by URL, must
never kill it, and must survive the test killing it and starting a new one
on the same port.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.commands.health import HEALTH_CODES
from engine.cli.exit_codes import EXIT_OK
from engine.config import load_settings
from engine.errors import ConfigError
from engine.execution import assembly
from navigation import cookie_state
from navigation.remote import RemoteBrowserLifecycle
from tests._remote_browser import ExternalChromium, free_port
from tests._wait import wait_for
from tests.engine.execution.test_run import LIGHT_FLOW, SLOW_FLOW, db, last_run, outcomes, stream_events, write_batch

REPO = Path(__file__).resolve().parents[2]


def engine(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def finished(state: Path) -> int:
    run = last_run(state)
    return 0 if run is None else len(outcomes(state, run[0]))


# -- settings (no browser) ----------------------------------------------------------------

def test_endpoints_from_file_env_and_flag_are_validated_and_redacted(tmp_path):
    cfg = tmp_path / "drover.toml"
    cfg.write_text('[browser]\nendpoints = ["http://127.0.0.1:9222", "ws://h:1/devtools/browser/abc"]\n')
    assert load_settings(str(cfg), env={}).settings.browser_endpoints == (
        "http://127.0.0.1:9222", "ws://h:1/devtools/browser/abc")
    loaded = load_settings(str(cfg), env={"DROVER_CDP_ENDPOINTS": "http://a:1, http://b:2\nhttp://c:3"})
    assert loaded.settings.browser_endpoints == ("http://a:1", "http://b:2", "http://c:3")
    assert loaded.origins["browser_endpoints"] == "DROVER_CDP_ENDPOINTS (environment)"
    flag = load_settings(str(cfg), env={"DROVER_CDP_ENDPOINTS": "http://a:1"},
                         overrides={"browser_endpoints": ("http://z:9",)})
    assert flag.settings.browser_endpoints == ("http://z:9",)
    with pytest.raises(ConfigError, match=r"browser.endpoints\[0\].*host:port") as err:
        load_settings(str(cfg), env={"DROVER_CDP_ENDPOINTS": "http://admin:s3cret@nohost"})
    assert "s3cret" not in str(err.value)
    cfg.write_text('[browser]\nendpoints = ["ws://h:1/devtools/page/1"]\n')
    with pytest.raises(ConfigError, match="devtools/browser/ID"):
        load_settings(str(cfg), env={})


def test_worker_i_gets_endpoint_i_mod_n(tmp_path):
    s = load_settings(None, env={"DROVER_CDP_ENDPOINTS": "http://a:1 http://b:2"}, cwd=str(tmp_path),
                      overrides={"state_dir": str(tmp_path)}).settings
    homes = [assembly.open_lifecycle(s, cohort=f"w{i}", seed=0, index=i).endpoints[0].host for i in range(3)]
    assert homes == ["a", "b", "a"]
    assert isinstance(assembly.open_lifecycle(s, cohort="w0", seed=0), RemoteBrowserLifecycle)


def test_config_command_shows_endpoints_redacted(tmp_path):
    res = subprocess.run([sys.executable, "-m", "engine", "config"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "DROVER_CDP_ENDPOINTS": "http://admin:s3cret@127.0.0.1:9222?token=t0k"},
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "http://127.0.0.1:9222?token=***" in res.stdout
    assert "s3cret" not in res.stdout and "t0k" not in res.stdout


def test_health_checks_every_endpoint_and_fails_when_one_is_down(tmp_path):
    with ExternalChromium() as ext:
        down = f"http://admin:s3cret@127.0.0.1:{free_port()}"
        res = engine("health", "--state-dir", str(tmp_path), "--cdp-endpoint", ext.http_url, "--cdp-endpoint", down)
        assert res.returncode == HEALTH_CODES["cdp-endpoints"], res.stdout + res.stderr
        assert f"endpoint {ext.http_url} ok: HeadlessChrome/" in res.stdout or \
            f"endpoint {ext.http_url} ok: Chrome/" in res.stdout, res.stdout
        assert "down" in res.stdout and "s3cret" not in res.stdout + res.stderr
        ok = engine("health", "--state-dir", str(tmp_path), "--cdp-endpoint", ext.http_url)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ext.alive()


# -- batches against the test's own browser -----------------------------------------------------

def test_batch_runs_on_a_browser_drover_did_not_start_and_leaves_it_running(tmp_path, site):
    """Two workers, endpoints [down, up]: worker 0's home is down, so it fails over; all jobs pass."""
    with ExternalChromium() as ext:
        pid = ext.proc.pid
        batch = write_batch(tmp_path, site, 4, LIGHT_FLOW)
        state = tmp_path / "state"
        dead = f"http://127.0.0.1:{free_port()}"
        res = engine("run", str(batch), "--workers", "2", "--state-dir", str(state),
                     "--cdp-endpoint", dead, "--cdp-endpoint", ext.http_url)
        assert res.returncode == EXIT_OK, res.stdout + res.stderr
        run_id, run_dir = last_run(state)
        assert set(outcomes(state, run_id).values()) == {"passed"} and len(outcomes(state, run_id)) == 4
        assert "unowned session uses=0 invalid transitions=0" in res.stdout, res.stdout
        assert ext.alive() and ext.proc.pid == pid and ext.killed_by_test == [], "Drover must never kill it"
        ops = stream_events(run_dir, "operational")
        connects = [r for r in ops if r.get("event") == "remote_connect"]
        assert {r["endpoint"] for r in connects} == {ext.http_url}
        assert any(r["fallback"] for r in connects)  # worker 0: home endpoint down, moved to the other
        assert not [r for r in ops if r.get("event") in ("launch", "restart", "recycle")]  # nothing launched


@pytest.mark.timeout(300)
def test_killing_the_browser_mid_batch_and_starting_a_new_one_on_the_same_port_is_survived(tmp_path, site):
    ext = ExternalChromium().start()
    proc = None
    try:
        first_pid = ext.proc.pid
        batch = write_batch(tmp_path, site, 6, SLOW_FLOW, retries=4, extra_vars={"ms": "700"})
        state = tmp_path / "state"
        proc = subprocess.Popen([sys.executable, "-m", "engine", "run", str(batch), "--workers", "2",
                                 "--state-dir", str(state), "--cdp-endpoint", ext.http_url],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: finished(state) >= 1, 120, "a first job to finish on the first browser")
        assert ext.alive(), "Drover must not have killed the browser"
        ext.kill()  # the test, and only the test, kills it
        ext.start()  # a new browser on the same port (a new browser id)
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == EXIT_OK, out + err
        run_id, run_dir = last_run(state)
        assert outcomes(state, run_id) == {f"job-{i:03d}": "passed" for i in range(6)}
        assert "unowned session uses=0 invalid transitions=0" in out, out
        assert ext.killed_by_test == [first_pid] and ext.alive(), "only the test kills its browsers"
        ops = stream_events(run_dir, "operational")
        assert any(r.get("event") == "reconnect" and r.get("outcome") == "ok" for r in ops)
        assert not [r for r in ops if r.get("event") in ("launch", "restart", "recycle")]
        retried = db(state).execute("SELECT COUNT(*) FROM attempts WHERE run_id = ? AND outcome = 'retry'",
                                    (run_id,)).fetchone()[0]
        assert retried >= 1  # the jobs in flight on the killed browser were retried
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        ext.kill()


COOKIE_FLOW = {"title": "cookie", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/form.html"},
    # fails unless the cookie jar is what this credential's earlier jobs left: ${had} is the expected state
    {"type": "waitForExpression", "timeout": 3000, "expression":
        "(document.cookie.includes('sid=${who}') === ${had} && !/sid=(?!${who})/.test(document.cookie))"
        " && (document.cookie = 'sid=${who}; max-age=3600', true)"},
]}


def test_credential_jobs_get_a_context_each_and_their_cookies_survive_between_jobs(tmp_path, site):
    with ExternalChromium() as ext:
        flow = tmp_path / "cookie.json"
        flow.write_text(json.dumps(COOKIE_FLOW))
        jobs = [("a1", "shop/alice", "false"), ("b1", "shop/bob", "false"), ("a2", "shop/alice", "true"),
                ("b2", "shop/bob", "true")]
        batch = tmp_path / "batch.jsonl"
        batch.write_text("".join(json.dumps({"id": i, "flow": "cookie.json", "credential": c, "retries": 0,
                                             "vars": {"BASE_URL": site.base_url, "who": c.split("/")[1],
                                                      "had": had}}) + "\n" for i, c, had in jobs))
        state = tmp_path / "state"
        res = engine("run", str(batch), "--workers", "1", "--state-dir", str(state), "--cdp-endpoint", ext.http_url)
        run_id, _ = last_run(state)
        failures = db(state).execute("SELECT job_id, category, error FROM outcomes WHERE run_id = ? AND "
                                     "outcome = 'failed'", (run_id,)).fetchall()
        assert res.returncode == EXIT_OK, f"{failures}\n{res.stdout}{res.stderr}"
        assert outcomes(state, run_id) == {"a1": "passed", "b1": "passed", "a2": "passed", "b2": "passed"}
        for who in ("alice", "bob"):
            path = cookie_state.state_path(str(state), f"shop/{who}")
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert [c["value"] for c in cookie_state.load(path) if c["name"] == "sid"] == [who]
        assert ext.alive()
