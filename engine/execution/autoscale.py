"""How many sessions should run now: concurrency that follows the host's headroom.

In the spirit of crawlee's ``AutoscaledPool`` (its Snapshotter and
SystemStatus), written for a supervisor that already ticks: every
``interval_s`` the controller takes one :class:`HostSample` (CPU busy share
of the whole host since the last sample, available memory, the p95 of CDP
command latency the workers reported, job timeouts since the last sample)
and decides:

* **down** by ``down_ratio`` of the target (at least one) when the host is
  overloaded — the mean CPU of the last ``window`` samples above
  ``cpu_target`` (one sample is not enough: a job's start is a burst of a
  core or two for a moment), memory below ``memory_floor_mb``, command
  latency above ``latency_limit_ms``, or a job timed out — because more
  sessions would only slow every one of them;
* **up** by ``up_ratio`` of the target (at least one) when none of that
  holds, the last ``settle`` samples were all healthy (one good sample
  after a bad one is not headroom) and the current target is in use (the
  run has waiting jobs for it; growing a target nobody fills only hides
  the next overload);
* otherwise **hold**.

**Slow start** (TCP's name for it): until the host was first overloaded,
one healthy look in use is enough for a step up, so a run reaches eight
sessions from one in four looks instead of eight.  A short batch is
mostly its climb: on the latency bench on the headless shell, 40 jobs end
in ~15 s, and the settled climb alone held ``auto`` at 0.75x the best fixed
shape (0.89x on 120 jobs).  Once an overload was seen, every step up waits
for ``settle`` healthy looks again.  Measured in one process, slow start on
and off alternating (``auto``, 40 jobs, 2 cores): Chromium +5% jobs/s on the
latency bench, -3% on the same batch without waits (6 rounds, noisy); the
headless shell +12% and +13% (4 rounds).

Why a CPU target of 0.95 (crawlee's ``maxUsedCpuRatio`` too): the jobs
this is for wait on the network, so a host at 85% still turns more
sessions into more finished jobs.  Measured on the latency-bound bench
(40 jobs, two 1-s waits each, 2 cores, alternating, 2 rounds): 0.85 held
3-6 sessions and reached 0.92x the throughput of a fixed 8; 0.95 held
6-8 and reached 0.98x.

Bounded by ``min_sessions``..``max_sessions``.  The steps are
proportional, so a run starting at one session per worker reaches eight
in four steps, and an overload sheds a quarter of the load at once
rather than one session per look.  Every change is a
:class:`Change` with its reason, logged on the operational stream by the
caller and kept in :attr:`Autoscaler.history` for the run summary.
Scaling down never cuts a job: the caller stops handing jobs to the
sessions above the target and lets their jobs finish (a drain).

Why hand-written: there is no maintained Python library for adaptive
concurrency of threads driven by host metrics (crawlee's pool is
asyncio-bound and a framework of its own); the rule fits in a page.
"""
from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import psutil

from engine.errors import ConfigError


MAX_TOTAL = 64 * 32  # workers x sessions per worker, at most


@dataclass(frozen=True, slots=True)
class AutoscaleSettings:
    """Bounds and thresholds of the controller (defaults: a shared machine, headless Chromium)."""

    min_sessions: int = 1
    max_sessions: int = 16
    start: int = 1
    cpu_target: float = 0.95        # busy share of all cores above which the host counts as overloaded
    memory_floor_mb: int = 512      # free memory below which it does
    latency_limit_ms: float = 2000.0  # p95 CDP command latency above which it does
    interval_s: float = 1.0
    settle: int = 2                 # healthy samples in a row before a step up
    window: int = 4                 # CPU is judged on the mean of this many samples
    up_ratio: float = 0.5           # a step up adds this share of the target (at least one session)
    slow_start: bool = True         # before the first overload, one healthy look is enough for a step up
    down_ratio: float = 0.25        # a step down removes this share (at least one)

    def __post_init__(self) -> None:
        if not 1 <= self.min_sessions <= self.max_sessions <= MAX_TOTAL:
            raise ConfigError(f"autoscale bounds must satisfy 1 <= min <= max <= {MAX_TOTAL}, got "
                              f"{self.min_sessions}..{self.max_sessions}")
        if not self.min_sessions <= self.start <= self.max_sessions:
            raise ConfigError(f"autoscale start {self.start} is outside {self.min_sessions}..{self.max_sessions}")
        if not 0 < self.cpu_target <= 1:
            raise ConfigError(f"autoscale cpu_target must be in (0, 1], got {self.cpu_target}")
        if self.interval_s <= 0 or self.settle < 1 or self.window < 1 or not 0 < self.up_ratio <= 4 or not 0 < self.down_ratio < 1:
            raise ConfigError("autoscale interval_s > 0, settle >= 1, up_ratio in (0, 4] and down_ratio in (0, 1) "
                              "are required")

    def step_up(self, target: int) -> int:
        return min(self.max_sessions, target + max(1, math.ceil(target * self.up_ratio)))

    def step_down(self, target: int) -> int:
        return max(self.min_sessions, target - max(1, math.ceil(target * self.down_ratio)))


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
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (at, target): first sample, every change
    memory_short: bool = False      # the last look found free memory below the floor
    _healthy_run: int = 0
    _overloaded: bool = False       # an overload was seen: slow start is over
    _cpu: collections.deque = field(default_factory=collections.deque)  # the last `window` CPU readings

    def __post_init__(self) -> None:
        if not self.target:
            self.target = self.settings.start

    def cpu_mean(self) -> float:
        return sum(self._cpu) / len(self._cpu) if self._cpu else 0.0

    def overload(self, s: HostSample) -> str | None:
        """Why the host is overloaded, or None.  CPU counts as the mean of a full window of looks: a job's
        start is a burst of a core or two for a moment, which is not a host without headroom."""
        cfg = self.settings
        if s.timeouts:
            return f"{s.timeouts} job(s) timed out"
        if len(self._cpu) >= cfg.window and self.cpu_mean() > cfg.cpu_target:
            return f"CPU {self.cpu_mean():.0%} > {cfg.cpu_target:.0%} (mean of {len(self._cpu)} looks)"
        if s.available_mb < cfg.memory_floor_mb:
            return f"free memory {s.available_mb:.0f} MB < {cfg.memory_floor_mb} MB"
        if s.command_p95_ms is not None and s.command_p95_ms > cfg.latency_limit_ms:
            return f"CDP command p95 {s.command_p95_ms:.0f} ms > {cfg.latency_limit_ms:.0f} ms"
        return None

    def observe(self, s: HostSample) -> Change | None:
        """Take one sample; return the change of target it caused, if any."""
        cfg = self.settings
        if not self.timeline:  # a step function: the target at the first look, then every change
            self.timeline.append((s.at, self.target))
        self.memory_short = s.available_mb < cfg.memory_floor_mb
        self._cpu.append(s.cpu_busy)
        while len(self._cpu) > cfg.window:
            self._cpu.popleft()
        why = self.overload(s)
        change = None
        if why is not None:
            self._healthy_run = 0
            self._overloaded = True
            self._cpu.clear()  # the next step down needs a window of its own, at the new target
            new = cfg.step_down(self.target)
            if new != self.target:
                change = Change(s.at, self.target, new, f"down: {why}")
        elif s.cpu_busy > cfg.cpu_target or self.cpu_mean() > cfg.cpu_target:  # busy, not for a window: hold
            self._healthy_run = 0
        else:
            self._healthy_run += 1
            used = s.in_use >= self.target or s.waiting > 0
            settle = 1 if cfg.slow_start and not self._overloaded else cfg.settle
            if self._healthy_run >= settle and used and self.target < cfg.max_sessions:
                new = cfg.step_up(self.target)
                change = Change(s.at, self.target, new,
                                f"up: CPU {self.cpu_mean():.0%} <= {cfg.cpu_target:.0%}, {s.available_mb:.0f} MB free, "
                                f"{s.in_use} in use, {s.waiting} waiting")
                self._healthy_run = 0
        if change is not None:
            self.target = change.new
            self.history.append(change)
        if change is not None:
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


