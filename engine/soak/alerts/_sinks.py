"""Where alerts go: a line on stderr, the run directory's alerts file, a webhook.  A sink never raises into the soak."""
from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Protocol

import orjson

from coordination.telemetry_context import stream_logger
from engine.errors import ConfigError
from engine.records import rundir
from engine.records.rundir import Alert

ops = stream_logger("operational", "engine.soak.alerts")


def alert_line(alert: Alert) -> str:
    """The operator's one line for an alert (stderr)."""
    where = "whole run" if alert.window == "run" else f"window {alert.window}"
    return f"ALERT {alert.severity} [{alert.rule}] {where}: {alert.message}"


class AlertSink(Protocol):
    """Where alerts go.  ``emit`` must not raise: a broken sink counts its failures and the soak goes on."""

    failures: int

    def emit(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


class StderrSink:
    """One line per alert through ``write_line`` (the CLI passes its Console, which owns the terminal)."""

    def __init__(self, write_line: Callable[[str], None]) -> None:
        self.write_line = write_line
        self.failures = 0

    def emit(self, alert: Alert) -> None:
        try:
            self.write_line(alert_line(alert))
        except (OSError, ValueError) as exc:  # a closed or broken stderr (cron's pipe went away)
            self.failures += 1
            ops.warning("alert line not written", extra={"event": "alert_sink_failed", "sink": "stderr",
                                                         "error": str(exc)})

    def close(self) -> None:
        return None


class JsonlSink:
    """The run directory's alerts file: one JSON object per alert, appended whole with one write."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self._file = rundir.alerts_file(run_dir)
        self.path = self._file.path
        self.failures = 0

    def emit(self, alert: Alert) -> None:
        try:
            self._file.append(alert.to_json())
        except OSError as exc:  # disk full, run dir gone: counted and logged, the soak goes on
            self.failures += 1
            ops.error("alert record not written", extra={"event": "alert_sink_failed", "sink": str(self.path),
                                                         "error": str(exc)})

    def close(self) -> None:
        self._file.close()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: the soak talks only to the URL the operator configured."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class WebhookSink:
    """POSTs each alert as JSON to one http(s) URL.  Never raises into the soak.

    Worst case per alert: ``(1 + retries) * timeout`` plus the backoff
    sleeps; after ``breaker_after`` alerts in a row could not be delivered
    the sink stops trying for ``cooldown_s`` (those alerts are counted as
    ``skipped`` failures), so a dead receiver cannot stall the soak loop.
    4xx answers (except 408/429) are not retried: the request is wrong,
    repeating it will not help.  Proxies follow the usual ``*_proxy``
    environment variables.
    """

    def __init__(self, url: str, *, timeout: float = 3.0, retries: int = 2, backoff_s: float = 0.5,
                 breaker_after: int = 3, cooldown_s: float = 60.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"webhook URL must be http:// or https:// with a host, got {_scheme_only(url)}")
        if timeout <= 0 or retries < 0 or backoff_s < 0 or breaker_after < 1 or cooldown_s < 0:
            raise ConfigError("webhook needs timeout > 0, retries >= 0, backoff >= 0, breaker_after >= 1")
        self.url = url
        self.target = _redacted(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.breaker_after = breaker_after
        self.cooldown_s = cooldown_s
        self._sleep = sleep
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirects)
        self.delivered = 0
        self.failures = 0
        self.skipped = 0
        self.requests = 0
        self.last_error: str | None = None
        self._failed_in_a_row = 0
        self._open_until = 0.0

    def emit(self, alert: Alert) -> None:
        if self._failed_in_a_row >= self.breaker_after and self._clock() < self._open_until:
            self.failures += 1
            self.skipped += 1
            return
        body = orjson.dumps(alert.to_json())
        tries = 0
        for n in range(1 + self.retries):
            tries += 1
            retryable, error = self._post(body)
            if error is None:
                self.delivered += 1
                self._failed_in_a_row = 0
                return
            self.last_error = error
            if not retryable:
                break
            if n < self.retries:
                self._sleep(self.backoff_s * (2 ** n))
        self.failures += 1
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= self.breaker_after:
            self._open_until = self._clock() + self.cooldown_s
        ops.warning("alert webhook delivery failed", extra={
            "event": "alert_webhook_failed", "target": self.target, "error": self.last_error, "tries": tries,
            "rule": alert.rule, "failures": self.failures,
            "paused_s": self.cooldown_s if self._failed_in_a_row >= self.breaker_after else 0.0})

    def _post(self, body: bytes) -> tuple[bool, str | None]:
        """(retryable, error); error None on a 2xx answer."""
        self.requests += 1
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "drover-alerts/1"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                resp.read(65536)
            return False, None
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code >= 500 or exc.code in (408, 429), f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:  # refused, DNS, TLS
            return True, f"{type(exc.reason).__name__}: {exc.reason}"
        except (http.client.HTTPException, OSError) as exc:  # timeouts, resets, garbled answers
            return True, f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        return None


def _scheme_only(url: object) -> str:
    """What to say about a rejected URL without echoing a token that may sit in it."""
    if not isinstance(url, str):
        return repr(url)
    scheme = urllib.parse.urlsplit(url).scheme
    return f"a {scheme}: URL" if scheme else "a URL without a scheme"


__all__ = ["AlertSink", "StderrSink", "JsonlSink", "WebhookSink", "alert_line"]
