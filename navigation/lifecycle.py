"""Keep one browser available to one worker: start, probe, restart, reconnect.

Why a manager instead of "just launch": browsers crash, hang and leak.  A
worker asks :meth:`BrowserLifecycle.ensure` for a live connection before a
job and calls :meth:`BrowserLifecycle.reconnect` when the connection is
lost; the manager decides between reconnecting to a healthy browser and
restarting a dead one, waits between attempts on the cohort's own jittered
backoff stream (so a shared outage does not make every worker retry in
lock-step), and logs every decision with the bound correlation id.

Sessions share a browser through :mod:`navigation.shared_browser`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

import orjson

from coordination.backoff import Backoff, BackoffProfile, cohort_seed
from coordination.telemetry_context import current, stream_logger
from navigation.cdp import CDPConnection
from navigation.errors import (
    BrowserError,
    BrowserLaunchError,
    BrowserUnavailable,
    CDPError,
)
from navigation.launcher import BrowserProcess, LaunchSettings, launch

log = stream_logger("operational", __name__)

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    """Launch settings plus the reconnect and recycling policy."""

    launch: LaunchSettings = field(default_factory=LaunchSettings)
    backoff: BackoffProfile = field(default_factory=lambda: BackoffProfile(base=0.2, cap=3.0, max_attempts=5))
    health_timeout: float = 2.0
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    recycle_after_jobs: int = 0
    max_rss_bytes: int = 0


@dataclass(slots=True)
class LifecycleStats:
    launches: int = 0
    restarts: int = 0
    forced_reconnects: int = 0
    reconnect_attempts: int = 0
    recycles: int = 0
    last_startup_seconds: float = 0.0


def recycle_reason(s: LifecycleSettings, jobs_since_launch: int, browser: BrowserProcess | None) -> str | None:
    """Why the recycling policy says the browser is due for a restart now, or None."""
    if s.recycle_after_jobs and jobs_since_launch >= s.recycle_after_jobs:
        return f"after {jobs_since_launch} jobs"
    if s.max_rss_bytes and browser is not None:
        rss = browser.tree_rss_bytes()
        if rss > s.max_rss_bytes:
            return f"memory {rss} > {s.max_rss_bytes} bytes"
    return None


def probe(http_url: str, timeout: float = 2.0) -> dict[str, Any]:
    """``GET /json/version``; raises :class:`BrowserUnavailable` if it does not answer properly."""
    try:
        with _NO_PROXY.open(f"{http_url}/json/version", timeout=timeout) as resp:
            body = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise BrowserUnavailable(f"health probe {http_url}/json/version failed: {exc}") from exc
    try:
        info = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BrowserUnavailable(f"health probe {http_url}/json/version: not JSON: {exc}") from exc
    if not isinstance(info, dict) or "webSocketDebuggerUrl" not in info:
        raise BrowserUnavailable(f"health probe {http_url}/json/version: no webSocketDebuggerUrl")
    return info


class BrowserLifecycle:
    """One browser and its browser-level CDP connection, owned by one worker."""

    def __init__(
        self,
        settings: LifecycleSettings | None = None,
        *,
        cohort: str | int = 0,
        seed: int = 0,
        before_send: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or LifecycleSettings()
        self.cohort = cohort
        self.before_send = before_send
        self.stats = LifecycleStats()
        self._backoff = Backoff(self.settings.backoff, cohort_seed(seed, cohort))
        self._sleep = sleep
        self._browser: BrowserProcess | None = None
        self._conn: CDPConnection | None = None
        self._jobs_since_launch = 0

    @property
    def browser(self) -> BrowserProcess | None:
        return self._browser

    @property
    def connection(self) -> CDPConnection | None:
        return self._conn

    @property
    def forced_reconnects(self) -> int:
        """Reconnects forced by a lost connection, over this lifecycle's life (what a worker reports)."""
        return self.stats.forced_reconnects

    def health(self) -> dict[str, Any]:
        """Probe the current browser; raises :class:`BrowserUnavailable` when it is down."""
        if self._browser is None or not self._browser.alive():
            raise BrowserUnavailable("no browser process is running")
        return probe(self._browser.http_url, self.settings.health_timeout)

    def ensure(self) -> CDPConnection:
        """A live connection, starting or reconnecting the browser as needed."""
        if self._conn is not None and not self._conn.closed and self._browser is not None \
                and self._browser.alive():
            return self._conn
        if self._browser is None:
            return self._start("initial start")
        return self.reconnect("connection not usable")

    def ensure_profile(self, user_data_dir: str | None) -> CDPConnection:
        """A live connection to a browser on ``user_data_dir`` (None: a temporary profile).

        Profile isolation: the engine gives each credential its own persistent
        profile (per worker).  Switching profiles restarts the browser.
        """
        launch_settings = self.settings.launch
        if launch_settings.user_data_dir != user_data_dir:
            self.settings = dataclasses.replace(
                self.settings, launch=dataclasses.replace(launch_settings, user_data_dir=user_data_dir))
            if self._browser is not None:
                self._stop_browser()
                return self._start(f"profile switch to {'temporary' if user_data_dir is None else 'persistent'}")
        return self.ensure()

    def reconnect(self, reason: str) -> CDPConnection:
        """Re-establish a connection after a loss: reconnect if healthy, else restart; jittered backoff."""
        self.stats.forced_reconnects += 1
        self._drop_connection()
        self._backoff.reset()
        attempt = 0
        last_error: BrowserError | CDPError | None = None
        while True:
            attempt += 1
            self.stats.reconnect_attempts += 1
            try:
                if self._needs_start():
                    action = "restart"
                    conn = self._start(f"reconnect: {reason}", restart=True)
                else:
                    action = "reconnect"
                    self.health()
                    conn = self._connect()
            except (BrowserError, CDPError) as exc:
                last_error = exc
                delay = self._backoff.next_delay()
                log.warning("reconnect attempt failed", extra={
                    "event": "reconnect", "attempt": attempt, "action": action, "outcome": "failed",
                    "reason": reason, "error": str(exc), "error_category": type(exc).category,
                    "next_delay_s": None if delay is None else round(delay, 4), "cohort": str(self.cohort),
                    **current()})
                if delay is None:
                    raise BrowserUnavailable(
                        f"browser not available after {attempt} attempts ({reason}): {last_error}"
                    ) from exc
                if action == "reconnect" and self._browser is not None:
                    self._stop_browser()  # healthy-looking but unusable: replace it next time
                self._sleep(delay)
                continue
            log.info("reconnect succeeded", extra={
                "event": "reconnect", "attempt": attempt, "action": action, "outcome": "ok",
                "reason": reason, "cohort": str(self.cohort), **current()})
            return conn

    def credential_context(self, conn: CDPConnection, scope: str | None) -> ContextManager[str | None]:
        """The browser context a credential job runs in: here none (its own profile's default context);
        a remote browser gives one per credential (:mod:`navigation.remote`)."""
        return contextlib.nullcontext(None)

    def job_finished(self) -> bool:
        """Count a finished job; recycle the browser when the policy says so.  True if recycled."""
        self._jobs_since_launch += 1
        why = recycle_reason(self.settings, self._jobs_since_launch, self._browser)
        if why is None:
            return False
        self.stats.recycles += 1
        log.info("browser recycled", extra={"event": "recycle", "reason": why, **current()})
        self._stop_browser()
        self._start(f"recycle: {why}")
        return True

    def close(self) -> None:
        """Close the connection and shut the browser down (temporary profile removed)."""
        self._stop_browser()

    def __enter__(self) -> "BrowserLifecycle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------

    def _needs_start(self) -> bool:
        """Reconnect by starting a browser (none, or it died) rather than connecting to it again."""
        return self._browser is None or not self._browser.alive()

    def _start(self, reason: str, restart: bool = False) -> CDPConnection:
        self._stop_browser()
        try:
            self._browser = launch(self.settings.launch)
        except BrowserLaunchError:
            log.error("browser launch failed", extra={"event": "launch", "reason": reason, **current()})
            raise
        self.stats.launches += 1
        self.stats.restarts += int(restart)
        self.stats.last_startup_seconds = self._browser.startup_seconds
        self._jobs_since_launch = 0
        log.info("browser started", extra={
            "event": "restart" if restart else "launch", "reason": reason, "pid": self._browser.pid,
            "port": self._browser.port, "binary": self._browser.binary, "startup_s": round(self._browser.startup_seconds, 3), **current()})
        return self._connect()

    def _connect(self) -> CDPConnection:
        assert self._browser is not None
        self._drop_connection()
        self._conn = CDPConnection.connect(
            self._browser.ws_url, timeout=self.settings.connect_timeout,
            default_timeout=self.settings.command_timeout, before_send=self.before_send)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _stop_browser(self) -> None:
        self._drop_connection()
        if self._browser is not None:
            self._browser.close()
            self._browser = None


__all__ = ["LifecycleSettings", "LifecycleStats", "BrowserLifecycle", "probe", "recycle_reason"]
