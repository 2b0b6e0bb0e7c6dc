"""Chromium launcher: discovery, DevTools on 127.0.0.1, clean shutdown, no orphans even on SIGKILL."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from navigation.errors import ChromiumNotFound
from navigation.launcher import PROFILE_PREFIX, TMP_PREFIX, LaunchSettings, find_chromium, launch
from navigation.lifecycle import probe


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_find_chromium_prefers_env_then_path(tmp_path):
    fake = tmp_path / "mychrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_chromium({"DROVER_CHROMIUM": str(fake), "PATH": ""}) == str(fake)
    with pytest.raises(ChromiumNotFound, match="not an executable"):
        find_chromium({"DROVER_CHROMIUM": str(tmp_path / "missing"), "PATH": ""})
    with pytest.raises(ChromiumNotFound, match="apt-get install -y chromium"):
        find_chromium({"PATH": str(tmp_path / "empty")})
    assert os.path.basename(find_chromium()).startswith(("chromium", "google-chrome", "chrome"))


def test_devtools_listens_on_loopback_only(browser):
    assert browser.ws_url.startswith(f"ws://127.0.0.1:{browser.port}/devtools/browser/")
    assert browser.startup_seconds > 0
    listening = {c.laddr.ip for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == browser.port}
    assert listening == {"127.0.0.1"}
    assert "webSocketDebuggerUrl" in probe(browser.http_url)


def test_close_removes_whole_tree_and_temporary_profile():
    proc = launch()
    profile = proc.user_data_dir
    tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert len(tree) > 1 and os.path.isdir(profile)
    proc.close()
    assert _wait(lambda: all(_gone(p) for p in tree), 5), "a browser process survived close()"
    assert not os.path.exists(profile)
    proc.close()  # idempotent


def test_persistent_profile_is_kept(tmp_path):
    profile = tmp_path / "alice-profile"
    proc = launch(LaunchSettings(user_data_dir=str(profile)))
    assert proc.user_data_dir == str(profile) and not proc.temporary
    proc.close()
    assert profile.is_dir() and any(profile.iterdir())
    assert _gone(proc.pid)


def test_crashed_browser_is_cleaned_up_by_the_reaper():
    proc = launch()
    tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.kill()
    assert _wait(lambda: all(_gone(p) for p in tree), 5)
    assert _wait(lambda: not os.path.exists(proc.user_data_dir), 5)
    proc.close()


_OWNER = """
import sys, time
from navigation.launcher import launch
b = launch()
sys.stdout.write(f"{b.pid} {b.user_data_dir}\\n"); sys.stdout.flush()
time.sleep(60)
"""


def test_no_orphans_when_the_owning_process_is_sigkilled():
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        line = owner.stdout.readline().split()
        pid, profile = int(line[0]), line[1]
        tree = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
        assert os.path.isdir(profile)
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(5)
        assert _wait(lambda: all(_gone(p) for p in tree), 5), "browser outlived its killed owner"
        assert _wait(lambda: not os.path.exists(profile), 5), "temporary profile outlived its killed owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(5)
        owner.stdout.close()


# -- nothing left in $TMPDIR: Chromium's own temp folders, and a kill at any point of launch() --------

_LEFTOVER_PREFIXES = (PROFILE_PREFIX, TMP_PREFIX, "org.chromium.Chromium.")


def _leftovers(tmpdir) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith(_LEFTOVER_PREFIXES))


@pytest.fixture()
def tmpdir_short():
    """A fresh, short $TMPDIR for one test (Chromium's singleton socket path must fit 108 bytes)."""
    path = tempfile.mkdtemp(prefix="t-")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def _processes_using(path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(str(path) in part for part in proc.info.get("cmdline") or []):
            found.append(proc.info["pid"])
    return found


@pytest.mark.parametrize("persistent", [False, True], ids=["temporary", "persistent"])
def test_close_leaves_no_chromium_temp_dirs(tmp_path, tmpdir_short, monkeypatch, persistent):
    tmpdir = tmpdir_short
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    profile = str(tmp_path / "profile") if persistent else None
    proc = launch(LaunchSettings(user_data_dir=profile))
    try:
        # Chromium really makes its singleton folder while it runs (so the check below can fail) ...
        singleton = os.path.realpath(os.path.join(proc.user_data_dir, "SingletonSocket"))
        assert os.path.basename(os.path.dirname(singleton)).startswith("org.chromium.Chromium.")
        assert os.path.dirname(os.path.dirname(singleton)) == proc.tmp_dir
        assert _leftovers(tmpdir)
    finally:
        proc.close()
    # ... and it is gone with the browser.
    assert _wait(lambda: not _leftovers(tmpdir), 5), _leftovers(tmpdir)
    if persistent:
        assert os.path.isdir(profile)


_KILLED_OWNER = """
import sys, time
from navigation.launcher import LaunchSettings, launch
b = launch(LaunchSettings(user_data_dir=sys.argv[1] if len(sys.argv) > 1 else None))
sys.stdout.write(f"{b.pid} {b.user_data_dir}\\n"); sys.stdout.flush()
time.sleep(60)
"""


def _owner(tmpdir, *args: str, pause: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    if pause is not None:
        env["DROVER_TEST_PAUSE_AT"] = pause
    return subprocess.Popen([sys.executable, "-c", _KILLED_OWNER, *args], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def _kill_owner(owner: subprocess.Popen) -> None:
    if owner.poll() is None:
        os.kill(owner.pid, signal.SIGKILL)
    owner.wait(5)
    owner.stdout.close()


@pytest.mark.parametrize("persistent", [False, True], ids=["temporary", "persistent"])
def test_sigkilled_owner_leaves_no_chromium_temp_dirs(tmp_path, tmpdir_short, persistent):
    tmpdir = tmpdir_short
    owner = _owner(tmpdir, *([str(tmp_path / "profile")] if persistent else []))
    try:
        pid = int(owner.stdout.readline().split()[0])
        assert _leftovers(tmpdir)  # the browser's folders exist while it runs
    finally:
        _kill_owner(owner)
    assert _wait(lambda: _gone(pid) and not _leftovers(tmpdir), 10), _leftovers(tmpdir)


@pytest.mark.parametrize("point", ["profile", "reaper-dirs"])
def test_owner_killed_right_after_the_temporary_profile_exists_leaks_nothing(tmp_path, tmpdir_short, point):
    """``profile``: in launch() the moment the temporary profile exists; ``reaper-dirs``: inside the reaper
    before Chromium starts.  A kill there used to leak an empty ``drover-profile-*``."""
    tmpdir = tmpdir_short
    marker = tmp_path / "paused"
    owner = _owner(tmpdir, pause=f"{point}:{marker}")
    try:
        assert _wait(marker.exists, 30), "the launch never reached the pause point"
        profile = marker.read_text(encoding="utf-8")
        assert os.path.basename(profile).startswith(PROFILE_PREFIX) and os.path.isdir(profile)
    finally:
        _kill_owner(owner)
    assert _wait(lambda: not _leftovers(tmpdir) and not _processes_using(tmpdir), 10), \
        (_leftovers(tmpdir), _processes_using(tmpdir))


def test_a_tmpdir_too_long_for_chromiums_socket_still_launches_and_leaves_nothing(tmp_path, monkeypatch):
    tmpdir = tmp_path / ("long-" + "x" * 70)
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    proc = launch()
    try:
        assert proc.user_data_dir.startswith(str(tmpdir)) and os.path.isdir(proc.tmp_dir)
        assert len(proc.tmp_dir) + len("/org.chromium.Chromium.XXXXXX/SingletonSocket") <= 107
    finally:
        proc.close()
    assert _wait(lambda: not _leftovers(tmpdir) and not os.path.exists(proc.tmp_dir), 5)


# -- the owner's death vs an orderly close: SIGKILL at once vs SIGTERM with grace -----------------------

_FAKE_BROWSER = """#!{python}
# Stands in for Chromium: announces a DevTools port, starts a helper in its group, and on SIGTERM records
# that it got one (the graceful path) before exiting.
import os, signal, sys, time
profile = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--user-data-dir="))
def term(_sig, _frame):
    with open(os.environ["FAKE_BROWSER_MARK"], "a") as fh:
        fh.write("term\\n")
    os._exit(0)
signal.signal(signal.SIGTERM, term)
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    time.sleep(60)
    os._exit(0)
with open(os.path.join(profile, "DevToolsActivePort.part"), "w") as fh:
    fh.write("1\\n/devtools/browser/fake\\n")
os.replace(os.path.join(profile, "DevToolsActivePort.part"), os.path.join(profile, "DevToolsActivePort"))
time.sleep(60)
"""

_FAKE_OWNER = """
import sys, time
from navigation.launcher import LaunchSettings, launch
b = launch(LaunchSettings(binary=sys.argv[1], user_data_dir=sys.argv[2] if len(sys.argv) > 2 else None))
sys.stdout.write(f"{b.pid} {b.reaper_pid}\\n"); sys.stdout.flush()
time.sleep(60)
"""

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.info["pid"]) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.info["pid"])
        except ProcessLookupError:
            continue  # exited while we listed: not a member any more
    return found


@pytest.fixture()
def fake_browser(tmp_path, monkeypatch):
    script = tmp_path / "fake-chromium"
    script.write_text(_FAKE_BROWSER.format(python=sys.executable))
    script.chmod(0o755)
    mark = tmp_path / "got-sigterm"
    monkeypatch.setenv("FAKE_BROWSER_MARK", str(mark))
    return script, mark


def _killed_owner_teardown(args: list[str]) -> tuple[int, float]:
    """Start an owner that launches a browser, SIGKILL it; (browser pgid, seconds until the group was empty)."""
    owner = subprocess.Popen([sys.executable, "-c", _FAKE_OWNER if args[0] != "chromium" else _OWNER, *args[1:]],
                             stdout=subprocess.PIPE, text=True, cwd=_ROOT)
    try:
        pgid = int(owner.stdout.readline().split()[0])
        assert len(_group_members(pgid)) > 1, "the browser group should have a helper (so the check can fail)"
        os.kill(owner.pid, signal.SIGKILL)
        killed = time.monotonic()
        owner.wait(5)
        assert _wait(lambda: not _group_members(pgid), 1.5), f"browser group {pgid} outlived its owner by 1.5 s"
        return pgid, time.monotonic() - killed
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(5)
        owner.stdout.close()


@pytest.mark.parametrize("persistent", [False, True], ids=["temporary", "persistent"])
def test_owner_death_kills_the_browser_group_at_once_without_sigterm(tmp_path, fake_browser, persistent):
    """A SIGKILLed owner: the reaper SIGKILLs the group (no SIGTERM grace, which let browsers outlive a dead
    supervisor's workers by ~3 s)."""
    script, mark = fake_browser
    _killed_owner_teardown(["fake", str(script), *([str(tmp_path / "profile")] if persistent else [])])
    assert not mark.exists(), "the browser got SIGTERM (the graceful path) although its owner died"


@pytest.mark.parametrize("persistent", [False, True], ids=["temporary", "persistent"])
def test_orderly_close_keeps_the_sigterm_grace(tmp_path, fake_browser, persistent):
    """close() says ``stop``: SIGTERM first, so Chromium can flush a persistent credential profile."""
    script, mark = fake_browser
    proc = launch(LaunchSettings(binary=str(script), user_data_dir=str(tmp_path / "p") if persistent else None))
    members = _group_members(proc.pid)
    assert len(members) > 1
    proc.close()
    assert mark.read_text() == "term\n"
    assert _wait(lambda: not _group_members(proc.pid), 5)
    proc.close()  # idempotent: the pipe is closed, nothing is written twice


def test_close_after_the_browser_crashed_and_the_reaper_exited_does_not_raise():
    """The reaper exits on its own when Chromium dies; ``stop`` then meets a closed pipe (BrokenPipeError)."""
    proc = launch()
    proc.kill()
    reaper = psutil.Process(proc.reaper_pid)
    assert _wait(lambda: reaper.status() == psutil.STATUS_ZOMBIE, 10), "the reaper did not exit after the crash"
    proc.close()
    assert not os.path.exists(proc.user_data_dir)


def test_owner_death_kills_real_chromium_group_well_under_the_grace():
    _pgid, seconds = _killed_owner_teardown(["chromium"])
    assert seconds < 1.5
