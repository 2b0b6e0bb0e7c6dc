"""A credential's session state on a remote browser: its cookies, kept in a state file between jobs.

Why: a local worker gives each credential its own persistent profile, so
the credential's login survives from job to job in that profile.  A
remote browser has one profile that Drover does not own, so a credential
job there runs in a fresh browser context of its own (cookies of two
credentials never meet), and the context's cookies are carried from one
job to the next in a file:

* at the start of a job, :func:`restore` puts the saved cookies into the
  new context (``Storage.setCookies`` with its ``browserContextId``);
* at the end, :func:`save` reads them back (``Storage.getCookies``) and
  writes them to the credential's state file — after the run's pages
  closed, which waits for the cookie writes their scripts made
  (:func:`navigation.page.settle_cookie_writes`: Chromium applies a
  ``document.cookie = ...`` after the script has moved on).

The state file is ``STATE_DIR/credential-state/<scope>.json``: one per
credential (not per worker), mode 0600, written atomically (temporary file,
fsync, rename).  The caller holds the credential's lock around both calls,
so one credential's file has one writer at a time, and the session follows
the credential to whichever worker and endpoint runs its next job.

Kept: cookies (HTTP-only and secure ones included: session logins live
there).  Not kept: localStorage, sessionStorage, IndexedDB and caches — a
site that keeps its login only there logs in again on every job.  Cookie
values are secrets: they are never logged, only counted.
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import Any

import orjson

from coordination.telemetry_context import current, stream_logger
from navigation.cdp import CDPConnection
from navigation.errors import CredentialError

log = stream_logger("operational", __name__)

FORMAT = "drover-cookies/1"
# Storage.getCookies returns Network.Cookie; Storage.setCookies takes Network.CookieParam: these carry over.
_PARAM_FIELDS = ("name", "value", "domain", "path", "secure", "httpOnly", "sameSite", "expires", "priority",
                 "sameParty", "sourceScheme", "sourcePort", "partitionKey")


def state_path(state_dir: str, scope: str) -> str:
    """The state file of one credential scope (``scope/name`` becomes ``scope__name``)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", scope.replace("/", "__"))
    return os.path.join(state_dir, "credential-state", f"{safe}.json")


def load(path: str) -> list[dict[str, Any]]:
    """The saved cookies, or ``[]`` when the credential has none yet."""
    try:
        with open(path, "rb") as fh:
            data = orjson.loads(fh.read())
    except FileNotFoundError:
        return []
    except (OSError, orjson.JSONDecodeError) as exc:
        raise CredentialError(f"credential state {path}: cannot read: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("cookies"), list):
        raise CredentialError(f"credential state {path}: not a {FORMAT} file")
    return [c for c in data["cookies"] if isinstance(c, dict)]


def write(path: str, cookies: list[dict[str, Any]]) -> None:
    """Write atomically with mode 0600: a crash leaves the old file or the new one, never half of one."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".cookies-", suffix=".tmp")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps({"format": FORMAT, "cookies": cookies}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def to_params(cookies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``Network.Cookie`` -> ``Network.CookieParam``: a session cookie (``session``/``expires`` -1) gets no
    ``expires``, so it stays a session cookie."""
    out = []
    for cookie in cookies:
        param = {k: cookie[k] for k in _PARAM_FIELDS if k in cookie}
        if cookie.get("session") or param.get("expires", -1) in (-1, None):
            param.pop("expires", None)
        if "name" in param and "value" in param and "domain" in param:
            out.append(param)
    return out


def restore(conn: CDPConnection, context_id: str, path: str) -> int:
    """Put the credential's saved cookies into the context; how many."""
    params = to_params(load(path))
    if params:
        conn.send("Storage.setCookies", {"cookies": params, "browserContextId": context_id})
    log.info("credential cookies restored", extra={"event": "credential_state_restored", "cookies": len(params),
                                                   **current()})
    return len(params)


def save(conn: CDPConnection, context_id: str, path: str) -> int:
    """Write the context's cookies to the credential's state file; how many."""
    cookies = conn.send("Storage.getCookies", {"browserContextId": context_id}).get("cookies", [])
    write(path, [c for c in cookies if isinstance(c, dict)])
    log.info("credential cookies saved", extra={"event": "credential_state_saved", "cookies": len(cookies),
                                                **current()})
    return len(cookies)


__all__ = ["FORMAT", "state_path", "load", "write", "to_params", "restore", "save"]
