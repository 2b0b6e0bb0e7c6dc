"""Run a small demo on the bundled fixture site (no network needed).

Starts the fixture site on 127.0.0.1, launches a headless Chromium,
fills and submits the form page with real mouse and key events over our
own CDP client, checks that the result page echoes what was typed, and
prints a short summary with the timings.
"""
from __future__ import annotations

import argparse
import statistics
import time

from engine.console import Console
from navigation.cdp import CDPSession
from navigation.fixture_site import FixtureSite
from navigation.lifecycle import BrowserLifecycle

NAME = "demo"
HELP = "run a small demo flow on the bundled fixture site"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="Ada Lovelace", help="what to type into the form (default: %(default)s)")


def _load(page: CDPSession, url: str) -> None:
    page.pop_events("Page.loadEventFired")
    page.send("Page.navigate", {"url": url})
    page.wait_for_event("Page.loadEventFired", timeout=15)


def _click(page: CDPSession, selector: str) -> None:
    rect = page.evaluate(
        f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    x, y = rect
    for kind in ("mousePressed", "mouseReleased"):
        page.send("Input.dispatchMouseEvent",
                  {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})


def run(args: argparse.Namespace, console: Console) -> int:
    started = time.perf_counter()
    with FixtureSite() as site, BrowserLifecycle() as life:
        conn = life.ensure()
        browser = life.browser
        assert browser is not None
        version = conn.send("Browser.getVersion")["product"]
        page = conn.new_page()
        page.send("Page.enable")
        t0 = time.perf_counter()
        _load(page, site.url("/form.html"))
        title = page.evaluate("document.title")
        _click(page, "#name")
        page.send("Input.insertText", {"text": args.name})
        page.pop_events("Page.loadEventFired")
        _click(page, "#submit")
        page.wait_for_event("Page.loadEventFired", timeout=15)
        echoed = page.evaluate("document.querySelector('#out-name').textContent")
        flow_ms = (time.perf_counter() - t0) * 1000
        samples = []
        for _ in range(200):
            t = time.perf_counter()
            page.send("Runtime.evaluate", {"expression": "1+1"})
            samples.append((time.perf_counter() - t) * 1e6)
        ok = echoed == args.name
        console.line(f"Drover demo on {site.base_url} with {version}")
        console.line(f"  browser start-up      {browser.startup_seconds * 1000:.0f} ms")
        console.line(f"  form page title       {title!r}")
        console.line(f"  typed / echoed        {args.name!r} / {echoed!r}")
        console.line(f"  flow (load, type, submit, result) {flow_ms:.0f} ms")
        console.line(f"  CDP round trip        median {statistics.median(samples):.0f} us over 200 commands")
        console.line(f"  total                 {(time.perf_counter() - started):.2f} s")
        console.result("demo: OK" if ok else "demo: FAILED (result page did not echo the input)")
        return 0 if ok else 1
