"""Chromium launcher: discovery, DevTools on 127.0.0.1, clean shutdown, no orphans even on SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from navigation.errors import ChromiumNotFound
from navigation.launcher import LaunchSettings, find_chromium, launch
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
