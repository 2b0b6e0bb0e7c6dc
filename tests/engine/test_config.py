"""Settings discovery: the first candidate that exists must be valid; every value knows its source."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from engine.config import Settings, candidates, load_settings
from engine.errors import ConfigError
from engine.cli.exit_codes import EXIT_INPUT

REPO = Path(__file__).resolve().parents[2]


class Places:
    """The four candidate locations, all under tmp_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cwd = root / "cwd"
        self.xdg = root / "xdg"
        self.cwd.mkdir()
        (self.xdg / "drover").mkdir(parents=True)
        self.explicit = root / "explicit.toml"
        self.env_file = root / "env.toml"
        self.local = self.cwd / "drover.toml"
        self.user = self.xdg / "drover" / "drover.toml"

    def env(self, **extra: str) -> dict[str, str]:
        return {"XDG_CONFIG_HOME": str(self.xdg), **extra}

    def load(self, explicit: Path | None = None, *, env: dict[str, str] | None = None, **kw):
        return load_settings(str(explicit) if explicit else None, env=env if env is not None else self.env(),
                             cwd=str(self.cwd), **kw)


@pytest.fixture
def places(tmp_path: Path) -> Places:
    return Places(tmp_path)


def workers_file(path: Path, n: int) -> Path:
    path.write_text(f"[engine]\nworkers = {n}\n")
    return path


