"""The fixture site's HTTP server: static pages from ``static/`` plus a few dynamic routes.

Routes (GET and HEAD unless noted)::

    /, /index.html, /<name>.html, /events.js, ...   static files (whitelist, read once)
    /result?<fields>      the form page's target; echoes each field in #out-<field>
    /slow?ms=N            answers after N ms (default: the site's slow_delay; max 30 s)
    /error                HTTP 500, title "Drover error"
    /status/<code>        that status (200-599)
    POST /api/login       JSON {"user", "password"} -> 200 {"ok": true, "user"} | 401

Static files are read into memory when the site starts and looked up by
exact path, so no request path ever reaches the file system: ``..``,
backslashes, NUL bytes and encoded variants are rejected with 400, and
anything not in the table is a 404.

Threads: ``ThreadingHTTPServer`` runs each connection in a daemon thread.
The site tracks those threads and their sockets so that :meth:`stop` can
shut the sockets down (ending idle keep-alive connections and
interrupting ``/slow``) and join every thread within a bound.
"""
from __future__ import annotations

import hmac
import html
import json
import logging
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

DEFAULT_USERS: dict[str, str] = {"alice": "correct horse"}
ALLOWED_HOST = "127.0.0.1"
MAX_SLOW_S = 30.0
MAX_BODY = 16 * 1024
STOP_TIMEOUT_S = 5.0
_POLL_INTERVAL_S = 0.05
_IDLE_TIMEOUT_S = 30.0

# The form page's fields, in page order; /result always renders #out-<name> for each.
FORM_FIELDS: tuple[str, ...] = (
    "name", "email", "city", "color", "when", "shade", "notes", "bio", "agree",
)

_CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"


def _content_type(name: str) -> str:
    dot = name.rfind(".")
    return _CONTENT_TYPES.get(name[dot:].lower() if dot >= 0 else "", "application/octet-stream")


def load_static() -> dict[str, tuple[bytes, str]]:
    """Every file under ``static/``, keyed by its URL path (``/form.html``)."""
    table: dict[str, tuple[bytes, str]] = {}
    root = resources.files(__package__).joinpath("static")
    pending = [(root, "")]
    for _ in range(10_000):  # bounded walk; the tree is tiny
        if not pending:
            break
        node, prefix = pending.pop()
        for child in node.iterdir():
            if child.name.startswith(".") or child.name == "__pycache__":
                continue
            if child.is_dir():
                pending.append((child, f"{prefix}/{child.name}"))
            else:
                path = f"{prefix}/{child.name}"
                table[path] = (child.read_bytes(), _content_type(child.name))
    if "/index.html" in table:
        table["/"] = table["/index.html"]
    return table


