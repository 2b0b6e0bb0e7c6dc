"""DevTools endpoint URLs of remote browsers: parse, validate, redact.

Why a module of its own: the settings validate endpoints, the health
command prints them and the remote lifecycle connects to them, and all
three must agree on what an endpoint is — and must never show the
credentials some endpoints carry (``http://user:password@grid:9222``,
browserless's ``?token=...``).  No I/O and no heavy imports here, so the
settings can use it.

Two forms are accepted:

* ``http(s)://host:port`` — resolved through ``/json/version`` to the
  browser's ``webSocketDebuggerUrl`` on every (re)connect (a restarted
  browser has a new id);
* ``ws(s)://host:port/devtools/browser/ID`` — that browser; when the id is
  gone (the browser was restarted), ``/json/version`` on the same
  host:port gives the new one.
"""
from __future__ import annotations

import base64
import re
import urllib.parse
from dataclasses import dataclass, field

_BROWSER_PATH = re.compile(r"^/devtools/browser/[A-Za-z0-9._-]+$")
_REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` without ``user:password@`` and with every query value replaced by ``***``.

    Query keys stay (``?token=***`` tells an operator a token is used); a
    fragment is dropped.  Anything that does not parse as a URL is
    replaced whole: an unparseable string might still hold a secret.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    query = "&".join(f"{key}={_REDACTED}" if key else _REDACTED
                     for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if parts.query and not query:
        query = _REDACTED
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One configured endpoint, split once; ``url`` is the exact configured text (may hold credentials,
    so it, the credentials and the query are left out of the ``repr``)."""

    url: str = field(repr=False)
    scheme: str          # http, https, ws, wss
    netloc: str          # host:port (IPv6 in brackets), without credentials
    host: str
    port: int
    userinfo: str = field(repr=False)  # "user:password" or "" (sent as HTTP Basic auth, never in a URL); never logged
    query: str = field(repr=False)     # kept on every request (a token); never logged
    browser_path: str    # /devtools/browser/ID for a ws endpoint, "" for http

    @property
    def redacted(self) -> str:
        return redact_url(self.url)

    @property
    def http_base(self) -> str:
        """``http(s)://host:port``: where ``/json/version`` is asked."""
        scheme = {"ws": "http", "wss": "https"}.get(self.scheme, self.scheme)
        return f"{scheme}://{self.netloc}"

    def headers(self) -> dict[str, str]:
        """HTTP Basic auth for an endpoint given as ``user:password@host:port``, else none."""
        if not self.userinfo:
            return {}
        user, _, password = self.userinfo.partition(":")
        raw = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}

    def version_url(self) -> str:
        return f"{self.http_base}/json/version" + (f"?{self.query}" if self.query else "")

    def ws_url(self, browser_path: str | None = None) -> str:
        """The browser websocket: ``browser_path`` (from ``/json/version``) on *this* host:port.

        Why the configured host and not the one in ``webSocketDebuggerUrl``:
        a browser behind a port-forward, proxy or container network reports
        the address it listens on, which the client often cannot reach.
        """
        scheme = {"http": "ws", "https": "wss"}.get(self.scheme, self.scheme)
        path = browser_path if browser_path is not None else self.browser_path
        return f"{scheme}://{self.netloc}{path}" + (f"?{self.query}" if self.query else "")


def endpoint_problem(url: object) -> str | None:
    """Why ``url`` is not a usable endpoint (the message shows it redacted), or None."""
    if not isinstance(url, str) or not url.strip():
        return f"a browser endpoint must be a non-empty string, got {url!r}" if not isinstance(url, str) \
            else "a browser endpoint must not be empty"
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"browser endpoint {shown}: {exc}"
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return (f"browser endpoint {shown}: must be http(s)://host:port or "
                f"ws(s)://host:port/devtools/browser/ID")
    if not parts.hostname or port is None:
        return f"browser endpoint {shown}: needs a host and a port (host:port)"
    if parts.fragment:
        return f"browser endpoint {shown}: must not have a #fragment"
    if parts.scheme in ("http", "https") and parts.path not in ("", "/"):
        return f"browser endpoint {shown}: an http(s) endpoint is host:port only (Drover asks /json/version)"
    if parts.scheme in ("ws", "wss") and not _BROWSER_PATH.match(parts.path):
        return f"browser endpoint {shown}: a ws(s) endpoint must be ws(s)://host:port/devtools/browser/ID"
    return None


def parse_endpoint(url: str) -> Endpoint:
    """An :class:`Endpoint`; raises ``ValueError`` (message redacted) when it is not one."""
    problem = endpoint_problem(url)
    if problem is not None:
        raise ValueError(problem)
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None  # checked above
    userinfo, _, netloc = parts.netloc.rpartition("@")
    return Endpoint(url=url, scheme=parts.scheme, netloc=netloc, host=parts.hostname, port=parts.port,
                    userinfo=userinfo, query=parts.query,
                    browser_path=parts.path if parts.scheme in ("ws", "wss") else "")


def split_endpoints(text: str) -> tuple[str, ...]:
    """``DROVER_CDP_ENDPOINTS``: endpoints separated by commas and/or whitespace."""
    return tuple(item for item in re.split(r"[\s,]+", text) if item)


__all__ = ["Endpoint", "redact_url", "endpoint_problem", "parse_endpoint", "split_endpoints"]
