"""Find and start Chromium with DevTools on 127.0.0.1, and never leave it behind.

Why the detour through :mod:`navigation._reaper`: a launcher that only
cleans up in ``close()`` or ``atexit`` leaks a browser and its profile
whenever its process is SIGKILLed — which a supervisor does to hung
workers.  The reaper watches a pipe from us and tears the browser tree
down the moment we are gone (see its docstring).  :meth:`BrowserProcess.close`
writes ``stop`` into that pipe first and closes it only after the reaper
exited, so the reaper can tell an orderly close (SIGTERM, a grace period
in which Chromium flushes a persistent profile) from our death (SIGKILL
of the whole browser group at once).

The reaper also creates the directories a browser needs — the temporary
profile and a private ``$TMPDIR`` for Chromium's own temporary folders —
so that no directory ever exists that nobody is watching: a worker killed
at any point of :func:`launch` leaves nothing on disk.

DevTools listens on 127.0.0.1 with port 0; the port Chromium picked is
read from ``<user-data-dir>/DevToolsActivePort``, so parallel browsers
never race for a port.

Test hook: ``DROVER_TEST_PAUSE_AT=profile:FILE`` makes :func:`launch` write
the temporary profile's path to ``FILE`` as soon as it exists and sleep
there (at most 30 s), so a test can SIGKILL the launching process at
exactly that point; ``reaper-dirs:FILE`` pauses inside the reaper instead.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psutil

from navigation._reaper import PAUSE_ENV, PAUSE_LIMIT, STOP_LINE, TMP_PREFIX
from navigation.errors import BrowserLaunchError, ChromiumNotFound

log = logging.getLogger(__name__)

CHROMIUM_NAMES: tuple[str, ...] = (
    "chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome",
)
# The flags that work on our machines (see DEVELOPERS.md).  --headless is
# the new headless mode (left out for ``LaunchSettings(headless=False)``);
# background networking etc. are off because the machines have no network
# beyond loopback.
HEADLESS_FLAG = "--headless"
DISABLE_FEATURES_FLAG = "--disable-features="
# Features a batch browser pays for and never uses.  The last three halve the CPU of a fresh-context job
# (measured on Chromium 156, 30 jobs of context + page + navigation, alternating: 0.87-0.94 CPU-s per job ->
# 0.41-0.47, renderer processes per job 3 -> 1; README, "Chromium is found"):
# - every new window (one per target in headless) loads the omnibox popup WebUI (chrome://omnibox-popup.top-chrome,
#   two pages in a renderer of its own) although headless has no omnibox;
# - a spare renderer is kept warm for the last-used browser context, so with a context per job each one is
#   started for a context that is disposed before it is used.
DISABLED_FEATURES: tuple[str, ...] = (
    "Translate", "MediaRouter", "OptimizationHints",
    "WebUIOmniboxAimPopup", "WebUIOmniboxPopup", "SpareRendererForSitePerProcess",
)
CHROMIUM_FLAGS: tuple[str, ...] = (
    HEADLESS_FLAG,
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-default-browser-check",
    DISABLE_FEATURES_FLAG + ",".join(DISABLED_FEATURES),
    "--mute-audio",
    # A page left for another one is not kept alive in a back-forward cache: every navigation would
    # otherwise swap to a new renderer process (two per form job under reset isolation, ~17% of its CPU)
    # and a reset page could keep the last job's document frozen in memory.  Playwright disables it too.
    "--disable-back-forward-cache",
)
# Chromium's headless shell (``chromium-headless-shell`` in Debian, ``chrome-headless-shell`` from Chrome for
# Testing, ``headless_shell`` in Playwright's and puppeteer's caches): the old headless browser, without Chrome's
# window UI.  It does not isolate sites by default; Drover asks for the isolation Chrome has
# (``--site-per-process``): a cross-site frame then runs in a renderer of its own, as ``reset`` isolation and
# the redaction of out-of-process frames expect.
HEADLESS_SHELL_NAMES: tuple[str, ...] = ("chromium-headless-shell", "chrome-headless-shell", "headless_shell")
HEADLESS_SHELL_FLAGS: tuple[str, ...] = ("--site-per-process",)
# A wrapper script that runs the browser as its child instead of exec'ing it (Debian's
# /usr/bin/chromium-headless-shell): its child is the browser (see :func:`_unwrap`).
_SHELLS = frozenset({"sh", "dash", "bash"})
PROFILE_PREFIX = "drover-profile-"
_REAPER = str(Path(__file__).with_name("_reaper.py"))


def resolve_binary(binary: str, env: dict[str, str] | None = None) -> str:
    """``binary`` as an executable path: a path as it is, a bare name looked up on PATH."""
    env = os.environ if env is None else env
    found = binary if os.sep in binary else shutil.which(binary, path=env.get("PATH"))
    if found and os.path.isfile(found) and os.access(found, os.X_OK):
        return found
    hint = " (Debian: apt-get install -y chromium-headless-shell)" if is_headless_shell(binary) else ""
    raise ChromiumNotFound(f"browser.binary = {binary!r} is not an executable file"
                           + ("" if os.sep in binary else " nor a command on PATH") + hint)


def is_headless_shell(binary: str) -> bool:
    """Whether ``binary`` is Chromium's headless shell (by its file name: :data:`HEADLESS_SHELL_NAMES`)."""
    return os.path.basename(binary) in HEADLESS_SHELL_NAMES


