"""The browser's command line: ``--headless`` unless headed, DevTools on 127.0.0.1, and a headed launch without a
display refused at once (not after the 30-s startup timeout)."""
from __future__ import annotations

import pytest

from engine.config import ConfigError, Settings, load_settings
from engine.execution.assembly import lifecycle_settings
from navigation.errors import BrowserLaunchError
from navigation import launcher
from navigation.launcher import CHROMIUM_FLAGS, HEADLESS_FLAG, LaunchSettings, check_display, chromium_args


def test_the_built_argument_list_has_headless_only_when_headless():
    extra = ("--lang=de-DE",)
    headless = chromium_args("/usr/bin/chromium", LaunchSettings(extra_args=extra, window_size=(800, 600)))
    headed = chromium_args("/usr/bin/chromium", LaunchSettings(extra_args=extra, window_size=(800, 600),
                                                               headless=False))
    tail = ["--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=800,600",
            "--lang=de-DE", "about:blank"]
    assert headless == ["/usr/bin/chromium", *CHROMIUM_FLAGS, *tail]
    assert HEADLESS_FLAG in headless and headless.count(HEADLESS_FLAG) == 1
    assert headed == ["/usr/bin/chromium", *(f for f in CHROMIUM_FLAGS if f != HEADLESS_FLAG), *tail]
    assert not any(a.startswith("--headless") for a in headed)


def test_headless_false_from_the_settings_file_reaches_the_launch_settings(tmp_path):
    cfg = tmp_path / "drover.toml"
    cfg.write_text("[browser]\nheadless = false\n")
    s = load_settings(str(cfg), env={}, cwd=str(tmp_path)).settings
    assert s.browser_headless is False and lifecycle_settings(s).launch.headless is False
    assert lifecycle_settings(Settings()).launch.headless is True
    with pytest.raises(ConfigError, match="127.0.0.1 only"):  # headed or not, DevTools stays on loopback
        Settings(browser_headless=False, browser_extra_args=("--remote-debugging-address", "0.0.0.0"))


def test_a_headed_launch_without_a_display_is_a_clear_error():
    headed = LaunchSettings(headless=False)
    for env in ({}, {"DISPLAY": ""}, {"WAYLAND_DISPLAY": "", "PATH": "/usr/bin"}):
        with pytest.raises(BrowserLaunchError, match=r"needs a display, and neither \$DISPLAY nor \$WAYLAND_DISPLAY"):
            check_display(headed, env)
    check_display(headed, {"DISPLAY": ":99"})
    check_display(headed, {"WAYLAND_DISPLAY": "wayland-0"})
    check_display(LaunchSettings(), {})  # headless needs none


def test_launch_refuses_a_headed_browser_before_starting_anything_when_display_is_unset(monkeypatch):
    """The real ``launch`` with $DISPLAY unset: the error comes before the binary is looked up or any process
    starts (so there is no startup timeout to wait for)."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DROVER_CHROMIUM", "/nonexistent/chromium")  # looked up first, this would be ChromiumNotFound

    def no_process(*args, **kw):
        raise AssertionError(f"a process was started: {args[0]!r}")

    monkeypatch.setattr(launcher.subprocess, "Popen", no_process)
    with pytest.raises(BrowserLaunchError) as info:
        launcher.launch(LaunchSettings(headless=False))
    assert type(info.value) is BrowserLaunchError and info.value.category == "cdp"
    assert str(info.value).startswith("browser.headless = false needs a display")


def test_a_users_disable_features_is_merged_into_drovers_not_put_after_it():
    """Chromium reads only the last ``--disable-features``: appended as given, it would turn Drover's list off."""
    args = chromium_args("/usr/bin/chromium", LaunchSettings(
        extra_args=("--disable-features=PaintHolding,Translate", "--lang=de-DE", "--disable-features=AcceptCHFrame")))
    lists = [a for a in args if a.startswith("--disable-features=")]
    assert len(lists) == 1, args
    assert lists[0].split("=", 1)[1].split(",") == [*launcher.DISABLED_FEATURES, "PaintHolding", "AcceptCHFrame"]
    assert "--lang=de-DE" in args


@pytest.mark.chromium
def test_a_fresh_context_with_a_page_costs_one_renderer_and_no_browser_ui_pages(browser):
    """The omnibox popup WebUI (two pages per window) and a spare renderer per context are off: a fresh context
    with one page runs one renderer process, where Chromium 156's defaults start three."""
    import time

    import psutil

    from navigation.cdp import CDPConnection

    def renderers() -> set[int]:
        found = set()
        for proc in psutil.Process(browser.pid).children(recursive=True):
            try:
                if "--type=renderer" in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                    found.add(proc.pid)
            except psutil.NoSuchProcess:
                continue
        return found

    with CDPConnection.connect(browser.ws_url) as conn:
        before = renderers()
        context = conn.send("Target.createBrowserContext")["browserContextId"]
        try:
            conn.send("Target.createTarget", {"url": "about:blank", "browserContextId": context})
            time.sleep(1.0)  # a spare renderer or a WebUI page would be started by now
            mine = [t for t in conn.send("Target.getTargets")["targetInfos"] if t.get("browserContextId") == context]
            new = renderers() - before
        finally:
            conn.send("Target.disposeBrowserContext", {"browserContextId": context})
    assert [t["type"] for t in mine] == ["page"], mine
    assert len(new) == 1, f"renderer processes started for one context with one page: {len(new)}"
