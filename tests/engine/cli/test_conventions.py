"""Conventions every command keeps: DROVER_STATE_DIR honoured, one exit code and hint for a missing or unreadable
store, ``--version`` and a console script that names itself."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.exit_codes import EXIT_BUSY, EXIT_INPUT
from engine.cli.main import COMMANDS
from engine.cli.version import DISTRIBUTION, VERSION
from engine.records import statedir
from tests.engine.cli.test_monitor import RUN, make_state
from tests.engine.execution.test_run import LIGHT_FLOW

REPO = Path(__file__).resolve().parents[3]
HINT = "give the state directory of a run with --state-dir DIR or DROVER_STATE_DIR"

# Commands that have no state directory to honour, and why (a new command must be listed here or checked below).
NO_STATE_DIR = {
    "demo": "runs in a private temporary state directory it removes",
    "validate": "reads flow files only",
    "replay": "one flow on one browser, artifacts in --artifacts; no results store",
    "report": "takes the run directory itself",
    "readiness": "takes the run directory itself",
}


def drover(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m engine`` from ``cwd`` (so no ./drover-state or ./drover.toml of the repository is found)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    full = {**base, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout)


def valid_batch(tmp: Path) -> Path:
    (tmp / "light.json").write_text(json.dumps(LIGHT_FLOW))
    batch = tmp / "batch.jsonl"
    batch.write_text(json.dumps({"id": "j0", "flow": "light.json", "vars": {"BASE_URL": "http://127.0.0.1:9"}}) + "\n")
    return batch


def test_every_command_with_DROVER_STATE_DIR_set_honours_it(tmp_path):
    state = make_state(tmp_path)  # a store with run RUN, in a directory no default would find
    with (state / "runs" / RUN / "domain.jsonl").open("w") as fh:
        fh.write(json.dumps({"ts": 1.0, "stream": "domain", "level": "INFO", "message": "attempt started",
                             "run_id": RUN, "correlation_id": f"{RUN}/j0/a1", "worker": "w0"}) + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"DROVER_STATE_DIR": str(state)}
    batch = valid_batch(tmp_path)
    checked: dict[str, str] = {}

    res = drover("config", cwd=work, env=env)
    assert res.returncode == 0 and f"state_dir            = '{state}'" in res.stdout, res.stdout
    assert "# DROVER_STATE_DIR (environment)" in res.stdout.split(f"'{state}'", 1)[1].splitlines()[0]
    checked["config"] = "shows it, with its source"

    res = drover("health", cwd=work, env={**env, "DROVER_CHROMIUM": "/nonexistent"})
    assert res.returncode == 10 and f"ok   state-dir-writable: {state}" in res.stdout, res.stdout + res.stderr
    checked["health"] = "checks it"

    res = drover("results", cwd=work, env=env)
    assert res.returncode == 0 and f"run {RUN} (parallel, completed)" in res.stdout, res.stdout + res.stderr
    checked["results"] = "reads its store"

    res = drover("trace", "j0", "--run", RUN, cwd=work, env=env)
    assert res.returncode == 0 and "attempt started" in res.stdout, res.stdout + res.stderr
    checked["trace"] = "reads its store and run directory"

    res = drover("monitor", "--once", cwd=work, env=env)
    assert res.returncode == 0 and f"run {RUN}: completed" in res.stdout, res.stdout + res.stderr
    checked["monitor"] = "reads its store"

    lock = statedir.acquire_state(str(state))  # held: a run or soak that honours the variable must say busy
    try:
        for name, args in (("run", ["run", str(batch)]), ("soak", ["soak", str(batch), "--duration", "5s"])):
            res = drover(*args, cwd=work, env=env)
            assert res.returncode == EXIT_BUSY and str(state) in res.stderr, (name, res.stdout + res.stderr)
            checked[name] = "takes it (busy: held by this test)"
    finally:
        lock.release()
    assert not (work / "drover-state").exists()
    assert set(checked) | set(NO_STATE_DIR) == set(COMMANDS) and not set(checked) & set(NO_STATE_DIR), checked


def _garbage_store(tmp: Path) -> Path:
    state = tmp / "garbage"
    state.mkdir()
    (state / "results.sqlite").write_bytes(b"this is not a database\n" * 10)
    return state


@pytest.mark.parametrize("kind", ["missing directory", "empty directory", "not a database"])
@pytest.mark.parametrize("argv", [["results"], ["trace", "j0"], ["monitor", "--once"], ["run", "--resume", "last"]],
                         ids=lambda a: a[0])
def test_a_missing_or_unreadable_store_is_exit_2_with_the_same_hint_for_every_command(tmp_path, argv, kind):
    if kind == "missing directory":
        state = tmp_path / "nowhere"
    elif kind == "empty directory":
        state = tmp_path / "empty"
        state.mkdir()
    else:
        state = _garbage_store(tmp_path)
    before = sorted(p.name for p in state.iterdir()) if state.exists() else None
    res = drover(*argv, "--state-dir", str(state), cwd=tmp_path)
    assert res.returncode == EXIT_INPUT, res.stdout + res.stderr
    assert f"no results store at {state / 'results.sqlite'} (state directory from --state-dir)" in res.stderr
    assert HINT in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert (sorted(p.name for p in state.iterdir()) if state.exists() else None) == before  # nothing created


def test_the_hint_names_DROVER_STATE_DIR_when_the_directory_came_from_it(tmp_path):
    res = drover("results", cwd=tmp_path, env={"DROVER_STATE_DIR": str(tmp_path / "nowhere")})
    assert res.returncode == EXIT_INPUT
    assert "(state directory from DROVER_STATE_DIR (environment))" in res.stderr, res.stderr


def test_version_on_python_m_engine(tmp_path):
    res = drover("--version", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == f"{DISTRIBUTION} {VERSION}", res.stdout + res.stderr


def test_the_console_script_names_itself_and_has_a_version(tmp_path):
    script = shutil.which("drover", path=os.path.dirname(sys.executable))
    assert script, "the console script is installed with the package (pip install -e .)"
    res = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == f"{DISTRIBUTION} {VERSION}", res.stdout + res.stderr
    res = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("usage: drover "), res.stdout
    assert "python -m engine" not in res.stdout
    res = subprocess.run([script, "run", "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.stdout.startswith("usage: drover run "), res.stdout
    for option in ("--slo", "--junit", "--metrics", "--summary-export"):
        assert option in res.stdout


def test_the_distribution_name_is_the_one_in_setup_py():
    from importlib.metadata import version

    assert version(DISTRIBUTION) == VERSION
    setup = (REPO / "setup.py").read_text()
    assert 'name=_constant("DISTRIBUTION")' in setup and "engine.cli.main:console_script" in setup