def render_page(page: str, title: str, body: str) -> bytes:
    """A small server-rendered page that includes the shared event log."""
    return (
        "<!doctype html>\n"
        f'<html lang="en" data-page="{html.escape(page)}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<link rel="icon" href="data:,">\n<link rel="stylesheet" href="/site.css">\n'
        '<script src="/events.js"></script>\n</head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    ).encode("utf-8")


def _bad_path(path: str) -> bool:
    if "\x00" in path or "\\" in path or not path.startswith("/"):
        return True
    return any(part in ("..", ".") for part in path.split("/"))


class _Server(ThreadingHTTPServer):
    """Tracks live connection threads so the site can end them on stop."""

    daemon_threads = True
    block_on_close = False  # the site joins its tracked threads itself, with a bound

    def __init__(self, address: tuple[str, int], users: dict[str, str], slow_delay: float,
                 static: dict[str, tuple[bytes, str]]) -> None:
        self.users = users
        self.slow_delay = slow_delay
        self.static = static
        self.stopping = threading.Event()
        self._live_lock = threading.Lock()
        self._live: dict[threading.Thread, socket.socket] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        name = f"fixture-site-{self.server_address[1]}-conn-{client_address[1]}"
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name=name, daemon=True)
        with self._live_lock:
            self._live[thread] = request
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._live.pop(threading.current_thread(), None)

    def live_connections(self) -> list[tuple[threading.Thread, socket.socket]]:
        with self._live_lock:
            return list(self._live.items())

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)) or self.stopping.is_set():
            log.debug("fixture site: connection from %s ended: %r", client_address, exc)
        else:
            log.error("fixture site: handler failed for %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "DroverFixture/1"
    sys_version = ""
    timeout = _IDLE_TIMEOUT_S  # idle keep-alive connections end on their own
    # TCP_NODELAY: a response is written as headers, then body (two sends).  With Nagle's algorithm on, the
    # body waited for the client's ACK of the headers, which the client delays (up to 40 ms on Linux): every
    # page and subresource of the site took ~40 ms more than its server's work, on loopback.
    disable_nagle_algorithm = True

    # -- logging: never stderr --------------------------------------------------------------
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        log.debug("fixture site: %s " + format, self.address_string(), *args)

    # -- responses ----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        no_body = status in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED)
        if not no_body:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and not no_body:
            self.wfile.write(body)

    def _page(self, status: int, page: str, title: str, body: str,
              extra: dict[str, str] | None = None) -> None:
        self._send(status, render_page(page, title, body), _HTML, extra)

    def _json(self, status: int, payload: dict[str, object]) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), _JSON)

    def _problem(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        if self.command == "POST":
            self.close_connection = True  # an unread request body must not become the next request
        self._page(status, "problem", f"Drover {status}",
                   f'<h1 id="problem">{status}</h1>\n<p id="message">{html.escape(message)}</p>',
                   extra)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by the stdlib parser (bad request line, 501 ...) look like ours."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            super().send_error(code, message, explain)
            return
        try:
            text = message or HTTPStatus(code).phrase
        except ValueError:
            text = f"status {code}"
        self._problem(code, text)

    # -- dispatch -----------------------------------------------------------------------------
    def _target(self) -> tuple[str, str] | None:
        parts = urlsplit(self.path)
        path = unquote(parts.path, errors="strict")
        if _bad_path(path) or _bad_path(unquote(path, errors="strict")):
            self._problem(HTTPStatus.BAD_REQUEST, "bad path")
            return None
        return path, parts.query

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        try:
            target = self._target()
        except UnicodeDecodeError:
            self._problem(HTTPStatus.BAD_REQUEST, "bad path encoding")
            return
        if target is None:
            return
        path, query = target
        if path == "/api/login":
            self._problem(HTTPStatus.METHOD_NOT_ALLOWED, "use POST", {"Allow": "POST"})
            return
        route = _GET_ROUTES.get(path)
        if route is not None:
            route(self, query)
            return
        if path.startswith("/status/"):
            self._status(path[len("/status/"):])
            return
        static = self.server.static.get(path)
        if static is None:
            self._problem(HTTPStatus.NOT_FOUND, "no such page")
            return
        self._send(HTTPStatus.OK, static[0], static[1])

    def do_POST(self) -> None:
        try:
            target = self._target()
        except UnicodeDecodeError:
            self._problem(HTTPStatus.BAD_REQUEST, "bad path encoding")
            return
        if target is None:
            return
        if target[0] != "/api/login":
            self._problem(HTTPStatus.METHOD_NOT_ALLOWED, "only /api/login takes POST",
                          {"Allow": "GET, HEAD"})
            return
        self._login()

    # -- dynamic routes -------------------------------------------------------------------------
    def _result(self, query: str) -> None:
        fields: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            fields.setdefault(key, value)  # first value wins, like the form's own order
        rows = []
        for name in FORM_FIELDS:
            value = fields.get(name, "")
            rows.append(f'<dt>{name}</dt><dd id="out-{name}">{html.escape(value)}</dd>')
        extra = sorted(k for k in fields if k not in FORM_FIELDS)
        for name in extra:
            rows.append(f'<dt>{html.escape(name)}</dt><dd class="out-extra">'
                        f"{html.escape(fields[name])}</dd>")
        body = (
            '<main>\n<h1 id="heading">Submitted</h1>\n'
            f'<p>Fields received: <span id="out-count">{len(fields)}</span></p>\n'
            f'<dl id="fields">\n' + "\n".join(rows) + "\n</dl>\n"
            '<p><a id="back" href="/form.html">Back to the form</a></p>\n</main>'
        )
        self._page(HTTPStatus.OK, "result", "Drover result", body)

    def _slow(self, query: str) -> None:
        delay = self.server.slow_delay
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key != "ms":
                continue
            try:
                ms = int(value)
            except ValueError:
                self._problem(HTTPStatus.BAD_REQUEST, "ms must be an integer")
                return
            if not 0 <= ms <= MAX_SLOW_S * 1000:
                self._problem(HTTPStatus.BAD_REQUEST,
                              f"ms must be within 0..{int(MAX_SLOW_S * 1000)}")
                return
            delay = ms / 1000.0
        started = time.monotonic()
        if self.server.stopping.wait(delay):
            log.debug("fixture site: /slow cut short by stop")
        waited = round((time.monotonic() - started) * 1000)
        self._page(HTTPStatus.OK, "slow", "Drover slow",
                   f'<main><h1 id="heading">Slow page</h1>\n'
                   f'<p>Answered after <span id="waited">{waited}</span> ms.</p></main>')

    def _error(self, query: str) -> None:
        self._page(HTTPStatus.INTERNAL_SERVER_ERROR, "error", "Drover error",
                   '<main><h1 id="heading">Server error</h1>\n'
                   '<p id="message">This page always fails with HTTP 500.</p></main>')

    def _status(self, text: str) -> None:
        if not (text.isascii() and text.isdigit() and len(text) == 3 and 200 <= int(text) <= 599):
            self._problem(HTTPStatus.BAD_REQUEST, "status must be 200..599")
            return
        code = int(text)
        self._page(code, "status", f"Drover status {code}",
                   f'<main><h1 id="heading">Status</h1><p id="code">{code}</p></main>')

    def _login(self) -> None:
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._problem(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return
        length = int(length_header)
        if length > MAX_BODY:
            self._problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
            return
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "error": "body must be JSON"})
            return
        user = payload.get("user") if isinstance(payload, dict) else None
        password = payload.get("password") if isinstance(payload, dict) else None
        if not isinstance(user, str) or not isinstance(password, str):
            self._json(HTTPStatus.BAD_REQUEST,
                       {"ok": False, "error": "user and password must be strings"})
            return
        expected = self.server.users.get(user)
        # Compare even for unknown users, so timing does not tell which users exist.
        matches = hmac.compare_digest((expected or "\x00unknown").encode("utf-8"),
                                      password.encode("utf-8"))
        if expected is not None and matches:
            log.debug("fixture site: login ok for %s", user)
            self._json(HTTPStatus.OK, {"ok": True, "user": user})
        else:
            log.debug("fixture site: login refused")
            self._json(HTTPStatus.UNAUTHORIZED, {"ok": False, "error": "Wrong user or password"})


