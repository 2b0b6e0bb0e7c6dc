"""Pre-flight checks: is this machine ready to run a batch?

Each check prints one line; the exit code names the first check that
failed (see HEALTH_CODES), so a cron wrapper can tell a missing browser
from a read-only state directory without parsing text.  With remote
browsers (``[browser] endpoints``, ``--cdp-endpoint``) the local Chromium
checks give way to ``cdp-endpoints``: every endpoint is probed and shown
(redacted) with its browser version, and one that is down fails the check.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from typing import Callable

from coordination.errors import DroverError
from engine.cli.console import Console
from engine.cli.commands.run import add_endpoint_argument, endpoint_override
from engine.config import load_settings
from engine.execution.assembly import lifecycle_settings
from navigation.cdp import CDPConnection
from navigation.endpoints import parse_endpoint
from navigation.errors import BrowserUnavailable
from navigation.launcher import find_chromium, is_headless_shell, launch
from navigation.lifecycle import probe
from navigation.remote import probe_endpoint

NAME = "health"
HELP = "pre-flight checks: Chromium (or the remote endpoints), CDP, state directory, credential store"

HEALTH_CODES = {
    "chromium-found": 10,
    "chromium-answering": 11,
    "cdp-evaluate": 12,
    "state-dir-writable": 13,
    "credentials-private": 14,
    "cdp-endpoints": 15,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=None,
                   help="where runs, results and logs are written (default: DROVER_STATE_DIR, the settings file, "
                        "drover-state)")
    p.add_argument("--credentials", default=None,
                   help="credential store file to check (default: DROVER_CREDENTIALS, the settings file; optional)")
    p.add_argument("--config", default=None, help="settings file (TOML)")
    add_endpoint_argument(p)


def run(args: argparse.Namespace, console: Console) -> int:
    """The same settings a run would use: the state directory, the credential store and the browser's flags."""
    s = load_settings(args.config, overrides={"state_dir": args.state_dir, "credentials": args.credentials,
                                              "browser_endpoints": endpoint_override(args)}).settings
    args.state_dir, args.credentials = s.state_dir, s.credentials or None
    launch_settings = lifecycle_settings(s).launch
    state: dict[str, object] = {}

    def chromium_found() -> str:
        state["binary"] = binary = find_chromium(binary=s.browser_binary)
        return f"{binary} (the headless shell, with site isolation on)" if is_headless_shell(binary) else binary

    def chromium_answering() -> str:
        browser = launch(dataclasses.replace(launch_settings, binary=str(state["binary"])))
        state["browser"] = browser
        info = probe(browser.http_url)
        return f"{info.get('Browser', '?')} on 127.0.0.1:{browser.port}, started in {browser.startup_seconds:.2f}s"

    def cdp_evaluate() -> str:
        browser = state["browser"]
        started = time.perf_counter()
        with CDPConnection.connect(browser.ws_url) as conn:  # type: ignore[attr-defined]
            page = conn.new_page()
            value = page.evaluate("6 * 7")
            page.close()
        if value != 42:
            raise RuntimeError(f"Runtime.evaluate('6 * 7') returned {value!r}")
        return f"Runtime.evaluate ok in {(time.perf_counter() - started) * 1000:.1f} ms"

    def state_dir_writable() -> str:
        os.makedirs(args.state_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=args.state_dir, prefix=".health-") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
        return os.path.abspath(args.state_dir)

    def credentials_private() -> str:
        if not args.credentials:
            return "no credential store configured (skipped)"
        st = os.stat(args.credentials)
        if st.st_mode & 0o077:
            raise PermissionError(f"{args.credentials} is readable by others (mode {st.st_mode & 0o777:o}); "
                                  f"run: chmod 600 {args.credentials}")
        with open(args.credentials, "rb") as fh:
            fh.read(1)
        return f"{args.credentials} readable, mode {st.st_mode & 0o777:o}"

    def cdp_endpoints() -> str:
        """Every remote browser (``[browser] endpoints``): one line each, redacted URL, version, ok or down."""
        down = 0
        for url in s.browser_endpoints:
            endpoint = parse_endpoint(url)
            try:
                info = probe_endpoint(endpoint, timeout=5.0)
            except BrowserUnavailable as exc:
                down += 1
                console.result(f"     {exc}")
                continue
            console.result(f"     endpoint {endpoint.redacted} ok: {info.get('Browser', '?')}")
        if down:
            raise BrowserUnavailable(f"{down} of {len(s.browser_endpoints)} endpoint(s) down")
        return f"{len(s.browser_endpoints)} endpoint(s) up"

    # with remote browsers, no local Chromium is needed: the endpoints are checked instead
    browser_checks: list[tuple[str, Callable[[], str]]] = [("cdp-endpoints", cdp_endpoints)] if s.browser_endpoints \
        else [("chromium-found", chromium_found), ("chromium-answering", chromium_answering),
              ("cdp-evaluate", cdp_evaluate)]
    checks: list[tuple[str, Callable[[], str]]] = [
        *browser_checks,
        ("state-dir-writable", state_dir_writable),
        ("credentials-private", credentials_private),
    ]
    failed: str | None = None
    try:
        for name, check in checks:
            if failed is not None and name in ("chromium-answering", "cdp-evaluate"):
                console.result(f"SKIP {name}: an earlier check failed")
                continue
            try:
                detail = check()
            except (DroverError, OSError, RuntimeError) as exc:
                console.result(f"FAIL {name}: {exc}")
                failed = failed or name
                continue
            console.result(f"ok   {name}: {detail}")
    finally:
        browser = state.get("browser")
        if browser is not None:
            browser.close()  # type: ignore[attr-defined]
    return HEALTH_CODES[failed] if failed else 0
