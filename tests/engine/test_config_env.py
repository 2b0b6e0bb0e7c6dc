"""Settings from the environment (DROVER_STATE_DIR, DROVER_CREDENTIALS) and the [browser] section."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ENVIRONMENT, Settings, load_settings
from engine.errors import ConfigError
from engine.execution.assembly import lifecycle_settings

REPO = Path(__file__).resolve().parents[2]


def write(tmp: Path, text: str) -> str:
    path = tmp / "drover.toml"
    path.write_text(text)
    return str(path)


def test_the_command_line_beats_the_environment_which_beats_the_file(tmp_path):
    cfg = write(tmp_path, '[engine]\nstate_dir = "from-file"\ncredentials = "file-creds.json"\n')
    env = {"DROVER_STATE_DIR": "from-env", "DROVER_CREDENTIALS": "env-creds.json"}
    loaded = load_settings(cfg, env=env, cwd=str(tmp_path))
    assert loaded.settings.state_dir == "from-env" and loaded.settings.credentials == "env-creds.json"
    assert loaded.origins["state_dir"] == "DROVER_STATE_DIR (environment)"
    assert loaded.origins["credentials"] == "DROVER_CREDENTIALS (environment)"
    loaded = load_settings(cfg, env=env, cwd=str(tmp_path), overrides={"state_dir": "from-flag"})
    assert loaded.settings.state_dir == "from-flag" and loaded.origins["state_dir"] == "command line"
    loaded = load_settings(cfg, env={}, cwd=str(tmp_path))
    assert loaded.settings.state_dir == "from-file" and loaded.origins["state_dir"].endswith("(--config)")


def test_an_empty_variable_counts_as_unset(tmp_path):
    loaded = load_settings(None, env={"DROVER_STATE_DIR": "", "DROVER_CREDENTIALS": ""}, cwd=str(tmp_path))
    assert loaded.settings.state_dir == "drover-state" and loaded.origins["state_dir"] == "default"


def test_browser_section_reaches_the_launch_settings(tmp_path):
    cfg = write(tmp_path, '[browser]\nextra_args = ["--accept-lang=de-DE", "--remote-debugging-address=127.0.0.1"]\n'
                          'headless = true\n')
    s = load_settings(cfg, env={}, cwd=str(tmp_path)).settings
    assert s.browser_extra_args == ("--accept-lang=de-DE", "--remote-debugging-address=127.0.0.1")
    assert lifecycle_settings(s).launch.extra_args == s.browser_extra_args


def test_browser_binary_comes_from_the_file_or_drover_chromium_and_reaches_the_launch(tmp_path):
    cfg = write(tmp_path, '[browser]\nbinary = "chromium-headless-shell"\n')
    loaded = load_settings(cfg, env={}, cwd=str(tmp_path))
    assert loaded.settings.browser_binary == "chromium-headless-shell"
    assert loaded.origins["browser_binary"].endswith("(--config)")
    assert lifecycle_settings(loaded.settings).launch.binary == "chromium-headless-shell"
    loaded = load_settings(cfg, env={"DROVER_CHROMIUM": "/opt/chrome/chrome"}, cwd=str(tmp_path))
    assert loaded.settings.browser_binary == "/opt/chrome/chrome"
    assert loaded.origins["browser_binary"] == "DROVER_CHROMIUM (environment)"
    (tmp_path / "elsewhere").mkdir()  # no drover.toml there: the default
    assert lifecycle_settings(load_settings(None, env={}, cwd=str(tmp_path / "elsewhere")).settings).launch.binary \
        is None


@pytest.mark.parametrize("text, complaint", [
    ('[browser]\nbinary = 7\n', "[browser] binary must be str, got int"),
    ('[browser]\nextra_args = ["--remote-debugging-address=0.0.0.0"]\n',
     "browser.extra_args[0] '--remote-debugging-address=0.0.0.0': DevTools is bound to 127.0.0.1 only"),
    ('[browser]\nextra_args = ["--remote-debugging-port=9222"]\n', "not settable: Drover gives every browser its own"),
    ('[browser]\nextra_args = ["--user-data-dir=/tmp/x"]\n', "not settable"),
    ('[browser]\nextra_args = ["lang=de"]\n', "a Chromium flag starts with --"),
    ('[browser]\nextra_args = "--lang=de"\n', "[browser] extra_args must be a list of strings, got str"),
    ('[browser]\nextra_args = ["--headless=new"]\n', "set browser.headless instead"),
    ('[browser]\nheadless = "no"\n', "[browser] headless must be bool, got str"),
    ('[browser]\nsandbox = false\n', "unknown setting [browser] sandbox"),
])
def test_bad_browser_settings_name_the_file_and_the_field(tmp_path, text, complaint):
    cfg = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={}, cwd=str(tmp_path))
    assert complaint in str(info.value) and cfg in str(info.value)


def test_settings_refuse_a_remote_address_when_built_in_code_too():
    with pytest.raises(ConfigError, match="127.0.0.1 only"):
        Settings(browser_extra_args=("--remote-debugging-address=10.0.0.5",))


def test_config_lists_every_drover_variable_with_its_state_and_never_a_secret(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "DROVER_STATE_DIR": str(tmp_path / "s"),
           "DROVER_SECRET_SHOP_PASSWORD": "hunter2-very-secret", "DROVER_LOG_AUDIT": str(tmp_path / "audit.jsonl")}
    res = subprocess.run([sys.executable, "-m", "engine", "config"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    env_part = res.stdout.split("# environment (DROVER_*)", 1)[1]
    listed = [line.split()[0] for line in env_part.strip().splitlines()]
    assert listed == list(ENVIRONMENT)
    assert "hunter2-very-secret" not in res.stdout and "1 set (values never shown)" in env_part
    assert f"DROVER_LOG_AUDIT='{tmp_path / 'audit.jsonl'}'" in env_part
    assert "DROVER_CHROMIUM      = not set" in env_part
    assert "browser_extra_args   = ()" in res.stdout and "browser_headless     = True" in res.stdout