_GET_ROUTES = {
    "/result": _Handler._result,
    "/slow": _Handler._slow,
    "/error": _Handler._error,
}


class FixtureSite:
    """The bundled fixture site on ``127.0.0.1`` and an ephemeral port; a context manager.

    ``users`` maps user name to password for ``/api/login`` (default
    ``{"alice": "correct horse"}``); ``slow_delay`` is ``/slow``'s delay in
    seconds when no ``ms`` is given.  ``host`` must be ``127.0.0.1``.
    """

    def __init__(self, *, users: dict[str, str] | None = None, slow_delay: float = 1.0,
                 host: str = ALLOWED_HOST) -> None:
        if host != ALLOWED_HOST:
            raise ValueError(f"the fixture site binds {ALLOWED_HOST} only, not {host!r}")
        if isinstance(slow_delay, bool) or not isinstance(slow_delay, (int, float)):
            raise TypeError("slow_delay must be a number of seconds")
        if not 0 <= slow_delay <= MAX_SLOW_S:
            raise ValueError(f"slow_delay must be within 0..{MAX_SLOW_S} s, got {slow_delay}")
        chosen = dict(DEFAULT_USERS if users is None else users)
        for name, password in chosen.items():
            if not isinstance(name, str) or not isinstance(password, str) or not name:
                raise TypeError("users must map non-empty user names (str) to passwords (str)")
        self._users = chosen
        self._slow_delay = float(slow_delay)
        self._host = host
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FixtureSite:
        """Bind, start serving in a daemon thread, and return ``self``."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("fixture site already started")
            server = _Server((self._host, 0), self._users, self._slow_delay, load_static())
            thread = threading.Thread(target=server.serve_forever,
                                      kwargs={"poll_interval": _POLL_INTERVAL_S},
                                      name=f"fixture-site-{server.server_address[1]}",
                                      daemon=True)
            thread.start()
            self._server, self._thread = server, thread
        log.debug("fixture site: serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and join every thread (bounded). Idempotent."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
        if server is None or thread is None:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_S
        server.stopping.set()
        server.shutdown()  # returns once serve_forever has left its loop
        for conn_thread, sock in server.live_connections():
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # already closed by its handler
                log.debug("fixture site: socket shutdown on stop: %r", exc)
        for conn_thread, _sock in server.live_connections():
            conn_thread.join(max(0.0, deadline - time.monotonic()))
        server.server_close()
        thread.join(max(0.0, deadline - time.monotonic()))
        stragglers = [t.name for t, _ in server.live_connections()] + (
            [thread.name] if thread.is_alive() else [])
        if stragglers:
            log.warning("fixture site: threads still alive after stop: %s", stragglers)
        log.debug("fixture site: stopped")

    def __enter__(self) -> FixtureSite:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        server = self._server
        if server is None:
            raise RuntimeError("fixture site is not started")
        return int(server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this site (``"/form.html"`` or ``"form.html"``)."""
        if "://" in path or path.startswith("//"):
            raise ValueError(f"expected a path on the fixture site, got {path!r}")
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<FixtureSite {where}>"
