"""One end-to-end benchmark run: the fixed batch through the real engine, and its figures.

A run is ``engine.execution.runs.prepare`` + ``engine.execution.runs.execute`` on a fresh state
directory — the same supervisor, forked workers, shared-memory ownership,
credential locks, SQLite results and log streams as ``python -m engine
run``.  Around it the bench measures wall time, the CPU of the whole
process tree (this process's own ``os.times`` plus ``getrusage`` of every
descendant that ended and was reaped, and a sampler walking the live tree;
both are lower bounds, the larger counts) and peak memory (sampled sum of
RSS).  After it, it reads
the run's own records:

* results store: one final outcome per job (job latency per flow),
* the performance stream: ``step_timing`` (per-phase latency: a phase's
  steps summed per attempt) and ``attempt_timing`` (``lock_wait_ms``),
* the audit stream: lock and slot records whose time gaps bracket the
  coordination operations (each gap also holds one log write: an upper
  bound, reported next to the micro-timed costs),
* the operational stream: browser launches and why (profile switches).
"""
from __future__ import annotations

import collections
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._flows import TITLES, job_flows, write_batch
from bench._sampler import TreeSampler
from bench._stats import pcts
from engine.records import rundir
from engine.records import streams as telemetry
from engine.config import Settings
from engine.execution.runs import RunRequest, execute, prepare
from engine.records.store import ResultsStore