class ConcurrencyGate:
    """The supervisor's side of ``sessions_per_worker = "auto"``: how many sessions may run a job now.

    Every worker runs its maximum of session threads; the gate admits a
    free session to a job only while fewer than :attr:`target` run one, and
    keeps the others *parked* (keyed ``(worker, session)``) until the target
    rises or a running session dies.  A parked session is never cut: scaling
    down means the sessions that finish above the target are not given
    another job.
    """

    def __init__(self, settings: AutoscaleSettings, *, meter: HostMeter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.scaler = Autoscaler(settings)
        self.meter = meter or HostMeter()
        self._clock = clock
        self._next_look = clock() + settings.interval_s
        self._timeouts = 0
        self.started_at = time.time()
        self.parked: dict[tuple[int, int], object] = {}

    @property
    def target(self) -> int:
        return self.scaler.target

    def admits(self, busy: int) -> bool:
        return busy < self.scaler.target

    def park(self, key: tuple[int, int], handle: object) -> bool:
        """Park a free session.  True when the caller should tell it to give back its warm page: the first
        time it is parked while memory is short (an idle page costs no CPU, and making one again costs a
        renderer's start, so a parked session keeps it otherwise)."""
        new = key not in self.parked
        self.parked[key] = handle
        return new and self.scaler.memory_short

    def job_finished(self, category: str | None) -> None:
        """Count a finished job: a timeout is a sign of overload the next look acts on."""
        self._timeouts += category == "timeout"

    def tick(self, *, busy: int, waiting: int) -> Change | None:
        """Look at the host once per interval; the change of target it caused, if any."""
        now = self._clock()
        if now < self._next_look:
            return None
        self._next_look = now + self.scaler.settings.interval_s
        sample = self.meter.sample(timeouts=self._timeouts, in_use=busy, waiting=waiting)
        self._timeouts = 0
        return self.scaler.observe(sample)

    def unpark(self, busy: int, alive: Callable[[tuple[int, int], object], bool],
               load: Callable[[object], int]) -> list[tuple[tuple[int, int], object]]:
        """The parked sessions to offer a job now (room under the target), least-loaded workers first;
        sessions of workers that are gone are forgotten."""
        for key in [k for k, h in self.parked.items() if not alive(k, h)]:
            del self.parked[key]
        room = self.scaler.target - busy
        if room <= 0 or not self.parked:
            return []
        chosen = sorted(self.parked.items(), key=lambda kh: (load(kh[1]), kh[0]))[:room]
        for key, _ in chosen:
            del self.parked[key]
        return chosen

    def summary(self) -> dict[str, object]:
        """The autoscaler's summary with its times as seconds since the run started."""
        out = self.scaler.summary()
        t0 = self.started_at
        out["changes"] = [{**c, "at": round(float(c["at"]) - t0, 2)} for c in out["changes"]]  # type: ignore
        out["timeline"] = [[round(a - t0, 2), t] for a, t in out["timeline"]]  # type: ignore
        return out


__all__ = ["AutoscaleSettings", "Autoscaler", "Change", "ConcurrencyGate", "HostMeter", "HostSample"]
