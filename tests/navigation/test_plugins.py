"""Step plugins: entry points (``drover.steps``, ``drover.legacy_flows``) and ``--plugin MODULE``.

The entry-point test puts a tiny distribution's ``.dist-info`` on
``sys.path``; the CLI test runs ``python -m engine run --plugin ...`` with
one forked worker, so the handler is proven to run in the worker.
"""
from __future__ import annotations

import importlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import navigation.legacy
import navigation.steps.plugins as plugins
from navigation.errors import PluginError
from navigation.flow import parse_flow
from navigation.legacy import LegacyRegistry
from navigation.steps import build_registry

REPO = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 300

EP_MODULE = '''
from navigation.steps import StepOutcome, StepStrategy

def stamp(step, ctx):
    return StepOutcome(detail={"stamped": True})

class EpType(StepStrategy):
    name = "ep-type"
    handles = frozenset({"epType"})

    def run(self, step, ctx):
        return StepOutcome()

def legacy_flow(ctx):
    ctx.navigate(ctx.variables["BASE_URL"] + "/form.html")
'''

# The --plugin module: a customStep handler that leaves a file saying which process ran it.
CLI_PLUGIN = '''
import json, os
from navigation.steps import StepOutcome

def stamp(step, ctx):
    href = ctx.page.evaluate("location.href", await_promise=False)
    with open(step.parameters["file"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "href": href}) + "\\n")
    return StepOutcome()

def register_steps(registry):
    registry.register_custom("drover-test-stamp", stamp)
'''


@pytest.fixture()
def clean_plugin_state(monkeypatch):
    """A fresh legacy registry and plugin state, so nothing a test registers outlives it."""
    monkeypatch.setattr(navigation.legacy, "REGISTRY", LegacyRegistry())
    monkeypatch.setattr(plugins, "_ACTIVE", plugins._Active())


def test_entry_points_add_strategies_custom_handlers_and_legacy_flows(tmp_path, monkeypatch, clean_plugin_state):
    (tmp_path / "drover_test_ep_mod.py").write_text(EP_MODULE)
    info = tmp_path / "drover_test_ep-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: drover-test-ep\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [drover.steps]
        ep-stamp = drover_test_ep_mod:stamp
        ep-type = drover_test_ep_mod:EpType

        [drover.legacy_flows]
        ep_legacy = drover_test_ep_mod:legacy_flow
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    registry = build_registry()
    assert "ep-stamp" in registry.custom_names
    assert "epType" in registry.extra_types()
    assert registry.chain[0].name == "ep-type"  # plugins sit in front of the built-ins
    assert "ep_legacy" in navigation.legacy.REGISTRY.names()
    flow = parse_flow({"title": "t", "steps": [{"type": "customStep", "name": "ep-stamp", "parameters": {}},
                                               {"type": "epType"}]},
                      source="ep.json", extra_types=registry.extra_types())
    assert build_registry(strict=True).problems(flow) == []
    build_registry()  # a second build registers the legacy flow only once: no "already registered"


def test_a_plugin_that_cannot_be_imported_is_named(clean_plugin_state):
    with pytest.raises(PluginError, match="--plugin drover_no_such_module: cannot import it"):
        plugins.activate(["drover_no_such_module"])
    with pytest.raises(PluginError, match="give a module name"):
        plugins.activate(["plugins/stamp.py"])


def engine(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT, env=env)


def last_run_dir(state: Path) -> Path:
    with sqlite3.connect(state / "results.sqlite") as db:
        return Path(db.execute("SELECT run_dir FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0])


@pytest.mark.chromium
@pytest.mark.slow
def test_run_with_a_plugin_runs_its_custom_step_in_the_worker(tmp_path, site):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "drover_test_plugin.py").write_text(CLI_PLUGIN)
    stamps = tmp_path / "stamps.jsonl"
    flow = {"title": "custom", "steps": [
        {"type": "navigate", "url": "${BASE_URL}/form.html"},
        {"type": "customStep", "name": "drover-test-stamp", "parameters": {"file": str(stamps)}},
    ]}
    (tmp_path / "custom.json").write_text(json.dumps(flow))
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"id": "j1", "flow": "custom.json", "vars": {"BASE_URL": site.base_url}}) + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)])}

    state = tmp_path / "with"
    with_plugin = subprocess.Popen([sys.executable, "-m", "engine", "run", str(batch), "--workers", "1",
                                    "--state-dir", str(state), "--plugin", "drover_test_plugin", "--strict"],
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = with_plugin.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert with_plugin.returncode == 0, out + err
    (stamp,) = [json.loads(line) for line in stamps.read_text().splitlines()]
    assert stamp["href"] == f"{site.base_url}/form.html"
    assert stamp["pid"] != with_plugin.pid  # it ran in the forked worker, not in the supervisor

    state = tmp_path / "without"
    done = engine("run", str(batch), "--workers", "1", "--state-dir", str(state), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(stamps.read_text().splitlines()) == 1  # nothing ran the step this time
    domain = [json.loads(line) for line in (last_run_dir(state) / "domain.jsonl").read_text().splitlines()]
    skipped = [r for r in domain if r.get("event") == "custom_step_skipped"]
    assert len(skipped) == 1 and "step 1 (customStep 'drover-test-stamp')" in skipped[0]["detail"]

    rejected = engine("run", str(batch), "--workers", "1", "--state-dir", str(tmp_path / "strict"), "--strict",
                      env=env)
    assert rejected.returncode == 2, rejected.stdout + rejected.stderr
    assert "step 1 (customStep 'drover-test-stamp')" in rejected.stderr and "--strict" in rejected.stderr
    assert not (tmp_path / "strict").exists() or not list((tmp_path / "strict").rglob("*.jsonl"))


def test_validate_and_replay_take_the_plugin_too(tmp_path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "drover_test_plugin.py").write_text(CLI_PLUGIN)
    flow = tmp_path / "custom.json"
    flow.write_text(json.dumps({"title": "custom", "steps": [
        {"type": "customStep", "name": "drover-test-stamp", "parameters": {"file": "x"}}]}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)])}
    ok = engine("validate", str(flow), "--strict", "--plugin", "drover_test_plugin", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    noted = engine("validate", str(flow), env=env)
    assert noted.returncode == 0 and "skipped when run" in noted.stdout, noted.stdout
    strict = engine("validate", str(flow), "--strict", env=env)
    assert strict.returncode == 2 and "step 0 (customStep 'drover-test-stamp')" in strict.stdout, strict.stdout
    missing = engine("replay", str(flow), "--plugin", "drover_no_such_module", env=env)
    assert missing.returncode == 2 and "drover_no_such_module" in missing.stderr, missing.stderr
