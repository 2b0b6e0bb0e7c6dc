"""One launched browser shared by the K session threads of a worker.

With ``sessions_per_worker = K > 1`` the K session threads of a
worker share one launched browser (:class:`SharedBrowser`) and each drives
it over a websocket of its own (:class:`SessionLifecycle`), so every
connection keeps one owner thread and its own ownership guard.  The shared
browser is the only thread-safe object here: a lock and a **generation**
counter make a crash cost exactly one restart (a session that saw
generation g fail replaces the browser only if it is still generation g,
else it connects to the one another session already started), and
recycling waits until no session is running a job.  A credential's
persistent profile cannot be shared (Chromium locks a profile to one
process), so a session's credential job gets a browser of the session's
own on that profile.

Split from :mod:`navigation.lifecycle`, whose one-owner reconnect and
restart policy :class:`SessionLifecycle` inherits.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Iterator

from coordination.telemetry_context import current, stream_logger
from navigation.cdp import CDPConnection
from navigation.errors import BrowserError, BrowserLaunchError, BrowserUnavailable, CDPError
from navigation.launcher import BrowserProcess, launch
from navigation.lifecycle import BrowserLifecycle, LifecycleSettings, LifecycleStats, probe, recycle_reason

log = stream_logger("operational", __name__)


RECYCLE_WAIT_S = 600.0  # at most this long a due recycle holds new jobs back while others finish theirs


class SharedBrowser:
    """One launched browser that the K sessions of a worker share; thread-safe (see the module docstring).

    It owns the process only: every session opens its own websocket to it
    (:class:`SessionLifecycle`).  Starts, restarts and recycles happen under
    one lock and bump :attr:`generation`, which is how a session tells "the
    browser I saw fail" from "the browser another session has already put
    in its place".
    """

    def __init__(self, settings: LifecycleSettings | None = None, *, cohort: str | int = 0) -> None:
        self.settings = settings or LifecycleSettings()
        self.cohort = cohort
        self.stats = LifecycleStats()
        self._cond = threading.Condition(threading.Lock())
        self._browser: BrowserProcess | None = None
        self._generation = 0
        self._jobs_since_launch = 0
        self._running = 0                 # sessions inside job()
        self._recycle_due: str | None = None

    @property
    def browser(self) -> BrowserProcess | None:
        return self._browser

    @property
    def generation(self) -> int:
        """Rises with every start (launch, restart, recycle); 0 before the first."""
        return self._generation

    def current(self, reason: str) -> tuple[BrowserProcess, int]:
        """The live browser and its generation: started when there is none, restarted when it died.

        Under the lock, so when the browser dies under K sessions the first
        one to ask restarts it and the others get the new one.
        """
        with self._cond:
            browser = self._browser
            if browser is not None and browser.alive():
                return browser, self._generation
            return self._start_locked(reason, restart=browser is not None or self._generation > 0)

    def replace(self, generation: int, reason: str) -> tuple[BrowserProcess, int]:
        """The browser of ``generation`` runs but is unusable (no health answer): replace it — unless another
        session already has (a newer generation that is alive)."""
        with self._cond:
            browser = self._browser
            if self._generation != generation and browser is not None and browser.alive():
                return browser, self._generation
            return self._start_locked(f"replace: {reason}", restart=True)

    def health(self) -> dict[str, Any]:
        browser = self._browser
        if browser is None or not browser.alive():
            raise BrowserUnavailable("no browser process is running")
        return probe(browser.http_url, self.settings.health_timeout)

    @contextlib.contextmanager
    def job(self) -> Iterator[None]:
        """A session runs a job: the browser is not recycled under it.

        A due recycle happens when no session is inside ``job()``; until
        then new jobs wait (bounded by :data:`RECYCLE_WAIT_S`), so a busy
        worker cannot put a recycle off for ever.
        """
        with self._cond:
            deadline = time.monotonic() + RECYCLE_WAIT_S
            while self._recycle_due is not None and self._running > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("recycle still waiting for running sessions; job starts on the old browser",
                                extra={"event": "recycle_waiting", "running": self._running,
                                       "reason": self._recycle_due, **current()})
                    break
                self._cond.wait(min(left, 1.0))
            if self._recycle_due is not None and self._running == 0:
                self._recycle_locked()
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                if self._recycle_due is not None and self._running == 0:
                    self._recycle_locked()
                self._cond.notify_all()

    def job_finished(self) -> bool:
        """Count a finished job; when the policy says so, mark a recycle due (carried out by :meth:`job` once
        no session runs a job).  Always False: nothing was recycled under the caller."""
        with self._cond:
            self._jobs_since_launch += 1
            if self._recycle_due is not None:
                return False
            why = recycle_reason(self.settings, self._jobs_since_launch, self._browser)
            if why is not None:
                self._recycle_due = why
                log.info("browser recycle due: waits for idle sessions", extra={
                    "event": "recycle_due", "reason": why, "running": self._running, **current()})
        return False

    def close(self) -> None:
        with self._cond:
            self._stop_locked()

    # -- internals (lock held) ---------------------------------------------------

    def _recycle_locked(self) -> None:
        why, self._recycle_due = self._recycle_due, None
        self.stats.recycles += 1
        log.info("browser recycled", extra={"event": "recycle", "reason": why, "generation": self._generation,
                                            **current()})
        try:
            self._start_locked(f"recycle: {why}")
        except BrowserError as exc:  # no browser now: the next session to ask starts one (current())
            log.error("browser recycle failed; the next job starts a browser", extra={
                "event": "recycle_failed", "error": str(exc), **current()})

    def _start_locked(self, reason: str, restart: bool = False) -> tuple[BrowserProcess, int]:
        self._stop_locked()
        try:
            browser = launch(self.settings.launch)
        except BrowserLaunchError:
            log.error("browser launch failed", extra={"event": "launch", "reason": reason, **current()})
            raise
        self._browser = browser
        self._generation += 1
        self.stats.launches += 1
        self.stats.restarts += int(restart)
        self.stats.last_startup_seconds = browser.startup_seconds
        self._jobs_since_launch = 0
        self._recycle_due = None
        log.info("browser started", extra={
            "event": "restart" if restart else "launch", "reason": reason, "pid": browser.pid,
            "port": browser.port, "binary": browser.binary, "generation": self._generation, "shared": True,
            "startup_s": round(browser.startup_seconds, 3), **current()})
        return browser, self._generation

    def _stop_locked(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None


class SessionLifecycle(BrowserLifecycle):
    """One session's side of a :class:`SharedBrowser`: its own websocket, its own guard, used by one thread.

    The executor cannot tell it from a :class:`BrowserLifecycle`.  Anonymous
    jobs run on the shared browser; a credential job's persistent profile
    gets a browser of this session's own (:attr:`own`, kept open between
    that credential's jobs: profile isolation as with one session).
    """

    def __init__(self, shared: SharedBrowser, *, cohort: str | int = 0, seed: int = 0,
                 before_send: Callable[[], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(shared.settings, cohort=cohort, seed=seed, before_send=before_send, sleep=sleep)
        self.shared = shared
        self.own: BrowserLifecycle | None = None
        self._seed = seed
        self._generation = 0   # of the shared browser self._conn is connected to
        self._on_own = False   # the last ensure_profile asked for a credential's profile

    @property
    def browser(self) -> BrowserProcess | None:
        return self.own.browser if self._on_own and self.own is not None else self.shared.browser

    @property
    def connection(self) -> CDPConnection | None:
        return self.own.connection if self._on_own and self.own is not None else self._conn

    @property
    def forced_reconnects(self) -> int:
        return self.stats.forced_reconnects + (self.own.stats.forced_reconnects if self.own is not None else 0)

    def health(self) -> dict[str, Any]:
        if self._on_own and self.own is not None:
            return self.own.health()
        return self.shared.health()

    def ensure(self) -> CDPConnection:
        if self._on_own and self.own is not None:
            return self.own.ensure()
        conn = self._conn
        browser = self.shared.browser
        if conn is not None and not conn.closed and self._generation == self.shared.generation \
                and browser is not None and browser.alive():
            return conn
        if conn is None or self._generation != self.shared.generation:
            # first use, or another session (a recycle, a restart) replaced the browser: not a loss of ours
            return self._attach("initial start" if conn is None else "browser replaced", event="session_connect")
        return self.reconnect("connection not usable")

    def ensure_profile(self, user_data_dir: str | None) -> CDPConnection:
        """None: the shared browser.  A credential's profile: this session's own browser on it."""
        if user_data_dir is None:
            self._on_own = False
            return self.ensure()
        if self.own is None:
            self.own = BrowserLifecycle(self.settings, cohort=f"{self.cohort}-profile", seed=self._seed,
                                        before_send=self.before_send, sleep=self._sleep)
        self._on_own = True
        return self.own.ensure_profile(user_data_dir)

    def reconnect(self, reason: str) -> CDPConnection:
        """After a loss: reconnect to the shared browser, which the first session to ask restarts if it died."""
        if self._on_own and self.own is not None:
            return self.own.reconnect(reason)
        self.stats.forced_reconnects += 1
        return self._attach(reason, event="reconnect")

    def job_finished(self) -> bool:
        if self._on_own and self.own is not None:
            return self.own.job_finished()
        return self.shared.job_finished()

    def close(self) -> None:
        """This session's websocket and own browser; the shared browser is its worker's to close."""
        self._drop_connection()
        if self.own is not None:
            self.own.close()

    def _stop_browser(self) -> None:
        self._drop_connection()  # the shared browser is not this session's to stop

    def _attach(self, reason: str, *, event: str) -> CDPConnection:
        """Connect to the shared browser, on the cohort's jittered backoff.

        A browser that runs but cannot be connected to is replaced only when
        its health probe fails too, and only if it is still the generation
        this session saw (:meth:`SharedBrowser.replace`).
        """
        self._drop_connection()
        self._backoff.reset()
        attempt = 0
        suspect = 0  # the generation whose browser failed the last attempt
        while True:
            attempt += 1
            self.stats.reconnect_attempts += 1
            generation = 0
            try:
                browser, generation = (self.shared.replace(suspect, reason) if suspect
                                       else self.shared.current(reason))
                conn = CDPConnection.connect(browser.ws_url, timeout=self.settings.connect_timeout,
                                             default_timeout=self.settings.command_timeout,
                                             before_send=self.before_send)
            except (BrowserError, CDPError) as exc:
                delay = self._backoff.next_delay()
                suspect = generation if generation and not self._answers(generation) else 0
                log.warning("reconnect attempt failed", extra={
                    "event": event, "attempt": attempt, "action": "reconnect", "outcome": "failed",
                    "reason": reason, "error": str(exc), "error_category": type(exc).category,
                    "generation": generation, "next_delay_s": None if delay is None else round(delay, 4),
                    "cohort": str(self.cohort), **current()})
                if delay is None:
                    raise BrowserUnavailable(
                        f"browser not available after {attempt} attempts ({reason}): {exc}") from exc
                self._sleep(delay)
                continue
            self._conn, self._generation = conn, generation
            log.info("reconnect succeeded" if event == "reconnect" else "session connected", extra={
                "event": event, "attempt": attempt, "action": "reconnect", "outcome": "ok", "reason": reason,
                "generation": generation, "cohort": str(self.cohort), **current()})
            return conn

    def _answers(self, generation: int) -> bool:
        """Whether the shared browser is still ``generation`` and answers its health probe."""
        if self.shared.generation != generation:
            return True  # replaced already: nothing to suspect
        try:
            self.shared.health()
        except BrowserUnavailable:
            return False
        return True


__all__ = ["SharedBrowser", "SessionLifecycle", "RECYCLE_WAIT_S"]
