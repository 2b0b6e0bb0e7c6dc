"""Chromium's headless shell as the browser (``[browser] binary = "chromium-headless-shell"``).

The shell is the old headless browser without Chrome's window UI: a browser and a session cost less
(README, "Which Chromium").  What Drover has to do for it, each shown here on the real binary: find it by
name, see through Debian's wrapper script (which runs the browser as a child instead of exec'ing it, so
its pid would be the script's), and turn on the site isolation Chrome has by default and the shell has
not (a cross-site frame in a renderer of its own).  The engine tests run a batch on it with concurrent
sessions; ``tests/engine/execution/test_isolation_leaks.py`` runs its leak test on it too.
"""
from __future__ import annotations

import os
import shutil
import time

import psutil
import pytest

from navigation.cdp import CDPConnection
from navigation.errors import ChromiumNotFound
from navigation.fixture_site import FixtureSite
from navigation.launcher import (
    HEADLESS_SHELL_FLAGS,
    LaunchSettings,
    chromium_args,
    is_headless_shell,
    launch,
    resolve_binary,
)
from tests._wait import wait_for

SHELL = "chromium-headless-shell"
needs_shell = pytest.mark.skipif(shutil.which(SHELL) is None and not os.environ.get("CI"),
                                 reason="chromium-headless-shell is not installed (bash .ci/bootstrap test installs "
                                        "it; in CI its absence fails these tests)")


def test_the_shell_gets_site_isolation_and_chromium_does_not_need_it():
    shell = chromium_args("/usr/lib/chromium/chromium-headless-shell", LaunchSettings())
    chrome = chromium_args("/usr/bin/chromium", LaunchSettings())
    assert all(flag in shell for flag in HEADLESS_SHELL_FLAGS) and "--site-per-process" in shell
    assert not any(flag in chrome for flag in HEADLESS_SHELL_FLAGS)
    assert is_headless_shell("/opt/pw/chromium_headless_shell-1/chrome-linux/headless_shell")
    assert is_headless_shell("chrome-headless-shell") and not is_headless_shell("/usr/bin/chromium")


def test_a_binary_that_is_not_there_is_named_with_how_to_install_it(tmp_path):
    with pytest.raises(ChromiumNotFound, match=r"browser.binary = 'chromium-headless-shell' is not an executable "
                                               r"file nor a command on PATH \(Debian: apt-get install"):
        resolve_binary(SHELL, {"PATH": str(tmp_path)})
    with pytest.raises(ChromiumNotFound, match="is not an executable file$"):
        resolve_binary(str(tmp_path / "chrome"), {"PATH": ""})


@needs_shell
def test_debians_wrapper_script_is_seen_through_to_the_browser():
    """``/usr/bin/chromium-headless-shell`` is a ``sh`` script that does not ``exec``: the pid Drover keeps,
    kills and measures must be the browser's, and closing still ends the script and all of the tree."""
    browser = launch(LaunchSettings(binary=SHELL))
    try:
        proc = psutil.Process(browser.pid)
        assert os.path.basename(proc.exe()) not in ("sh", "dash", "bash"), proc.cmdline()
        assert is_headless_shell(proc.exe()), proc.exe()
        assert browser.group != browser.pid
        assert os.path.basename(psutil.Process(browser.group).exe()) in ("sh", "dash", "bash")
        with CDPConnection.connect(browser.ws_url) as conn:
            assert conn.send("Browser.getVersion")["product"].startswith("HeadlessChrome/")
        assert browser.tree_rss_bytes() > 50 * 2**20  # the browser's tree, not the script's few pages
        browser.kill()
        wait_for(lambda: not browser.alive(), 10, "the killed shell browser gone")
    finally:
        browser.close()
    wait_for(lambda: not _group_alive(browser.group), 10, "the wrapper's process group gone")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_shell
def test_a_cross_site_frame_runs_in_a_renderer_of_its_own_on_the_shell():
    """Without ``--site-per-process`` the shell keeps a cross-origin frame in its parent's renderer (measured:
    no ``iframe`` target); reset isolation and the redaction of out-of-process frames rely on seeing it."""
    browser = launch(LaunchSettings(binary=SHELL, extra_args=("--enable-features=StrictOriginIsolation",)))
    try:
        with FixtureSite() as site, FixtureSite() as other, CDPConnection.connect(browser.ws_url) as conn:
            page = conn.new_page("about:blank")
            page.send("Page.enable")
            page.send("Page.navigate", {"url": site.url("/echo.html?frame=") + other.url("/echo.html")})
            deadline = time.monotonic() + 10
            frames: list[dict] = []
            while not frames and time.monotonic() < deadline:
                frames = [t for t in conn.send("Target.getTargets")["targetInfos"] if t["type"] == "iframe"]
                time.sleep(0.05)
            assert len(frames) == 1 and frames[0]["url"] == other.url("/echo.html"), frames
    finally:
        browser.close()


def test_an_execing_wrapper_leaves_the_pid_as_it_is():
    """Debian's ``/usr/bin/chromium`` exec's the browser: nothing to see through, the pid is the browser's own."""
    browser = launch(LaunchSettings())
    try:
        assert browser.group == browser.pid
        assert os.path.basename(psutil.Process(browser.pid).exe()) not in ("sh", "dash", "bash")
    finally:
        browser.close()
    assert not browser.alive()