def config_error(places: Places, explicit: Path | None = None, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        places.load(explicit, **kw)
    assert type(info.value).category == "input"
    return str(info.value)


def test_nothing_found_means_defaults_everywhere(places):
    loaded = places.load()
    assert loaded.source == "defaults"
    assert loaded.settings == Settings()
    assert set(loaded.origins) == {f.name for f in fields(Settings)}
    assert set(loaded.origins.values()) == {"default"}


def test_candidates_are_listed_in_discovery_order(places):
    got = candidates("x.toml", {"DROVER_CONFIG": "e.toml", "XDG_CONFIG_HOME": "/xdg"}, "/here")
    assert got == [("--config", "x.toml"), ("DROVER_CONFIG", "e.toml"), ("./drover.toml", "/here/drover.toml"),
                   ("user config dir", "/xdg/drover/drover.toml")]
    home = candidates(None, {"DROVER_CONFIG": ""}, "/here")  # an empty variable is not a candidate
    assert [how for how, _ in home] == ["./drover.toml", "user config dir"]
    assert home[1][1] == os.path.join(os.path.expanduser("~"), ".config", "drover", "drover.toml")


def test_discovery_order_first_existing_candidate_wins(places):
    for path, n in ((places.explicit, 1), (places.env_file, 2), (places.local, 3), (places.user, 4)):
        workers_file(path, n)
    env = places.env(DROVER_CONFIG=str(places.env_file))
    assert places.load(places.explicit, env=env).settings.workers == 1
    loaded = places.load(env=env)
    assert loaded.settings.workers == 2 and loaded.source == f"{places.env_file} (DROVER_CONFIG)"
    loaded = places.load()
    assert loaded.settings.workers == 3 and loaded.source == f"{places.local} (./drover.toml)"
    places.local.unlink()
    loaded = places.load()
    assert loaded.settings.workers == 4 and loaded.source == f"{places.user} (user config dir)"
    assert loaded.origins["workers"] == loaded.source and loaded.origins["mode"] == "default"


@pytest.mark.parametrize("content", ["", "   \n\n\t\n"])
def test_an_empty_file_is_an_error_naming_it_not_a_fall_back(places, content):
    workers_file(places.user, 4)  # a valid file further down must not be used instead
    places.local.write_text(content)
    msg = config_error(places)
    assert f"config {places.local}: the file is empty" in msg


def test_a_file_with_sections_but_no_settings_is_an_error(places):
    places.local.write_text("# nothing yet\n[engine]\n[retry]\n")
    assert f"config {places.local}: no settings in it" in config_error(places)


def test_broken_toml_is_an_error_naming_the_file_and_the_line(places):
    workers_file(places.user, 4)
    places.local.write_text("[engine]\nworkers = 2\nmode = parallel\n")
    msg = config_error(places)
    assert f"config {places.local}: not valid TOML" in msg and "line 3" in msg


def test_a_file_that_is_not_utf8_is_broken_toml(places):
    places.local.write_bytes(b'[engine]\nstate_dir = "\xff\xfe"\n')
    assert f"config {places.local}: not valid TOML" in config_error(places)


def test_unknown_keys_and_sections_are_errors_listing_all_of_them(places):
    places.local.write_text('verbose = true\n[engine]\nwrokers = 2\n[retry]\nbase = 1.0\nmax = 3\n'
                            '[engine.sub]\nx = 1\n')
    msg = config_error(places)
    assert "top-level key 'verbose'" in msg
    assert "unknown setting [engine] wrokers" in msg
    assert "unknown setting [retry] max" in msg
    assert "unknown setting [engine] sub" in msg


@pytest.mark.parametrize("line, expected", [
    ('workers = "4"', "[engine] workers must be int, got str"),
    ("workers = 4.0", "[engine] workers must be int, got float"),
    ("workers = true", "[engine] workers must be int, got bool"),
    ("drain_grace = true", "[engine] drain_grace must be float, got bool"),
    ('drain_grace = "5"', "[engine] drain_grace must be float, got str"),
    ("mode = 1", "[engine] mode must be str, got int"),
    ("state_dir = [1]", "[engine] state_dir must be str, got list"),
])
def test_wrong_types_are_errors_naming_file_and_key(places, line, expected):
    places.local.write_text(f"[engine]\n{line}\n")
    msg = config_error(places)
    assert msg.startswith(f"config {places.local}: ") and expected in msg


@pytest.mark.parametrize("toml, expected", [
    ("[engine]\nworkers = 65", "engine.workers must be 0 (auto) .. 64, got 65"),
    ('[engine]\nmode = "turbo"', "engine.mode must be one of"),
    ('[engine]\njob_isolation = "tab"', "engine.job_isolation must be one of"),
    ("[engine]\ndrain_grace = 0", "drain_grace must be > 0"),
    ("[engine]\nheartbeat_timeout = -1.5", "heartbeat_timeout must be > 0"),
    ("[retry]\nbase = 5.0\ncap = 1.0", "retry.cap must be >= retry.base"),
    ('[retry]\njitter = "some"', "retry.jitter must be none/full/equal/decorrelated"),
    ("[engine]\nrecycle_after_jobs = -1", "recycle settings must be >= 0"),
    ('[engine]\nstate_dir = ""', "engine.state_dir must not be empty"),
    ("[engine]\nsessions_per_worker = 33", "engine.sessions_per_worker must be an integer 1 .. 32"),
    ('[engine]\nsessions_per_worker = 2\nbackend = "ray"', "the ray backend runs one session per actor"),
    ('[engine]\nsessions_per_worker = "auto"\nbackend = "ray"', "the ray backend runs one session per actor"),
    ('[engine]\nsessions_per_worker = "lots"', 'must be an integer 1 .. 32 or "auto", got \'lots\''),
    ("[autoscale]\nmax_sessions = 0", "autoscale.max_sessions must be 1 .. 32"),
    ("[engine]\nray_queue_depth = 0", "engine.ray_queue_depth must be an integer 1 .. 4, got 0"),
    ("[engine]\nray_queue_depth = 5", "engine.ray_queue_depth must be an integer 1 .. 4, got 5"),
    ("[autoscale]\ncpu_target = 1.5", "autoscale.cpu_target must be in (0, 1]"),
    ("[autoscale]\ninterval = 0.01", "autoscale.interval must be 0.1 .. 60 s"),
])
def test_bad_values_are_errors_naming_the_source(places, toml, expected):
    places.local.write_text(toml + "\n")
    msg = config_error(places)
    assert msg.startswith(f"settings from {places.local} (./drover.toml): ") and expected in msg


def test_sessions_auto_from_the_file_sizes_the_session_threads_by_the_autoscale_maximum(places):
    places.local.write_text('[engine]\nsessions_per_worker = "auto"\n[autoscale]\nmax_sessions = 6\n')
    s = places.load().settings
    assert s.sessions_auto and s.session_slots == 6
    places.local.write_text("[engine]\nsessions_per_worker = true\n")
    assert 'sessions_per_worker must be an integer or "auto", got bool' in config_error(places)


def test_ints_are_accepted_for_float_settings_and_become_floats(places):
    places.local.write_text("[engine]\ndrain_grace = 5\n[retry]\nbase = 1\ncap = 2\n")
    s = places.load().settings
    assert (s.drain_grace, s.retry_base, s.retry_cap) == (5.0, 1.0, 2.0)
    assert all(isinstance(v, float) for v in (s.drain_grace, s.retry_base, s.retry_cap))


def test_every_setting_can_be_set_from_the_file(places):
    places.local.write_text(
        '[engine]\nworkers = 3\nstate_dir = "st"\nmode = "legacy"\nheartbeat_timeout = 9.5\ndrain_grace = 2.5\n'
        'job_isolation = "page"\nrecycle_after_jobs = 7\nmax_browser_rss_mb = 900\nseed = 42\nlock_timeout = 3.0\n'
        'credentials = "c.json"\nfailure_screenshots = 0\nbackend = "ray"\nray_address = "auto"\nlease_ttl = 4.0\n'
        'ray_queue_depth = 3\nextract_max_bytes = 1000\nsessions_per_worker = 1\n[retry]\nbase = 0.1\ncap = 0.2\njitter = "equal"\n'
        '[autoscale]\nmax_sessions = 5\ncpu_target = 0.7\nmemory_floor_mb = 256\ninterval = 2.0\n'
        '[browser]\nextra_args = ["--lang=de-DE"]\nheadless = false\nendpoints = ["http://127.0.0.1:9222"]\n'
        'binary = "/opt/chrome/chrome"\n')
    loaded = places.load()
    assert loaded.settings == Settings(3, "st", "legacy", 9.5, 2.5, "page", 7, 900, 42, 3.0, "c.json", 0.1, 0.2,
                                       "equal", failure_screenshots=0, backend="ray", ray_address="auto",
                                       lease_ttl=4.0, ray_queue_depth=3, extract_max_bytes=1000, sessions_per_worker=1,
                                       autoscale_max_sessions=5, autoscale_cpu_target=0.7,
                                       autoscale_memory_floor_mb=256, autoscale_interval=2.0,
                                       browser_binary="/opt/chrome/chrome", browser_extra_args=("--lang=de-DE",),
                                       browser_headless=False, browser_endpoints=("http://127.0.0.1:9222",))
    assert set(loaded.origins.values()) == {f"{places.local} (./drover.toml)"}


@pytest.mark.parametrize("how", ["DROVER_CONFIG", "--config"])
def test_a_named_file_that_does_not_exist_is_an_error_not_a_fall_back(places, how):
    workers_file(places.local, 3)
    missing = places.root / "nope.toml"
    if how == "--config":
        msg = config_error(places, missing)
    else:
        msg = config_error(places, env=places.env(DROVER_CONFIG=str(missing)))
    assert f"config {missing} (from {how}) does not exist" in msg


def test_a_dangling_symlink_candidate_is_reported_not_skipped(places):
    workers_file(places.user, 4)
    places.local.symlink_to(places.root / "gone.toml")
    assert f"config {places.local}: cannot read" in config_error(places)


def test_a_directory_in_place_of_the_file_is_reported(places):
    places.local.mkdir()
    assert f"config {places.local}: cannot read" in config_error(places)


def test_overrides_win_over_the_file_and_none_means_not_given(places):
    places.local.write_text('[engine]\nworkers = 3\nstate_dir = "from-file"\n')
    loaded = places.load(overrides={"workers": 5, "state_dir": None, "mode": "legacy"})
    assert (loaded.settings.workers, loaded.settings.state_dir, loaded.settings.mode) == (5, "from-file", "legacy")
    assert loaded.origins["workers"] == "command line" and loaded.origins["mode"] == "command line"
    assert loaded.origins["state_dir"] == f"{places.local} (./drover.toml)"


def test_a_bad_override_is_an_error_too(places):
    assert "engine.workers must be 0 (auto) .. 64" in config_error(places, overrides={"workers": 99})


def test_auto_workers_is_at_least_one(places):
    s = places.load().settings
    assert s.workers == 0 and 1 <= s.effective_workers <= 16
    assert places.load(overrides={"workers": 2}).settings.effective_workers == 2


def _config_cli(places: Places, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "DROVER_CONFIG"}
    full_env.update(PYTHONPATH=str(REPO), XDG_CONFIG_HOME=str(places.xdg), **env)
    return subprocess.run([sys.executable, "-m", "engine", "config", *args], cwd=places.cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_config_command_lists_every_field_with_its_source(places):
    places.local.write_text('[engine]\nworkers = 3\ndrain_grace = 2\n[retry]\njitter = "none"\n')
    res = _config_cli(places)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("# environment (DROVER_*)")[0].splitlines()  # the variables follow the settings
    assert lines[0] == f"# settings from: {places.local} (./drover.toml)"
    by_name = {ln.split()[0]: ln for ln in lines[1:]}
    assert set(by_name) == {f.name for f in fields(Settings)}
    for name in ("workers", "drain_grace", "retry_jitter"):
        assert by_name[name].endswith(f"# {places.local} (./drover.toml)"), by_name[name]
    assert "= 3" in by_name["workers"] and "= 2.0" in by_name["drain_grace"] and "'none'" in by_name["retry_jitter"]
    for name in set(by_name) - {"workers", "drain_grace", "retry_jitter"}:
        assert by_name[name].endswith("# default"), by_name[name]


def test_config_command_with_explicit_file_and_with_defaults(places):
    workers_file(places.explicit, 6)
    res = _config_cli(places, "--config", str(places.explicit))
    assert res.returncode == 0 and f"# settings from: {places.explicit} (--config)" in res.stdout
    res = _config_cli(places)
    assert res.returncode == 0 and "# settings from: defaults" in res.stdout
    assert "(auto: " in res.stdout  # workers = 0 shows what auto means here


def test_config_command_reports_a_broken_file_with_exit_2_and_no_traceback(places):
    places.local.write_text("")
    res = _config_cli(places)
    assert res.returncode == EXIT_INPUT
    assert f"{places.local}: the file is empty" in res.stderr and "Traceback" not in res.stderr
    places.local.unlink()
    res = _config_cli(places, DROVER_CONFIG=str(places.root / "missing.toml"))
    assert res.returncode == EXIT_INPUT and "(from DROVER_CONFIG) does not exist" in res.stderr
