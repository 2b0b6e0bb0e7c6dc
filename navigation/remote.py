"""Drive a browser somebody else runs: connect to a DevTools endpoint by URL instead of launching one.

Why: browsers often live elsewhere — a browser pod, a grid's ``se:cdp``,
browserless, a Chromium an operator started by hand.  A worker then gets
a :class:`RemoteBrowserLifecycle`, which has the interface of
:class:`~navigation.lifecycle.BrowserLifecycle` (the executor cannot tell
them apart) with three differences:

* **It never kills, closes or restarts the browser.**  Drover did not start
  it and other clients may be using it: ``Browser.close`` is never sent,
  :meth:`close` only closes Drover's websocket, and :meth:`job_finished`
  never recycles.  A browser that stays down past the reconnect backoff is
  reported (:class:`~navigation.errors.BrowserUnavailable`, "endpoint ...
  down"), so the job's attempt fails with category ``cdp`` and is retried
  — on this worker once the browser is back, or on another.
* **It resolves the endpoint on every (re)connect.**  ``http://host:port``
  goes through ``/json/version`` each time (a restarted browser has a new
  id); ``ws://host:port/devtools/browser/ID`` is tried as given and, when
  that id is gone, resolved through ``/json/version`` on the same
  host:port.  The reconnect loop and its cohort-jittered backoff are the
  base class's (this class only overrides the connect and stop hooks).
* **Failover between endpoints.**  A worker has a home endpoint (worker i
  gets endpoint i % N) and tries the others, in order, when its home does
  not answer; the next reconnect tries home first again.

Credential jobs: a remote browser has one profile, so each credential job
runs in a browser context of its own whose cookies are restored from, and
saved back to, the credential's state file (:mod:`navigation.cookie_state`).

Endpoint URLs may carry credentials (``user:password@``, ``?token=``): they
are only ever logged or put into errors through
:func:`~navigation.endpoints.redact_url`; the connection's own ``url`` is
the redacted one too, so CDP errors cannot leak them.
"""
from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterator, Sequence

import orjson
import websocket

from coordination.telemetry_context import current, stream_logger
from navigation import cookie_state
from navigation.cdp import CDPConnection
from navigation.errors import BrowserUnavailable, CDPConnectionLost, CDPError, NavigationError
from navigation.endpoints import Endpoint, parse_endpoint
from navigation.launcher import BrowserProcess
from navigation.lifecycle import BrowserLifecycle, LifecycleSettings

