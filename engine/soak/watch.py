"""What a soak watches while it runs: per-window figures, resources, supervisor memory, safety counters.

Why a module of its own: these accumulators are what keeps a 24-hour soak
at a flat memory footprint, so their bounds are written down in one place:

* latency goes into :class:`~engine.records.metrics.Histogram` objects, one per
  ``flow:NAME``, ``phase:STEP-TYPE`` and ``label:PHASE-LABEL`` per window
  and for the whole run (a few thousand buckets at most, however many jobs);
* a closed window is appended to the run directory's windows file
  (:func:`engine.records.rundir.append_window`) and only the last
  :data:`HISTORY` windows stay in memory (the alert rules look back
  three); its per-window histograms are dropped once the window is
  evaluated, so the summary grows by a few kilobytes per window;
* resources are sampled every few seconds and only each window's maximum
  per worker is kept; supervisor memory is a series thinned by halving
  whenever it reaches :data:`MEMORY_POINTS` points.

Phases do not overlap: ``phase:`` is the step type (``click``,
``navigate`` ...), the navigation phase of the issue; a flow's own
``phase`` labels (``"phase": "Login"`` on its steps) are summed per attempt
under ``label:``, so no step is counted twice under one prefix.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil

from coordination.telemetry_context import stream_logger
from engine.soak.alerts import AlertManager
from engine.execution.executor import JobReport
from engine.records import rundir
from engine.records.metrics import Histogram
from engine.execution.supervisor import SupervisorHooks

ops = stream_logger("operational", __name__)

HISTORY = 16          # closed windows kept in memory for the alert rules (they look back 3)
MEMORY_POINTS = 240   # supervisor-memory series length before it is thinned by half
MB = 2 ** 20
_RESOURCE_KEYS = ("browser_uss_mb", "browser_rss_mb", "fds", "children")  # what _tree_figures samples


class WindowTally:
    """Accumulators for one window (and, with ``index`` -1, for the whole run); :meth:`record` closes them
    into the run directory's :class:`~engine.records.rundir.Window`."""

    def __init__(self, index: int, start: float, window_s: float = math.inf) -> None:
        self.index = index
        self.window_s = window_s
        self.start = start
        self.passed = 0
        self.failed = 0
        self.per_worker: dict[str, int] = collections.Counter()
        self.latency: dict[str, Histogram] = {}
        self.resources: dict[str, dict[str, float]] = {}
        self.queue_wait_max_s = 0.0

    def _hist(self, name: str) -> Histogram:
        h = self.latency.get(name)
        if h is None:
            h = self.latency[name] = Histogram()
        return h

    def add(self, report: JobReport, worker: str) -> None:
        if report.outcome == "passed":
            self.passed += 1
        else:
            self.failed += 1
        self.per_worker[worker] += 1
        self._hist(f"flow:{report.flow}").record(report.duration_ms)
        labels: dict[str, float] = {}
        for _key, step_type, label, ms in report.steps:
            self._hist(f"phase:{step_type}").record(ms)
            if label:
                labels[label] = labels.get(label, 0.0) + ms
        for label, ms in labels.items():
            self._hist(f"label:{label}").record(ms)

    def note_resources(self, sample: dict[str, dict[str, float]]) -> None:
        """Keep each worker's maximum of every resource figure seen in this window."""
        for worker, figures in sample.items():
            kept = self.resources.setdefault(worker, {"samples": 0})
            kept["samples"] += 1
            for key, value in figures.items():
                kept[key] = max(kept.get(key, value), value)

    def record(self, end: float, *, histograms: bool, **safety: Any) -> rundir.Window:
        """The window's figures at ``end``; ``safety``: the supervisor's figures (``supervisor_rss_mb`` .. ``mode``)."""
        span = max(1e-9, end - self.start)
        done = self.passed + self.failed
        latency = {name: rundir.LatencyStats(h.count, h.percentile(50), h.percentile(95), h.percentile(99), h.max,
                                             h.mean, h.min, h if histograms else None)
                   for name, h in sorted(self.latency.items())}
        resources = {w: rundir.WorkerResources(int(r["samples"]), *(r.get(k) for k in _RESOURCE_KEYS))
                     for w, r in sorted(self.resources.items())}
        return rundir.Window(
            index=self.index, start=self.start, end=end, jobs=rundir.JobCounts(self.passed, self.failed),
            error_rate=(self.failed / done) if done else None, throughput=done / span,
            throughput_per_worker={w: n / span for w, n in sorted(self.per_worker.items())},
            latency=latency, resources=resources, queue_wait_max_ms=self.queue_wait_max_s * 1000.0,
            partial=self.index >= 0 and span < 0.5 * self.window_s, **safety)

    def to_dict(self, end: float, extra: dict[str, Any], *, histograms: bool) -> dict[str, Any]:
        """:meth:`record` in its wire form (what the alert rules and the SLOs evaluate)."""
        return self.record(end, histograms=histograms, **extra).to_json()


