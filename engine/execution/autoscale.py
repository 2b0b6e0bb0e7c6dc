"""How many sessions should run now: concurrency that follows the host's headroom.

In the spirit of crawlee's ``AutoscaledPool`` (its Snapshotter and
SystemStatus), written for a supervisor that already ticks: every
``interval_s`` the controller takes one :class:`HostSample` (CPU busy share
of the whole host since the last sample, available memory, the p95 of CDP
command latency the workers reported, job timeouts since the last sample)
and decides:

* **down** by ``step_down`` when the host is overloaded — CPU above
  ``cpu_target``, memory below ``memory_floor_mb``, command latency above
  ``latency_limit_ms``, or a job timed out — because more sessions would
  only slow every one of them;
* **up** by ``step_up`` when none of that holds, the last ``settle``
  samples were all healthy (one good sample after a bad one is not
  headroom) and the current target is in use (the run has waiting jobs for
  it; growing a target nobody fills only hides the next overload);
* otherwise **hold**.

Bounded by ``min_sessions``..``max_sessions``.  Every change is a
:class:`Change` with its reason, logged on the operational stream by the
caller and kept in :attr:`Autoscaler.history` for the run summary.
Scaling down never cuts a job: the caller stops handing jobs to the
sessions above the target and lets their jobs finish (a drain).

Why hand-written: there is no maintained Python library for adaptive
concurrency of threads driven by host metrics (crawlee's pool is
asyncio-bound and a framework of its own); the rule fits in a page.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import psutil

from engine.errors import ConfigError


@dataclass(frozen=True, slots=True)
class AutoscaleSettings:
    """Bounds and thresholds of the controller (defaults: a shared machine, headless Chromium)."""

    min_sessions: int = 1
    max_sessions: int = 16
    start: int = 2
    cpu_target: float = 0.85        # busy share of all cores above which the host counts as overloaded
    memory_floor_mb: int = 512      # free memory below which it does
    latency_limit_ms: float = 2000.0  # p95 CDP command latency above which it does
    interval_s: float = 1.0
    settle: int = 2                 # healthy samples in a row before a step up
    step_up: int = 1
    step_down: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_sessions <= self.max_sessions <= 64:
            raise ConfigError(f"autoscale bounds must satisfy 1 <= min <= max <= 64, got "
                              f"{self.min_sessions}..{self.max_sessions}")
        if not self.min_sessions <= self.start <= self.max_sessions:
            raise ConfigError(f"autoscale start {self.start} is outside {self.min_sessions}..{self.max_sessions}")
        if not 0 < self.cpu_target <= 1:
            raise ConfigError(f"autoscale cpu_target must be in (0, 1], got {self.cpu_target}")
        if self.interval_s <= 0 or self.settle < 1 or self.step_up < 1 or self.step_down < 1:
            raise ConfigError("autoscale interval_s > 0, settle >= 1 and steps >= 1 are required")


@dataclass(frozen=True, slots=True)
class HostSample:
    """One look at the host: what the controller decides on."""

    at: float                       # time.time()
    cpu_busy: float                 # 0..1, all cores, since the previous sample
    available_mb: float
    command_p95_ms: float | None = None  # CDP command latency the workers saw (None: not reported)
    timeouts: int = 0               # jobs that timed out since the previous sample
    in_use: int = 0                 # sessions running a job right now
    waiting: int = 0                # jobs queued that a free session could take


@dataclass(frozen=True, slots=True)
class Change:
    """One decision that moved the target, with the sample that caused it."""

    at: float
    old: int
    new: int
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"at": round(self.at, 3), "from": self.old, "to": self.new, "reason": self.reason}


@dataclass(slots=True)
class Autoscaler:
    settings: AutoscaleSettings = field(default_factory=AutoscaleSettings)
    target: int = 0
    history: list[Change] = field(default_factory=list)
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (at, target) at every sample
    _healthy_run: int = 0

    def __post_init__(self) -> None:
        if not self.target:
            self.target = self.settings.start

    def overload(self, s: HostSample) -> str | None:
        """Why the host is overloaded, or None."""
        cfg = self.settings
        if s.timeouts:
            return f"{s.timeouts} job(s) timed out"
        if s.cpu_busy > cfg.cpu_target:
            return f"CPU {s.cpu_busy:.0%} > {cfg.cpu_target:.0%}"
        if s.available_mb < cfg.memory_floor_mb:
            return f"free memory {s.available_mb:.0f} MB < {cfg.memory_floor_mb} MB"
        if s.command_p95_ms is not None and s.command_p95_ms > cfg.latency_limit_ms:
            return f"CDP command p95 {s.command_p95_ms:.0f} ms > {cfg.latency_limit_ms:.0f} ms"
        return None

    def observe(self, s: HostSample) -> Change | None:
        """Take one sample; return the change of target it caused, if any."""
        cfg = self.settings
        why = self.overload(s)
        change = None
        if why is not None:
            self._healthy_run = 0
            new = max(cfg.min_sessions, self.target - cfg.step_down)
            if new != self.target:
                change = Change(s.at, self.target, new, f"down: {why}")
        else:
            self._healthy_run += 1
            used = s.in_use >= self.target or s.waiting > 0
            if self._healthy_run >= cfg.settle and used and self.target < cfg.max_sessions:
                new = min(cfg.max_sessions, self.target + cfg.step_up)
                change = Change(s.at, self.target, new,
                                f"up: CPU {s.cpu_busy:.0%} <= {cfg.cpu_target:.0%}, {s.available_mb:.0f} MB free, "
                                f"{s.in_use} in use, {s.waiting} waiting")
                self._healthy_run = 0
        if change is not None:
            self.target = change.new
            self.history.append(change)
        self.timeline.append((s.at, self.target))
        return change

    def summary(self) -> dict[str, object]:
        """For the run summary: bounds, final and peak target, every change, the target over time."""
        return {"min": self.settings.min_sessions, "max": self.settings.max_sessions, "final": self.target,
                "peak": max((t for _, t in self.timeline), default=self.target),
                "changes": [c.to_json() for c in self.history],
                "timeline": [[round(a, 3), t] for a, t in self.timeline]}


class HostMeter:
    """CPU busy share since the previous call and free memory, from psutil (whole host, all cores)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        psutil.cpu_percent(interval=None)  # primes the counter: the first real reading covers [now, next call]

    def sample(self, *, command_p95_ms: float | None = None, timeouts: int = 0, in_use: int = 0,
               waiting: int = 0) -> HostSample:
        return HostSample(at=self._clock(), cpu_busy=psutil.cpu_percent(interval=None) / 100.0,
                          available_mb=psutil.virtual_memory().available / 2**20,
                          command_p95_ms=command_p95_ms, timeouts=timeouts, in_use=in_use, waiting=waiting)


__all__ = ["AutoscaleSettings", "Autoscaler", "Change", "HostMeter", "HostSample"]
