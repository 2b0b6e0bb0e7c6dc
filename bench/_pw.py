"""The bench flows through Playwright for Python (sync API), for the peer comparison.

Only imported where Playwright is installed (it is an optional extra:
``pip install playwright``; never ``playwright install`` — browsers come
from the system, through ``executable_path``).

:func:`replay` interprets the same Recorder JSON the engine runs, the way a
Playwright user would write it: ``page.goto`` for navigate, locators with
auto-waiting for clicks, typing one key at a time into text fields
(``press_sequentially``, as the Recorder semantics require),
``select_option`` for a ``<select>``, ``wait_for_function`` for expressions,
``context.grant_permissions`` + the clipboard API for ``clip``.  Selectors:
the step's first alternative, ``aria/NAME[role="R"]`` as
``get_by_role(R, name=NAME)``, ``aria/NAME`` as ``get_by_label(NAME)``,
anything else as CSS.  Isolation mirrors the engine's ``job_isolation``:
``context`` (and ``reset``, whose guarantee is a fresh context's), a fresh
``browser.new_context()`` per job; ``page``, one context per worker and a new page per job.

:func:`pool_run` is the process pool: one forked process per worker, each
with its own Playwright driver and one browser, taking job numbers from a
shared queue (so, like the engine's FIFO scheduler, a free worker takes
the next job).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import re
import time
import urllib.parse
from typing import Any

from bench._flows import FLOWS, SECRET_VALUE, TITLES, job_flows

_ARIA_ROLE = re.compile(r'^(?P<name>.*)\[role="(?P<role>[^"]+)"\]$')
_VAR = re.compile(r"\$\{(\w+)\}")


def _text(value: str, variables: dict[str, str]) -> str:
    return _VAR.sub(lambda m: variables[m.group(1)], value)


def _locate(page: Any, step: dict[str, Any]) -> Any:
    sel = step["selectors"][0]
    sel = sel[0] if isinstance(sel, list) else sel
    if sel.startswith("aria/"):
        aria = sel[len("aria/"):]
        m = _ARIA_ROLE.match(aria)
        if m:
            return page.get_by_role(m.group("role"), name=m.group("name"), exact=True)
        return page.get_by_label(aria, exact=True)
    return page.locator(sel)


def _expect_title(page: Any, step: dict[str, Any]) -> None:
    for event in step.get("assertedEvents", ()):
        if event.get("type") == "navigation" and event.get("title") is not None:
            title = page.title()
            if title != event["title"]:
                raise AssertionError(f"title {title!r}, expected {event['title']!r}")


def replay(context: Any, page: Any, flow: dict[str, Any], variables: dict[str, str]) -> None:
    for step in flow["steps"]:
        kind = step["type"]
        navigation = any(e.get("type") == "navigation" for e in step.get("assertedEvents", ()))
        if kind == "setViewport":
            page.set_viewport_size({"width": step["width"], "height": step["height"]})
        elif kind == "navigate":
            page.goto(_text(step["url"], variables))
            _expect_title(page, step)
        elif kind == "change":
            loc = _locate(page, step)
            value = _text(step["value"], variables)
            if loc.evaluate("e => e.tagName") == "SELECT":
                loc.select_option(value)
            else:
                loc.fill("")
                loc.press_sequentially(value)
        elif kind == "click":
            loc = _locate(page, step)
            kwargs = {"position": {"x": step["offsetX"], "y": step["offsetY"]}} if "offsetX" in step else {}
            if navigation:
                with page.expect_navigation():
                    loc.click(**kwargs)
                _expect_title(page, step)
            else:
                loc.click(**kwargs)
        elif kind == "keyDown":
            page.keyboard.down(step["key"])
        elif kind == "keyUp":
            page.keyboard.up(step["key"])
        elif kind == "clip":
            parts = urllib.parse.urlsplit(page.url)
            context.grant_permissions(["clipboard-read", "clipboard-write"],
                                      origin=f"{parts.scheme}://{parts.netloc}")
            ok = page.evaluate("async v => { await navigator.clipboard.writeText(v);"
                               " return (await navigator.clipboard.readText()) === v; }", SECRET_VALUE)
            if ok is not True:
                raise AssertionError("clipboard did not take the value")
        elif kind == "waitForElement":
            _locate(page, step).first.wait_for(state="visible")
        elif kind == "waitForExpression":
            page.wait_for_function(_text(step["expression"], variables))
        else:
            raise NotImplementedError(f"the Playwright peer does not replay {kind!r} steps")


_SEND = "SEND \u25ba ".encode()  # the driver's pw:protocol debug line for a command sent to the browser


def _sent(log_path: str | None) -> int:
    """Commands the driver has sent to Chromium so far (lines of its ``pw:protocol`` log)."""
    if log_path is None:
        return 0
    with open(log_path, "rb") as f:
        return f.read().count(_SEND)


def _log_protocol(log_path: str) -> None:
    """Make this process's Playwright driver log every CDP message to ``log_path``.

    Why stderr and not ``DEBUG_FILE``: the driver writes that file through an
    asynchronous stream, so a job's last commands could land after the job;
    Node writes to a file on stderr synchronously, before the command goes out.
    """
    os.environ["DEBUG"] = "pw:protocol"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 2)
    os.close(fd)


def _worker(executable: str, base_url: str, keys: list[str], isolation: str, queue: Any, results: Any,
            protocol_log: str | None = None) -> None:
    from playwright.sync_api import Error as PlaywrightError, sync_playwright

    if protocol_log is not None:
        _log_protocol(protocol_log)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True)
        shared = browser.new_context() if isolation == "page" else None
        try:
            while True:
                i = queue.get()
                if i is None:
                    break
                key = keys[i]
                sent0 = _sent(protocol_log)
                t0 = time.monotonic()
                error = None
                context = shared or browser.new_context()
                page = None
                try:
                    context.set_default_timeout(30_000)
                    page = context.new_page()
                    replay(context, page, FLOWS[key], {"BASE_URL": base_url, "name": f"Ada {i}"})
                except (PlaywrightError, AssertionError, NotImplementedError) as exc:
                    error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                finally:
                    if context is shared:
                        if page is not None:
                            page.close()
                    else:
                        context.close()
                ms = (time.monotonic() - t0) * 1000
                results.put((i, TITLES[key], ms, error, _sent(protocol_log) - sent0 if protocol_log else None))
        finally:
            browser.close()


def pool_run(executable: str, base_url: str, workers: int, jobs: int, flows: tuple[str, ...],
             isolation: str = "context", protocol_dir: str | None = None) -> dict[str, Any]:
    """Run the batch on ``workers`` processes; wall time includes start-up and shutdown (as for the engine).

    ``isolation`` mirrors the engine setting: ``context``, a fresh browser
    context per job; ``page``, one context per worker and a new page per job.
    ``protocol_dir``: count the CDP commands each job's driver sent to Chromium
    (``protocol_commands``), from the driver's protocol log in that folder.
    The log slows the driver down: a counting run is not a timed one.
    """
    ctx = mp.get_context("fork")
    keys = job_flows(jobs, flows)
    queue, results = ctx.Queue(), ctx.Queue()
    t0 = time.monotonic()
    procs = [ctx.Process(target=_worker, args=(executable, base_url, keys, isolation, queue, results,
                                               os.path.join(protocol_dir, f"w{n}.log") if protocol_dir else None),
                         name=f"pw-w{n}")
             for n in range(workers)]
    for p in procs:
        p.start()
    for i in range(jobs):
        queue.put(i)
    for _ in procs:
        queue.put(None)
    out: list[tuple[int, str, float, str | None, int | None]] = []
    while len(out) < jobs:
        try:
            out.append(results.get(timeout=1.0))
        except queue_mod.Empty:
            if not any(p.is_alive() for p in procs):
                break  # every worker is gone (a launch failed): the missing jobs count as failed below
    for p in procs:
        p.join(60)
    elapsed = time.monotonic() - t0
    errors = [e for _i, _t, _ms, e, _n in out if e]
    errors += [f"worker died before running it (exit codes {[p.exitcode for p in procs]})"] * (jobs - len(out))
    return {"elapsed_s": elapsed, "passed": jobs - len(errors), "failed": len(errors), "errors": errors[:5],
            "job_ms": [(title, ms) for _i, title, ms, e, _n in out if not e],
            "protocol_commands": [n for *_rest, e, n in out if n is not None and not e],
            "exit_codes": [p.exitcode for p in procs]}


def _latency(executable: str, rounds: int, results: Any) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True)
        page = browser.new_page()
        for _ in range(20):
            page.evaluate("1+1")
        out = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            page.evaluate("1+1")
            out.append((time.perf_counter() - t0) * 1000)
        browser.close()
    results.put(out)


def latency_ms(executable: str, rounds: int) -> list[float]:
    """``page.evaluate("1+1")`` round trips in a fresh process (the bench process never starts Playwright)."""
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    p = ctx.Process(target=_latency, args=(executable, rounds, results), name="pw-latency")
    p.start()
    out = results.get(timeout=300)
    p.join(60)
    return out


__all__ = ["replay", "pool_run", "latency_ms"]
