"""``python -m engine``: help, argument errors, and the ``health`` pre-flight with its exit codes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import COMMANDS, main
from engine.cli.commands.health import HEALTH_CODES

REPO = Path(__file__).resolve().parents[3]
CHECKS = ["chromium-found", "chromium-answering", "cdp-evaluate", "state-dir-writable", "credentials-private"]


def engine(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def test_top_level_help_lists_every_subcommand():
    res = engine("--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: python -m engine")
    listed = res.stdout.split("COMMAND", 1)[1]
    for name in COMMANDS:
        assert f"\n    {name} " in listed or f"\n    {name}\n" in listed, f"{name} missing from:\n{res.stdout}"


@pytest.mark.parametrize("name", COMMANDS)
def test_each_subcommand_has_working_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m engine {name}")
    assert "-h, --help" in out


def test_no_subcommand_is_a_usage_error():
    res = engine()
    assert res.returncode == 2 and res.stderr.startswith("usage: python -m engine")
    assert "required: COMMAND" in res.stderr


@pytest.mark.parametrize("argv, complaint", [
    (["--bogus", "config"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["run", "--bogus", "b.jsonl"], "unrecognized arguments: --bogus"),
    (["run", "--workers", "many"], "argument --workers: invalid int value: 'many'"),
    (["run", "--mode", "turbo"], "argument --mode: invalid choice: 'turbo'"),
    (["results", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["health", "--fast"], "unrecognized arguments: --fast"),
    (["trace"], "the following arguments are required: ID"),
])
def test_bad_arguments_exit_2_with_usage_and_no_traceback(argv, complaint):
    res = engine(*argv)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "usage: python -m engine" in res.stderr and complaint in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_every_registered_command_module_has_the_command_interface():
    import importlib

    for name in COMMANDS:
        module = importlib.import_module(f"engine.cli.commands.{name}")
        assert module.NAME == name and module.HELP and module.__doc__
        assert callable(module.add_arguments) and callable(module.run)


def test_main_stays_a_small_composition_root():
    assert len((REPO / "engine" / "__main__.py").read_text().splitlines()) < 100


# -- health ----------------------------------------------------------------------------------------


def check_lines(stdout: str) -> dict[str, str]:
    """check name -> its status word (ok / FAIL / SKIP)."""
    out = {}
    for line in stdout.splitlines():
        word, _, rest = line.partition(" ")
        name = rest.strip().split(":", 1)[0]
        if name in CHECKS:
            out[name] = word
    return out


@pytest.mark.chromium
def test_health_passes_on_this_machine_and_prints_every_check(tmp_path):
    creds = tmp_path / "creds.json"
    creds.write_text("{}")
    creds.chmod(0o600)
    res = engine("health", "--state-dir", str(tmp_path / "state"), "--credentials", str(creds))
    assert res.returncode == 0, res.stdout + res.stderr
    assert check_lines(res.stdout) == dict.fromkeys(CHECKS, "ok"), res.stdout
    assert "Runtime.evaluate ok" in res.stdout and "readable, mode 600" in res.stdout
    assert not any(p.name.startswith(".health-") for p in (tmp_path / "state").iterdir())  # the probe is removed


@pytest.mark.chromium
def test_health_without_a_credential_store_skips_that_check_but_passes(tmp_path):
    res = engine("health", "--state-dir", str(tmp_path / "state"), env={"DROVER_CREDENTIALS": ""})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "credentials-private: no credential store configured (skipped)" in res.stdout


def test_health_with_no_chromium_exits_10_and_skips_the_browser_checks(tmp_path):
    res = engine("health", "--state-dir", str(tmp_path / "state"), env={"DROVER_CHROMIUM": "/nonexistent"})
    assert res.returncode == HEALTH_CODES["chromium-found"] == 10, res.stdout + res.stderr
    assert check_lines(res.stdout) == {"chromium-found": "FAIL", "chromium-answering": "SKIP",
                                       "cdp-evaluate": "SKIP", "state-dir-writable": "ok",
                                       "credentials-private": "ok"}, res.stdout
    assert "DROVER_CHROMIUM='/nonexistent' is not an executable file" in res.stdout
    assert "Traceback" not in res.stderr


@pytest.mark.chromium
def test_health_with_an_unwritable_state_dir_exits_13(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = engine("health", "--state-dir", str(blocker / "state"))  # a directory under a file: even root fails
    assert res.returncode == HEALTH_CODES["state-dir-writable"] == 13, res.stdout + res.stderr
    lines = check_lines(res.stdout)
    assert lines["state-dir-writable"] == "FAIL" and lines["cdp-evaluate"] == "ok", res.stdout


@pytest.mark.chromium
@pytest.mark.parametrize("mode", [0o644, 0o604])
def test_health_with_a_credential_file_readable_by_others_exits_14(tmp_path, mode):
    creds = tmp_path / "creds.json"
    creds.write_text("{}")
    creds.chmod(mode)
    res = engine("health", "--state-dir", str(tmp_path / "state"), "--credentials", str(creds))
    assert res.returncode == HEALTH_CODES["credentials-private"] == 14, res.stdout + res.stderr
    assert f"mode {mode:o}" in res.stdout and f"chmod 600 {creds}" in res.stdout


@pytest.mark.chromium
def test_health_with_a_missing_credential_file_exits_14(tmp_path):
    res = engine("health", "--state-dir", str(tmp_path / "state"), "--credentials", str(tmp_path / "nope.json"))
    assert res.returncode == 14, res.stdout + res.stderr
    assert check_lines(res.stdout)["credentials-private"] == "FAIL"


def test_health_exit_code_names_the_first_failed_check(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = engine("health", "--state-dir", str(blocker / "state"), env={"DROVER_CHROMIUM": "/nonexistent"})
    assert res.returncode == 10, res.stdout + res.stderr
    lines = check_lines(res.stdout)
    assert lines["chromium-found"] == "FAIL" and lines["state-dir-writable"] == "FAIL"


def test_health_codes_are_distinct_and_clear_of_the_general_exit_codes():
    from engine.cli import exit_codes

    general = {v for k, v in vars(exit_codes).items() if k.startswith("EXIT_")}
    assert len(set(HEALTH_CODES.values())) == len(HEALTH_CODES) == len(CHECKS) + 1  # + cdp-endpoints (remote)
    assert not set(HEALTH_CODES.values()) & general
