"""One browser in the bench process: CDP commands per job of each flow, and the CDP round trip.

Commands per job are counted on the client (``ClientStats.commands``)
while the real :class:`~navigation.runner.FlowRunner` runs each flow once,
the way a worker does (a fresh browser context around an anonymous job, the
default context for a credential job).  They feed the per-command
ownership-guard cost into the coordination figures and are reported as is.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench._flows import FLOWS
from navigation.cdp import CDPConnection
from navigation.credentials import CredentialStore
from navigation.flow import parse_flow
from navigation.launcher import launch
from navigation.runner import FlowRunner

CONTEXT_COMMANDS = 2  # Target.createBrowserContext + disposeBrowserContext around an anonymous job


def _run_once(conn: CDPConnection, runner: FlowRunner, key: str, base_url: str, artifacts: Path) -> int:
    flow = parse_flow(FLOWS[key], source=f"bench:{key}")
    before = conn.stats.commands
    context = None
    if key != "canvas":
        context = conn.send("Target.createBrowserContext", {"disposeOnDetach": True})["browserContextId"]
    result = runner.run(flow, conn, artifacts_dir=artifacts, variables={"BASE_URL": base_url, "name": "Ada"},
                        browser_context_id=context)
    if context is not None:
        conn.send("Target.disposeBrowserContext", {"browserContextId": context})
    if not result.ok:
        raise RuntimeError(f"probe run of flow {key!r} failed: {result.error}")
    return conn.stats.commands - before


def commands_per_job(base_url: str, credentials_path: str, flows: tuple[str, ...]) -> dict[str, int]:
    """CDP commands one job of each flow sends (second run of each, so one-off set-up is not counted)."""
    runner = FlowRunner(resolve_secret=CredentialStore.load(credentials_path).resolve)
    browser = launch()
    try:
        with CDPConnection.connect(browser.ws_url) as conn, tempfile.TemporaryDirectory() as tmp:
            out = {}
            for key in flows:
                _run_once(conn, runner, key, base_url, Path(tmp))
                out[key] = _run_once(conn, runner, key, base_url, Path(tmp))
            return out
    finally:
        browser.close()


def cdp_latency_ms(rounds: int = 300) -> list[float]:
    """``Runtime.evaluate("1+1")`` round trips on a page, Drover's client, in ms (after 20 warm-up calls)."""
    browser = launch()
    try:
        with CDPConnection.connect(browser.ws_url) as conn:
            page = conn.new_page("about:blank")
            for _ in range(20):
                page.evaluate("1+1")
            out = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                page.evaluate("1+1")
                out.append((time.perf_counter() - t0) * 1000)
            page.close()
            return out
    finally:
        browser.close()


__all__ = ["commands_per_job", "cdp_latency_ms", "CONTEXT_COMMANDS"]