log = stream_logger("operational", __name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_DEFAULT = urllib.request.build_opener()


def probe_endpoint(endpoint: Endpoint, timeout: float = 2.0) -> dict[str, Any]:
    """``GET /json/version`` of the endpoint; raises :class:`BrowserUnavailable` ("endpoint ... down")."""
    opener = _NO_PROXY if endpoint.host in _LOOPBACK else _DEFAULT  # a remote host may sit behind a proxy
    request = urllib.request.Request(endpoint.version_url(), headers=endpoint.headers())
    try:
        with opener.open(request, timeout=timeout) as resp:
            body = resp.read()
    except (urllib.error.URLError, OSError) as exc:  # HTTPError included; their text holds no URL
        raise BrowserUnavailable(f"endpoint {endpoint.redacted} down: /json/version: {exc}") from exc
    try:
        info = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BrowserUnavailable(f"endpoint {endpoint.redacted} down: /json/version is not JSON: {exc}") from exc
    if not isinstance(info, dict) or not isinstance(info.get("webSocketDebuggerUrl"), str):
        raise BrowserUnavailable(f"endpoint {endpoint.redacted} down: /json/version has no webSocketDebuggerUrl")
    return info


def _browser_path(info: dict[str, Any], endpoint: Endpoint) -> str:
    path = urllib.parse.urlsplit(info["webSocketDebuggerUrl"]).path
    if not path.startswith("/devtools/browser/"):
        raise BrowserUnavailable(f"endpoint {endpoint.redacted}: webSocketDebuggerUrl is not a browser target")
    return path


class RemoteBrowserLifecycle(BrowserLifecycle):
    """A connection to a browser at an endpoint (and its fallbacks), owned by one worker; never its killer."""

    def __init__(
        self,
        endpoints: Sequence[str],
        settings: LifecycleSettings | None = None,
        *,
        home: int = 0,
        state_dir: str = "drover-state",
        cohort: str | int = 0,
        seed: int = 0,
        before_send: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        if not endpoints:
            raise ValueError("RemoteBrowserLifecycle needs at least one endpoint")
        super().__init__(settings, cohort=cohort, seed=seed, before_send=before_send, **kwargs)
        parsed = [parse_endpoint(url) for url in endpoints]
        start = home % len(parsed)
        self.endpoints: tuple[Endpoint, ...] = tuple(parsed[start:] + parsed[:start])  # home first
        self.state_dir = state_dir
        self._current: Endpoint | None = None
        self._connected_once = False

    @property
    def browser(self) -> BrowserProcess | None:
        """Always None: there is no browser process of Drover's here."""
        return None

    @property
    def endpoint(self) -> Endpoint | None:
        """The endpoint of the current connection (None before the first connect)."""
        return self._current

    def health(self) -> dict[str, Any]:
        """``/json/version`` of the first endpoint that answers (current, then home, then the others)."""
        errors: list[str] = []
        for endpoint in self._preference():
            try:
                return probe_endpoint(endpoint, self.settings.health_timeout)
            except BrowserUnavailable as exc:
                errors.append(str(exc))
        raise BrowserUnavailable("; ".join(errors))

    def ensure(self) -> CDPConnection:
        """The live connection; the first connect failing goes through the reconnect backoff like a loss."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if not self._connected_once:
            try:
                return self._connect()
            except (NavigationError, CDPError) as exc:
                return self.reconnect(f"initial connect failed: {exc}")
        return self.reconnect("connection not usable")

    def ensure_profile(self, user_data_dir: str | None) -> CDPConnection:
        """A remote browser has one profile: credential isolation is :meth:`credential_context`'s job."""
        return self.ensure()

    @contextlib.contextmanager
    def credential_context(self, conn: CDPConnection, scope: str | None) -> Iterator[str | None]:
        """A fresh browser context for the credential, with its saved cookies; they are saved back after.

        The caller holds the credential's lock (one writer per state file).
        When the connection is lost during the job, the cookies of that job
        cannot be read: the state file keeps the previous job's (logged).
        """
        if scope is None:
            yield None
            return
        path = cookie_state.state_path(self.state_dir, scope)
        context_id = conn.send("Target.createBrowserContext", {"disposeOnDetach": True})["browserContextId"]
        try:
            cookie_state.restore(conn, context_id, path)
            yield context_id
        finally:
            self._save_and_dispose(conn, context_id, path)

    @staticmethod
    def _save_and_dispose(conn: CDPConnection, context_id: str, path: str) -> None:
        """After the job: its cookies to the state file, then the context goes.

        A failure here does not fail the job (it already ran; running it
        again for its cookies could repeat what it did): it is logged, and
        the state file keeps what the previous job of the credential saved.
        """
        if conn.closed:
            log.warning("credential cookies not saved: connection lost during the job", extra={
                "event": "credential_state_unsaved", "reason": "connection lost", **current()})
            return
        try:
            cookie_state.save(conn, context_id, path)
        except (CDPError, OSError) as exc:
            log.warning("credential cookies not saved", extra={
                "event": "credential_state_unsaved", "reason": f"{type(exc).__name__}: {exc}", **current()})
        if conn.closed:
            return
        try:
            conn.send("Target.disposeBrowserContext", {"browserContextId": context_id}, timeout=10)
        except CDPError as exc:  # it goes with Drover's websocket anyway (disposeOnDetach)
            log.warning("credential context not disposed", extra={
                "event": "dispose_failed", "error": str(exc), **current()})

    def job_finished(self) -> bool:
        """Counted, never recycled: the browser is not Drover's to restart."""
        self._jobs_since_launch += 1
        return False

    def close(self) -> None:
        """Close Drover's websocket only; the browser keeps running."""
        self._drop_connection()

    # -- hooks of BrowserLifecycle's reconnect loop -------------------------------

    def _needs_start(self) -> bool:
        return False  # never start a browser: reconnect (health probe, then connect)

    def _start(self, reason: str, restart: bool = False) -> CDPConnection:
        return self._connect()  # nothing to launch

    def _stop_browser(self) -> None:
        self._drop_connection()  # the browser is not Drover's: only the connection goes

    def _connect(self) -> CDPConnection:
        """Connect to the first endpoint that answers, home first; raise if none does."""
        self._drop_connection()
        errors: list[str] = []
        for endpoint in self._preference(home_first=True):
            try:
                conn, version = self._open(endpoint)
            except (BrowserUnavailable, CDPConnectionLost) as exc:
                errors.append(str(exc))
                continue
            fallback = endpoint is not self.endpoints[0]
            (log.warning if fallback else log.info)(
                "remote browser connected", extra={
                    "event": "remote_connect", "endpoint": endpoint.redacted, "browser_version": version,
                    "fallback": fallback, "cohort": str(self.cohort), **current()})
            self._conn, self._current, self._connected_once = conn, endpoint, True
            return conn
        raise BrowserUnavailable("; ".join(errors))

    # -- internals ---------------------------------------------------------------

    def _preference(self, home_first: bool = False) -> list[Endpoint]:
        order = list(self.endpoints)
        if not home_first and self._current is not None:
            order.remove(self._current)
            order.insert(0, self._current)
        return order

    def _open(self, endpoint: Endpoint) -> tuple[CDPConnection, str]:
        """(connection, browser version) for one endpoint: a ws URL as given, else (or when its id is gone)
        the one ``/json/version`` names."""
        if endpoint.browser_path:
            try:
                return self._websocket(endpoint, endpoint.browser_path), "?"
            except CDPConnectionLost as exc:
                log.info("remote browser id gone; resolving /json/version", extra={
                    "event": "remote_resolve", "endpoint": endpoint.redacted, "error": str(exc), **current()})
        info = probe_endpoint(endpoint, self.settings.health_timeout)
        return self._websocket(endpoint, _browser_path(info, endpoint)), str(info.get("Browser", "?"))

    def _websocket(self, endpoint: Endpoint, path: str) -> CDPConnection:
        url = endpoint.ws_url(path)
        shown = endpoint.redacted if path == endpoint.browser_path else f"{endpoint.redacted} ({path})"
        try:
            ws = websocket.create_connection(
                url, timeout=self.settings.connect_timeout, header=endpoint.headers(),
                skip_utf8_validation=True, suppress_origin=True, enable_multithread=False,
                http_no_proxy=list(_LOOPBACK), sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
        except (OSError, websocket.WebSocketException) as exc:
            raise CDPConnectionLost(f"endpoint {shown} down: cannot connect: {_scrub(exc, endpoint)}") from exc
        # the connection's url is the redacted one: CDP errors quote it
        return CDPConnection(ws, shown, default_timeout=self.settings.command_timeout, before_send=self.before_send)


def _scrub(exc: BaseException, endpoint: Endpoint) -> str:
    """An exception's text without the endpoint's credentials or query, should a library have quoted them."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    for secret in (endpoint.userinfo, endpoint.query):
        if secret:
            text = text.replace(secret, "***")
    return text


__all__ = ["RemoteBrowserLifecycle", "probe_endpoint"]