NO_PHASE = "-"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What a run measures; two runs are comparable when everything but ``inject_delay_ms`` matches."""

    workers: int
    jobs: int
    flows: tuple[str, ...]
    inject_delay_ms: float = 0.0
    isolation: str = "context"
    backend: str = "local"

    def comparable(self) -> dict[str, Any]:
        out = {"workers": self.workers, "jobs": self.jobs, "flows": list(self.flows), "isolation": self.isolation}
        if self.backend != "local":  # baselines from before the Ray backend are local ones
            out["backend"] = self.backend
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**self.comparable(), "inject_delay_ms": self.inject_delay_ms}

    def label(self) -> str:
        text = f"{self.workers} worker(s), {self.jobs} jobs ({'+'.join(self.flows)})"
        text += f", {self.backend} backend" if self.backend != "local" else ""
        return text + (f", +{self.inject_delay_ms:g} ms injected per step" if self.inject_delay_ms else "")


@dataclass(slots=True)
class RunFigures:
    config: BenchConfig
    run_id: str
    elapsed_s: float
    passed: int
    failed: int
    retries: int
    per_worker: dict[str, dict[str, float]]
    job_ms: dict[str, list[float]]                 # flow title -> job latencies (passed jobs)
    phase_ms: dict[str, dict[str, list[float]]]    # flow title -> phase -> per-attempt totals
    attempts: int
    credential_attempts: int
    attempts_by_flow: dict[str, int]
    lock_wait_ms: list[float]
    audit_gaps_ms: dict[str, list[float]]           # claim / release / lock_release
    busy_s: float
    cpu_self_s: float
    cpu_children_s: float
    cpu_sampled_s: float
    peak_rss: int
    peak_procs: int
    launches: dict[str, int] = field(default_factory=dict)  # launch reason -> count
    load_avg: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after (context only)
    round_trips: list[tuple[int, float]] = field(default_factory=list)  # Ray: (calls, ms) to the coordinator/job
    coordinator_service: tuple[int, float] = (0, 0.0)  # Ray: calls the coordinator served, ms spent serving them
    cdp_commands: list[int] = field(default_factory=list)  # CDP commands per attempt (isolation included)

    @property
    def cdp_per_job(self) -> float:
        """Mean CDP commands per attempt (attempts whose connection was replaced are not counted)."""
        return sum(self.cdp_commands) / len(self.cdp_commands) if self.cdp_commands else 0.0

    @property
    def throughput(self) -> float:
        """Passed jobs per second of wall time (browser start-up and shutdown included)."""
        return self.passed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cpu_s(self) -> float:
        """CPU of the process tree: the larger of two lower bounds.

        ``getrusage`` misses descendants nobody waited for (orphans), the
        sampler misses each process's last interval; neither over-counts.
        """
        return max(self.cpu_self_s + self.cpu_children_s, self.cpu_sampled_s)


def _cpu_self() -> float:
    t = os.times()
    return t.user + t.system


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(config: BenchConfig, *, base_url: str, work: Path, tag: str,
             sampler_exclude: tuple[int, ...] = ()) -> RunFigures:
    """Run the batch of ``config`` once in ``work/tag`` and gather its figures."""
    folder = work / tag
    files = write_batch(folder, base_url=base_url, jobs=config.jobs, flows=config.flows,
                        inject_delay_ms=config.inject_delay_ms, tag=tag)
    settings = Settings(workers=config.workers, state_dir=str(folder / "state"), job_isolation=config.isolation,
                        backend=config.backend)
    req = RunRequest(str(files.batch), settings, credentials_path=str(files.credentials))
    prepared = prepare(req)
    sampler = TreeSampler(exclude=sampler_exclude)
    sampler.start()
    load0 = os.getloadavg()[0]
    c0, s0, t0 = _cpu_children(), _cpu_self(), time.monotonic()
    summary = execute(req, prepared)
    elapsed = time.monotonic() - t0
    c1, s1 = _cpu_children(), _cpu_self()
    tree = sampler.stop()
    flows_by_job = {f"bench-{i:04d}": TITLES[k] for i, k in enumerate(job_flows(config.jobs, config.flows))}
    job_ms: dict[str, list[float]] = collections.defaultdict(list)
    with ResultsStore(prepared.store_path) as store:
        rows = store.export_rows(prepared.run_id)
    passed = failed = 0
    for row in rows:
        if row["outcome"] == "passed":
            passed += 1
            job_ms[flows_by_job[row["job_id"]]].append(float(row["duration_ms"] or 0.0))
        else:
            failed += 1
    logs = _read_logs(prepared.run_dir)
    return RunFigures(
        config=config, run_id=prepared.run_id, elapsed_s=elapsed, passed=passed, failed=failed,
        retries=summary.retries, per_worker={k: dict(v) for k, v in summary.per_worker.items()},
        job_ms=dict(job_ms), phase_ms=logs["phase_ms"], attempts=logs["attempts"],
        credential_attempts=logs["credential_attempts"], attempts_by_flow=logs["attempts_by_flow"],
        lock_wait_ms=logs["lock_wait_ms"], audit_gaps_ms=logs["gaps"],
        busy_s=sum(w.get("busy_s", 0.0) for w in summary.per_worker.values()),
        cpu_self_s=s1 - s0, cpu_children_s=c1 - c0, cpu_sampled_s=tree.cpu_s + (s1 - s0),
        peak_rss=tree.peak_rss, peak_procs=tree.peak_procs, launches=logs["launches"],
        load_avg=(load0, os.getloadavg()[0]), round_trips=logs["round_trips"],
        coordinator_service=logs["coordinator_service"], cdp_commands=logs["cdp_commands"])


def _read_logs(run_dir: Path) -> dict[str, Any]:
    steps: dict[tuple[str, str, str], float] = collections.defaultdict(float)  # (flow, phase, cid) -> ms
    lock_wait: list[float] = []
    attempts_by_flow: dict[str, int] = collections.Counter()
    round_trips: list[tuple[int, float]] = []
    cdp_commands: list[int] = []
    for rec in telemetry.read_stream(rundir.stream_path(run_dir, "performance")):
        event = rec.get("event")
        if event == "step_timing":
            key = (str(rec.get("flow")), str(rec.get("phase") or NO_PHASE), str(rec.get("correlation_id")))
            steps[key] += float(rec.get("duration_ms") or 0.0)
        elif event == "cluster_round_trips":
            round_trips.append((int(rec.get("round_trips") or 0), float(rec.get("round_trip_ms") or 0.0)))
        elif event == "attempt_timing":
            lock_wait.append(float(rec.get("lock_wait_ms") or 0.0))
            if isinstance(rec.get("cdp_commands"), int):
                cdp_commands.append(rec["cdp_commands"])
            attempts_by_flow[str(rec.get("flow"))] += 1
    phase_ms: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for (flow, phase, _cid), ms in steps.items():
        phase_ms[flow][phase].append(ms)

    # Audit and domain records of each attempt, in time order, to bracket the coordination operations.
    by_cid: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    for stream in ("audit", "domain"):
        for rec in telemetry.read_stream(rundir.stream_path(run_dir, stream)):
            if rec.get("event") in ("lock_acquired", "slot_owned", "slot_released", "lock_released",
                                    "job_finished", "attempt_failed"):
                by_cid[str(rec.get("correlation_id"))].append((float(rec["ts"]), str(rec["event"])))
    gaps: dict[str, list[float]] = {"claim": [], "release": [], "lock_release": []}
    credential_attempts = 0
    for events in by_cid.values():
        events.sort()
        ts = {name: t for t, name in events}
        if "lock_acquired" in ts:
            credential_attempts += 1
            if "slot_owned" in ts:
                gaps["claim"].append((ts["slot_owned"] - ts["lock_acquired"]) * 1000)
            if "lock_released" in ts and "slot_released" in ts:
                gaps["lock_release"].append((ts["lock_released"] - ts["slot_released"]) * 1000)
        end = ts.get("job_finished", ts.get("attempt_failed"))
        if end is not None and "slot_released" in ts:
            gaps["release"].append((ts["slot_released"] - end) * 1000)
    launches: dict[str, int] = collections.Counter()
    service = (0, 0.0)
    for rec in telemetry.read_stream(rundir.stream_path(run_dir, "operational")):
        if rec.get("event") == "coordinator_service":
            service = (int(rec.get("calls") or 0), float(rec.get("service_ms") or 0.0))
        if rec.get("message") == "browser started":
            reason = str(rec.get("reason") or "")
            launches[reason.split(":")[0] if reason.startswith(("reconnect", "recycle")) else reason] += 1
    return {"phase_ms": {f: dict(p) for f, p in phase_ms.items()}, "lock_wait_ms": lock_wait,
            "attempts": len(lock_wait), "attempts_by_flow": dict(attempts_by_flow),
            "credential_attempts": credential_attempts, "gaps": gaps, "launches": dict(launches),
            "round_trips": round_trips, "coordinator_service": service, "cdp_commands": cdp_commands}


def pooled(runs: list[RunFigures]) -> dict[str, Any]:
    """Percentiles over every sample of every run: per flow, and per flow and phase."""
    flows: dict[str, list[float]] = collections.defaultdict(list)
    phases: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in runs:
        for flow, values in r.job_ms.items():
            flows[flow].extend(values)
        for flow, per_phase in r.phase_ms.items():
            for phase, values in per_phase.items():
                phases[flow][phase].extend(values)
    return {"per_flow": {f: pcts(v) for f, v in sorted(flows.items())},
            "per_phase": {f: {p: pcts(v) for p, v in sorted(ph.items())} for f, ph in sorted(phases.items())}}


__all__ = ["BenchConfig", "RunFigures", "run_once", "pooled", "NO_PHASE"]
