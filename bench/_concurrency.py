"""``python -m bench concurrency``: a latency-bound batch at one concurrency W, shaped four ways.

Why this benchmark: real batches mostly wait on the network, and there
the question is not "how fast is one browser" but "how many jobs can wait
at once, per megabyte".  The batch's flow waits on two navigations to the
fixture site's ``/slow?ms=D`` (the server answers after ``D`` ms, default
1000) around a small form, so a job is ~2 s of waiting and a little work.
The same batch runs as

* ``W x 1``   W workers, one session each (a browser per job in flight),
* ``1 x W``   one worker with W concurrent sessions on its one browser,
* ``W/2 x 2`` half the workers, two sessions each,
* ``auto``    one worker that sizes its sessions itself (``sessions_per_worker = "auto"``,
              at most W: the same ceiling as the fixed shapes),

alternating the order every round (with ``--chromium`` given twice or more, every shape on every browser,
side by side in the same rounds), and reports throughput, p50/p95 job
latency (from the results store) and the peak PSS of the whole process
tree (proportional set size: pages Chromium's processes share are counted
once, split between them; RSS would count them once per process).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench._sampler import TreeSampler
from bench._site import SiteProcess
from bench._stats import pcts
from engine.cli.console import Console
from engine.config import Settings
from engine.errors import ConfigError
from engine.execution.runs import RunRequest, execute, prepare
from engine.records.store import ResultsStore
from navigation.errors import ChromiumNotFound
from navigation.launcher import resolve_binary

# Each job's slow URL is its own (``&job=``): pages that share a browser context share its HTTP cache, and
# Chrome's cache lock serialises concurrent GETs of one URL there -- 8 sessions of a ``page``-isolated browser
# loading one ``/slow`` URL at once waited for each other until their navigations timed out.
LATENCY_FLOW: dict[str, Any] = {
    "title": "latency",
    "steps": [
        {"type": "navigate", "url": "${BASE_URL}/slow?ms=${ms}&job=${name}", "phase": "Wait"},
        {"type": "navigate", "url": "${BASE_URL}/form.html", "phase": "Open"},
        {"type": "change", "selectors": [["#name"]], "value": "${name}", "phase": "Fill"},
        {"type": "click", "selectors": [["#submit"]], "phase": "Submit",
         "assertedEvents": [{"type": "navigation", "title": "Drover result"}]},
        {"type": "navigate", "url": "${BASE_URL}/slow?ms=${ms}&job=${name}", "phase": "Wait"},
    ],
}


@dataclass(frozen=True, slots=True)
class Shape:
    """One way to reach the concurrency: ``workers`` processes x ``sessions`` each (0: auto)."""

    label: str
    workers: int
    sessions: int | str

    def settings(self, state_dir: str, isolation: str, *, bound: int = 8,
                 browser_args: tuple[str, ...] = (), binary: str = "") -> Settings:
        """``bound``: the autoscaled shape's most sessions per worker (W: the same ceiling as the others);
        ``binary``: the browser (``[browser] binary``; empty: Drover's default lookup)."""
        base = Settings(workers=self.workers, state_dir=state_dir, job_isolation=isolation,
                        browser_extra_args=browser_args, browser_binary=binary)
        if "sessions_per_worker" not in Settings.__dataclass_fields__:
            if self.sessions != 1:
                raise ConfigError("this engine has no sessions_per_worker setting")
            return base
        auto = {"autoscale_max_sessions": bound} if self.sessions == "auto" else {}
        return dataclasses.replace(base, sessions_per_worker=self.sessions, **auto)


def shapes(w: int, *, auto: bool = True) -> list[Shape]:
    out = [Shape(f"{w} x 1", w, 1), Shape(f"1 x {w}", 1, w)]
    if w >= 4 and w % 2 == 0:
        out.append(Shape(f"{w // 2} x 2", w // 2, 2))
    if auto:
        out.append(Shape("auto", 1, "auto"))
    return out


@dataclass(slots=True)
class ShapeRun:
    shape: Shape
    browser: str
    elapsed_s: float
    passed: int
    failed: int
    job_ms: list[float]
    peak_pss: int
    peak_rss: int
    cpu_s: float

    @property
    def throughput(self) -> float:
        return self.passed / self.elapsed_s if self.elapsed_s else 0.0


def write_batch(folder: Path, base_url: str, *, jobs: int, delay_ms: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latency.json").write_text(json.dumps(LATENCY_FLOW))
    batch = folder / "batch.jsonl"
    with batch.open("w") as fh:
        for i in range(jobs):
            fh.write(json.dumps({"id": f"lat-{i:03d}", "flow": "latency.json", "retries": 1,
                                 "vars": {"BASE_URL": base_url, "ms": str(delay_ms), "name": f"N{i}"}}) + "\n")
    return batch


def run_shape(shape: Shape, batch: Path, work: Path, isolation: str, exclude: tuple[int, ...], *, bound: int = 8,
              browser_args: tuple[str, ...] = (), binary: str = "") -> ShapeRun:
    folder = work / f"{shape.label.replace(' ', '')}-{time.monotonic_ns()}"
    settings = shape.settings(str(folder / "state"), isolation, bound=bound, browser_args=browser_args,
                              binary=binary)
    req = RunRequest(str(batch), settings)
    prepared = prepare(req)
    sampler = TreeSampler(interval=0.5, exclude=exclude, pss=True)
    sampler.start()
    t0 = time.monotonic()
    execute(req, prepared)
    elapsed = time.monotonic() - t0
    tree = sampler.stop()
    with ResultsStore(prepared.store_path) as store:
        rows = store.export_rows(prepared.run_id)
    ok = [r for r in rows if r["outcome"] == "passed"]
    return ShapeRun(shape, binary, elapsed, len(ok), len(rows) - len(ok), [float(r["duration_ms"] or 0) for r in ok],
                    tree.peak_pss, tree.peak_rss, tree.cpu_s)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrency", "-W", type=int, default=8, metavar="W", help="jobs in flight (default 8)")
    p.add_argument("--jobs", type=int, help="jobs per run (default 5 x W)")
    p.add_argument("--delay-ms", type=int, default=1000, help="the slow page's answer delay (default 1000)")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds (default 1)")
    p.add_argument("--isolation", default="context", choices=("context", "page", "reset"))
    p.add_argument("--no-auto", action="store_true", help="leave out the autoscaled shape")
    p.add_argument("--browser-arg", action="append", default=[], metavar="FLAG",
                   help="one more Chromium flag for every shape (repeatable), e.g. --browser-arg=--flag")
    p.add_argument("--chromium", action="append", default=[], metavar="BINARY",
                   help="the browser (a path or a command, as [browser] binary; repeatable: every shape on each, "
                        "alternating), e.g. --chromium chromium --chromium chromium-headless-shell")
    p.add_argument("--json", metavar="FILE", help="write every run's figures as JSON")


def _row(runs: list[ShapeRun]) -> dict[str, Any]:
    job_ms = [x for r in runs for x in r.job_ms]
    p = pcts(job_ms)
    return {"shape": runs[0].shape.label, "browser": runs[0].browser or "default",
            "workers": runs[0].shape.workers, "sessions": runs[0].shape.sessions,
            "jobs_per_s": [round(r.throughput, 4) for r in runs],
            "mean_jobs_per_s": round(sum(r.throughput for r in runs) / len(runs), 4),
            "p50_ms": round(p["p50"] or 0.0, 1), "p95_ms": round(p["p95"] or 0.0, 1),
            "peak_pss_mb": round(max(r.peak_pss for r in runs) / 2**20, 1),
            "peak_rss_mb": round(max(r.peak_rss for r in runs) / 2**20, 1),
            "cpu_s_per_job": round(sum(r.cpu_s for r in runs) / max(1, sum(r.passed for r in runs)), 3),
            "failed": sum(r.failed for r in runs)}


def concurrency_command(args: argparse.Namespace, console: Console) -> int:
    w = args.concurrency
    if not 2 <= w <= 32:
        console.error("--concurrency must be 2..32")
        return 2
    jobs = args.jobs or 5 * w
    plan = shapes(w, auto=not args.no_auto)
    binaries = list(dict.fromkeys(args.chromium)) or [""]
    for binary in binaries:
        if binary:
            try:
                resolve_binary(binary)
            except ChromiumNotFound as exc:
                console.error(str(exc))
                return 2
    runnable = []
    for s in plan:
        try:
            s.settings(str(Path(tempfile.gettempdir()) / "probe"), args.isolation, bound=w,
                       browser_args=tuple(args.browser_arg))
        except ConfigError as exc:
            console.warn(f"{s.label}: not run ({exc})")
            continue
        runnable.append(s)
    cells = [(s, b) for b in binaries for s in runnable]
    console.line(f"bench concurrency: W = {w}, {jobs} jobs of 2 x {args.delay_ms} ms waits + a form, "
                 f"{args.rounds} round(s), isolation {args.isolation}"
                 + (f", browsers {', '.join(binaries)}" if binaries != [""] else "")
                 + f"; load {os.getloadavg()[0]:.1f}")
    runs: dict[tuple[str, str], list[ShapeRun]] = {(s.label, b): [] for s, b in cells}
    with SiteProcess() as site, tempfile.TemporaryDirectory(prefix="drover-bench-conc-") as tmp:
        batch = write_batch(Path(tmp), site.base_url, jobs=jobs, delay_ms=args.delay_ms)
        for r in range(args.rounds):
            order = cells if r % 2 == 0 else list(reversed(cells))
            for s, b in order:
                console.status(f"round {r + 1}/{args.rounds}: {s.label}{f' on {b}' if b else ''} ...")
                runs[(s.label, b)].append(run_shape(s, batch, Path(tmp), args.isolation, (site.pid,), bound=w,
                                                    browser_args=tuple(args.browser_arg), binary=b))
        console.end_status()
    rows = [_row(v) for v in runs.values() if v]
    for browser in dict.fromkeys(r["browser"] for r in rows):
        _table([r for r in rows if r["browser"] == browser], w, console,
               title=None if binaries == [""] else f"on {browser}:")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps({"concurrency": w, "jobs": jobs, "delay_ms": args.delay_ms,
                                                  "rows": rows}, option=orjson.OPT_INDENT_2))
    return 4 if any(r["failed"] for r in rows) else 0


def _table(rows: list[dict[str, Any]], w: int, console: Console, *, title: str | None) -> None:
    """One browser's rows, each against the ``W x 1`` shape on the same browser."""
    if title:
        console.line(title)
    best = max((r["mean_jobs_per_s"] for r in rows if r["shape"] != "auto"), default=0.0)
    ref = next((r for r in rows if r["shape"] == f"{w} x 1"), None)
    console.line(f"{'shape':>8} {'jobs/s':>8} {'vs W x 1':>8} {'p50 ms':>8} {'p95 ms':>8} {'PSS MB':>8} "
                 f"{'vs W x 1':>8} {'CPU-s/job':>9} {'failed':>6}")
    for r in rows:
        tput = r["mean_jobs_per_s"] / ref["mean_jobs_per_s"] if ref and ref["mean_jobs_per_s"] else 0.0
        mem = r["peak_pss_mb"] / ref["peak_pss_mb"] if ref and ref["peak_pss_mb"] else 0.0
        console.line(f"{r['shape']:>8} {r['mean_jobs_per_s']:>8.3f} {tput:>7.2f}x {r['p50_ms']:>8.0f} "
                     f"{r['p95_ms']:>8.0f} {r['peak_pss_mb']:>8.0f} {mem:>7.0%} {r['cpu_s_per_job']:>9.2f} "
                     f"{r['failed']:>6}")
    auto = next((r for r in rows if r["shape"] == "auto"), None)
    if auto and best:
        console.line(f"auto: {auto['mean_jobs_per_s'] / best:.2f}x the best fixed shape's throughput")


__all__ = ["LATENCY_FLOW", "Shape", "shapes", "add_arguments", "concurrency_command", "write_batch"]