def find_chromium(env: dict[str, str] | None = None, *, binary: str = "") -> str:
    """The Chromium binary: ``DROVER_CHROMIUM`` first, then ``binary`` (``[browser] binary``: a path, or a
    command on PATH such as ``chromium-headless-shell``), then the usual names on PATH."""
    env = os.environ if env is None else env
    explicit = env.get("DROVER_CHROMIUM")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise ChromiumNotFound(f"DROVER_CHROMIUM={explicit!r} is not an executable file")
    if binary:
        return resolve_binary(binary, env)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found
    raise ChromiumNotFound(
        f"no Chromium found on PATH (tried {', '.join(CHROMIUM_NAMES)}); "
        "install it with `apt-get update && apt-get install -y chromium` "
        "or point DROVER_CHROMIUM at the binary"
    )


@dataclass(frozen=True, slots=True)
class LaunchSettings:
    """How to start one browser.

    ``user_data_dir=None`` means a fresh temporary profile removed at
    shutdown; a path means a persistent profile (one per credential, for
    profile isolation) that is kept.  ``headless=False`` starts a window
    (debugging a flow by watching it), which needs a display.
    """

    binary: str | None = None
    user_data_dir: str | None = None
    extra_args: tuple[str, ...] = ()
    window_size: tuple[int, int] = (1280, 720)
    startup_timeout: float = 30.0
    log_path: str | None = None
    headless: bool = True


@dataclass(slots=True)
class BrowserProcess:
    """A running Chromium with its DevTools endpoint."""

    pid: int
    port: int
    ws_url: str
    user_data_dir: str
    temporary: bool
    startup_seconds: float
    _reaper: subprocess.Popen = field(repr=False)
    tmp_dir: str = ""  # Chromium's private $TMPDIR (the profile itself when temporary); removed at shutdown
    binary: str = ""  # the executable started (a wrapper script's path, when it is one)
    group: int = 0  # the process group the reaper started (0: ``pid``'s); a wrapper script's, when it is one

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def reaper_pid(self) -> int:
        return self._reaper.pid

    def alive(self) -> bool:
        """True while the browser process runs (a zombie counts as dead)."""
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def tree_rss_bytes(self) -> int:
        """Resident memory of the browser and all its helper processes."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue  # a helper exited between listing and reading: it holds no memory
        return total

    def kill(self) -> None:
        """SIGKILL the browser process only (a crash, for tests and fault drills)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            log.debug("kill: browser already gone", extra={"pid": self.pid})

    def close(self, timeout: float = 10.0) -> None:
        """Shut the whole tree down and remove a temporary profile; idempotent."""
        reaper = self._reaper
        if reaper.stdin is not None and not reaper.stdin.closed:
            _ask_to_stop(reaper)
        try:
            reaper.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("browser reaper did not finish; killing it",
                      extra={"reaper_pid": reaper.pid, "pid": self.pid})
            reaper.kill()
            reaper.wait(5)
            try:
                os.killpg(self.group or self.pid, signal.SIGKILL)
            except ProcessLookupError:
                log.debug("browser group already gone", extra={"pid": self.pid})
            for path in {self.tmp_dir, self.user_data_dir if self.temporary else ""} - {""}:
                shutil.rmtree(path, ignore_errors=True)  # the reaper could not: best effort, logged above
        if reaper.stdin is not None:
            reaper.stdin.close()  # only now: EOF before the reaper is done would read as our death (no grace)
        if reaper.stdout is not None:
            reaper.stdout.close()