# Until tests/engine/execution/test_soak_parts.py imports WindowTally: one name, one meaning after that.


def _tree_figures(root: psutil.Process) -> dict[str, float]:
    """Browser memory (USS and RSS summed over Chromium processes), open fds and child count of one worker.

    USS (memory unique to a process) is what leaks; RSS summed over a
    browser's processes counts the pages they share once per process.
    """
    kids = root.children(recursive=True)
    uss = rss = 0
    for k in kids:
        try:
            if "chrom" not in k.name():
                continue
            info = k.memory_full_info()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # a renderer exited between listing and reading
        except psutil.AccessDenied:
            ops.warning("cannot read a browser process's memory", extra={"event": "resource_denied", "pid": k.pid})
            continue
        uss += info.uss
        rss += info.rss
    return {"browser_uss_mb": uss / MB, "browser_rss_mb": rss / MB, "fds": float(root.num_fds()),
            "children": float(len(kids))}


def sample_workers(pids: Iterable[tuple[str, int]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, pid in pids:
        try:
            out[name] = _tree_figures(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue  # the worker exited this instant; the supervisor reaps and replaces it
    return out


class MemoryTrack:
    """The supervisor's RSS over the run: a bounded series, and growth measured after start-up settles."""

    def __init__(self, started: float, settle_s: float) -> None:
        self.started = started
        self.settle_s = settle_s
        self.points: list[tuple[float, float]] = []
        self._stride = 1
        self._seen = 0
        self.first_mb: float | None = None
        self.max_mb: float | None = None
        self.last_mb: float | None = None
        self._proc = psutil.Process()

    def sample(self, now: float) -> float:
        mb = self._proc.memory_info().rss / MB
        t = now - self.started
        self.last_mb = mb
        if t >= self.settle_s:
            if self.first_mb is None:
                self.first_mb = mb
            self.max_mb = mb if self.max_mb is None else max(self.max_mb, mb)
        if self._seen % self._stride == 0:
            self.points.append((round(t, 1), round(mb, 2)))
            if len(self.points) >= MEMORY_POINTS:
                self.points = self.points[::2]
                self._stride *= 2
        self._seen += 1
        return mb

    def record(self) -> rundir.SupervisorMemory:
        growth = (self.max_mb - self.first_mb) if self.first_mb is not None and self.max_mb is not None else None
        return rundir.SupervisorMemory(self.settle_s, self.first_mb, self.last_mb, self.max_mb, growth,
                                       tuple(self.points))

    def to_dict(self) -> dict[str, Any]:
        return self.record().to_json()


class SoakHooks(SupervisorHooks):
    """Folds job reports into windows, samples resources, closes windows and evaluates SLOs and alerts.

    It outlives any one supervisor: the rollback drill runs the soak as
    parallel, legacy, parallel phases, each parallel phase with its own
    supervisor (and its own shared-memory table), so the safety counters
    of a finished phase are folded into ``base`` by :meth:`on_finish`.
    """

    def __init__(self, *, window_s: float, alerts: AlertManager, run_dir: Path, started: float,
                 scheduler: Any, sample_s: float, memory: MemoryTrack,
                 on_window: Callable[["SoakHooks", Any, float], None] | None = None) -> None:
        """``on_window(hooks, sup, now)`` runs after each window is closed and written (the soak's
        ``--metrics`` file is rewritten there); ``sup`` is None in the legacy phase and at the end."""
        self.window_s = window_s
        self.on_window = on_window
        self.alerts = alerts
        self.run_dir = run_dir
        self.scheduler = scheduler
        self.sample_s = sample_s
        self.memory = memory
        self.window = WindowTally(0, started, window_s)
        self.total = WindowTally(-1, started)
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self.windows_closed = 0
        self.halted: str | None = None
        self.last_report = time.monotonic()
        self.duplicates = 0
        self.base = {"restarts": 0, "unowned_uses": 0, "invalid_transitions": 0}
        self._at_window_start = {"restarts": 0, "duplicates": 0}
        self._next_sample = 0.0
        self.mode = "parallel"

    # -- supervisor hooks (sup is None during the legacy phase) ------------------------

    def on_report(self, sup: Any, report: JobReport, worker: str, seconds: float) -> None:
        self.window.add(report, worker)
        self.total.add(report, worker)
        self.duplicates += bool(report.duplicate)
        self.last_report = time.monotonic()

    def on_tick(self, sup: Any) -> None:
        mono = time.monotonic()
        if mono >= self._next_sample:
            self._next_sample = mono + self.sample_s
            self.sample(sup)
        now = time.time()
        if now - self.window.start >= self.window_s:
            self.close_window(sup, now)

    def on_finish(self, sup: Any) -> None:
        """A parallel phase is over: sample once more and fold its counters into the run's."""
        self.sample(sup)
        current = self._counters(sup)
        self.base = {k: current[k] for k in self.base}

    # -- figures ------------------------------------------------------------------------

    def sample(self, sup: Any) -> None:
        self.memory.sample(time.time())
        if sup is not None:
            pids = [(f"w{h.index}", h.pid) for h in list(sup.workers.values())]
        else:
            pids = [("legacy", os.getpid())]
        res = sample_workers(pids)
        self.window.note_resources(res)
        self.total.note_resources(res)
        wait = self.scheduler.take_wait_max()
        self.window.queue_wait_max_s = max(self.window.queue_wait_max_s, wait)
        self.total.queue_wait_max_s = max(self.total.queue_wait_max_s, wait)

    def _counters(self, sup: Any) -> dict[str, int]:
        totals = sup.safety_totals() if sup is not None else None
        return {"restarts": self.base["restarts"] + (sup.progress.restarts if sup is not None else 0),
                "unowned_uses": self.base["unowned_uses"] + (totals.unowned_uses if totals else 0),
                "invalid_transitions": self.base["invalid_transitions"] + (totals.invalid_transitions if totals else 0),
                "duplicates": self.duplicates}

    def _safety(self, sup: Any, since: dict[str, int]) -> dict[str, Any]:
        c = self._counters(sup)
        waiting = len(self.scheduler)
        idle = (time.monotonic() - self.last_report) if (sup is not None and sup._busy() == 0 and waiting) else 0.0
        return {"supervisor_rss_mb": self.memory.last_mb, "unowned_uses": c["unowned_uses"],
                "invalid_transitions": c["invalid_transitions"], "duplicates": c["duplicates"] - since["duplicates"],
                "worker_restarts": c["restarts"] - since["restarts"], "idle_workers_s": idle, "queued": waiting,
                "mode": self.mode}

    def close_window(self, sup: Any, now: float) -> None:
        self.memory.sample(now)
        record = self.window.record(now, histograms=True, **self._safety(sup, self._at_window_start))
        w = record.to_json()
        c = self._counters(sup)
        self._at_window_start = {"restarts": c["restarts"], "duplicates": c["duplicates"]}
        fired = self.alerts.evaluate(w, list(self.history))
        # evaluated: the stats are what the evidence keeps, with the SLO results beside them
        record = dataclasses.replace(record.without_histograms(),
                                     slo=tuple(r.record() for r in self.alerts.last_results))
        self.history.append(record.to_json())
        self.windows_closed += 1
        rundir.append_window(self.run_dir, record)
        ops.info("soak window closed", extra={"event": "window", "window": record.index,
                                              "throughput": record.throughput, "error_rate": record.error_rate,
                                              "alerts": len(fired)})
        self.window = WindowTally(record.index + 1, now, self.window_s)
        if self.on_window is not None:
            self.on_window(self, sup, now)
        if self.alerts.critical and self.halted is None:
            self.halted = self.alerts.halt_reason
            ops.error("soak halted by a critical alert", extra={"event": "halt", "reason": self.halted})
            self.alerts.write_diagnostic(self.run_dir, windows=list(self.history)[-3:])
            if sup is not None:
                sup.drain_requested = True

    def finish(self, now: float) -> rundir.Window:
        """Close the open window and return the whole run's figures (with its histograms)."""
        if self.window.passed + self.window.failed:
            self.close_window(None, now)
        return self.running_total(None, now)

    def running_total(self, sup: Any, now: float) -> rundir.Window:
        """The whole run's figures so far (with its histograms; no SLO results: those are judged at the end)."""
        safety = self._safety(sup, {"restarts": 0, "duplicates": 0}) | {"mode": "run"}
        return dataclasses.replace(self.total.record(now, histograms=True, **safety), index=None)


def read_windows(run_dir: Path) -> tuple[rundir.Window, ...]:
    """The windows the soak closed, from the run directory's windows file."""
    return rundir.read_windows(run_dir)


__all__ = ["WindowTally", "SoakHooks", "MemoryTrack", "sample_workers", "read_windows", "HISTORY", "MEMORY_POINTS"]