def _ask_to_stop(reaper: subprocess.Popen) -> None:
    """Tell the reaper this is an orderly shutdown (``stop``: SIGTERM and grace; see ``navigation._reaper``).

    Written with ``os.write``, not the buffered file, so nothing is left in a buffer for ``close()`` to flush
    into a pipe whose reader is gone."""
    assert reaper.stdin is not None
    try:
        os.write(reaper.stdin.fileno(), STOP_LINE)
    except BrokenPipeError:
        log.debug("browser reaper already gone (the browser exited on its own)", extra={"reaper_pid": reaper.pid})


DISPLAY_VARIABLES: tuple[str, ...] = ("DISPLAY", "WAYLAND_DISPLAY")


def check_display(settings: LaunchSettings, env: dict[str, str] | None = None) -> None:
    """Refuse a headed launch on a host without a display, at once.

    Why before starting: a headed Chromium with nowhere to draw exits or
    hangs without announcing DevTools, and the caller would wait the whole
    ``startup_timeout`` for an error that says nothing about the cause.
    """
    env = os.environ if env is None else env
    if settings.headless or any(env.get(name) for name in DISPLAY_VARIABLES):
        return
    raise BrowserLaunchError("browser.headless = false needs a display, and neither $DISPLAY nor $WAYLAND_DISPLAY "
                             "is set (run under a desktop session or xvfb-run, or set headless = true)")


def chromium_args(binary: str, settings: LaunchSettings) -> list[str]:
    """The browser's command line: Drover's flags (``--headless`` unless headed; for the headless shell
    :data:`HEADLESS_SHELL_FLAGS` too), DevTools on 127.0.0.1 with port 0, the window size, then ``extra_args``
    (validated by the caller: :mod:`engine.config`)."""
    width, height = settings.window_size
    # Chromium reads only the last --disable-features: a user's list is merged into ours, not put after it
    # (which would silently turn Drover's off again).
    extra = [arg for arg in settings.extra_args if not arg.startswith(DISABLE_FEATURES_FLAG)]
    disabled = list(DISABLED_FEATURES)
    for arg in settings.extra_args:
        if arg.startswith(DISABLE_FEATURES_FLAG):
            disabled += [f for f in arg[len(DISABLE_FEATURES_FLAG):].split(",") if f and f not in disabled]
    features = DISABLE_FEATURES_FLAG + ",".join(disabled)
    flags = [features if flag.startswith(DISABLE_FEATURES_FLAG) else flag
             for flag in CHROMIUM_FLAGS if settings.headless or flag != HEADLESS_FLAG]
    return [
        binary, *flags,
        *(HEADLESS_SHELL_FLAGS if is_headless_shell(binary) else ()),
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--window-size={width},{height}",
        *extra,
        "about:blank",
    ]


def launch(settings: LaunchSettings | None = None) -> BrowserProcess:
    """Start Chromium and wait until its DevTools endpoint is announced."""
    settings = settings or LaunchSettings()
    check_display(settings)
    binary = resolve_binary(settings.binary) if settings.binary else find_chromium()
    if settings.user_data_dir:
        profile = os.path.abspath(settings.user_data_dir)
        os.makedirs(profile, mode=0o700, exist_ok=True)
        temporary = False
        stale = os.path.join(profile, "DevToolsActivePort")
        if os.path.exists(stale):
            os.unlink(stale)  # left by a browser that died: would point at a dead port
        profile_args = ["--profile", profile]
    else:
        temporary = True
        profile_args = ["--temp-profile", PROFILE_PREFIX]  # the reaper makes it, under its own watch
    args = chromium_args(binary, settings)
    stderr = open(settings.log_path, "ab") if settings.log_path else subprocess.DEVNULL
    started = time.monotonic()
    try:
        reaper = subprocess.Popen(
            [sys.executable, "-S", _REAPER, *profile_args, "--", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, close_fds=True,
        )
    except OSError as exc:
        raise BrowserLaunchError(f"cannot start the browser reaper: {exc}") from exc
    finally:
        if stderr is not subprocess.DEVNULL:
            stderr.close()
    assert reaper.stdout is not None
    line = reaper.stdout.readline().decode().strip()
    if not line.startswith("dirs "):
        _give_up(reaper)
        raise BrowserLaunchError(f"the browser reaper did not start (it said {line!r}, exit {reaper.returncode})")
    dirs = orjson.loads(line[5:])
    if temporary:
        _pause_for_tests("profile", dirs["profile"])
    line = reaper.stdout.readline().decode().strip()
    if not line.startswith("pid "):
        _give_up(reaper)
        raise BrowserLaunchError(f"{binary} did not start (reaper said {line!r}, exit {reaper.returncode})")
    pid = int(line.split()[1])
    proc = BrowserProcess(pid=pid, port=0, ws_url="", user_data_dir=dirs["profile"], temporary=temporary,
                          startup_seconds=0.0, _reaper=reaper, tmp_dir=dirs["tmp"], binary=binary)
    try:
        port, ws_path = _read_active_port(proc.user_data_dir, proc, started + settings.startup_timeout)
    except BrowserLaunchError:
        proc.close()
        raise
    proc.group, proc.pid = pid, _unwrap(pid)
    proc.port = port
    proc.ws_url = f"ws://127.0.0.1:{port}{ws_path}"
    proc.startup_seconds = time.monotonic() - started
    log.debug("browser started", extra={"pid": pid, "port": port, "startup_s": round(proc.startup_seconds, 3),
                                        "temporary_profile": temporary})
    return proc


def _unwrap(pid: int) -> int:
    """The browser's pid: ``pid``, or when ``pid`` is a shell script that runs Chromium as its only child (and
    does not ``exec`` it, as Debian's ``/usr/bin/chromium-headless-shell``), that child — so that
    :meth:`BrowserProcess.kill` and the memory figures reach the browser, not the script.  Called once DevTools
    is announced: the browser runs by then."""
    try:
        proc = psutil.Process(pid)
        if os.path.basename(proc.exe()) not in _SHELLS:  # not name(): a script's is the script's file name
            return pid
        children = proc.children()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return pid  # gone already: the caller finds out on its first command
    return children[0].pid if len(children) == 1 else pid


def _give_up(reaper: subprocess.Popen) -> None:
    """End a reaper that failed to start the browser: closing its stdin makes it clean up and exit."""
    assert reaper.stdin is not None and reaper.stdout is not None
    reaper.stdin.close()
    try:
        reaper.wait(10)
    except subprocess.TimeoutExpired:
        log.error("browser reaper did not exit after a failed start; killing it", extra={"reaper_pid": reaper.pid})
        reaper.kill()
        reaper.wait(5)
    reaper.stdout.close()


def _pause_for_tests(point: str, profile: str) -> None:
    """The ``DROVER_TEST_PAUSE_AT`` hook (module docstring): announce ``profile`` and sleep to be killed."""
    name, _, marker = os.environ.get(PAUSE_ENV, "").partition(":")
    if name != point or not marker:
        return
    with open(marker + ".part", "w", encoding="utf-8") as fh:
        fh.write(profile)
    os.replace(marker + ".part", marker)  # the test never reads a half-written path
    time.sleep(PAUSE_LIMIT)


def _read_active_port(profile: str, proc: BrowserProcess, deadline: float) -> tuple[int, str]:
    path = os.path.join(profile, "DevToolsActivePort")
    delay = 0.005
    while time.monotonic() < deadline:
        try:
            with open(path, encoding="ascii") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            lines = []
        if len(lines) >= 2 and lines[0].isdigit():
            return int(lines[0]), lines[1]
        if not proc.alive():
            raise BrowserLaunchError(f"Chromium (pid {proc.pid}) exited before serving DevTools")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    raise BrowserLaunchError(f"Chromium (pid {proc.pid}) did not announce its DevTools port in time")


__all__ = ["CHROMIUM_FLAGS", "DISABLED_FEATURES", "CHROMIUM_NAMES", "HEADLESS_FLAG", "HEADLESS_SHELL_NAMES",
           "HEADLESS_SHELL_FLAGS", "is_headless_shell", "DISPLAY_VARIABLES", "PROFILE_PREFIX", "TMP_PREFIX",
           "LaunchSettings", "BrowserProcess", "check_display", "chromium_args", "find_chromium", "resolve_binary", "launch"]
