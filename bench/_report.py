"""Turn repeated runs into the figures the bench reports and saves (plain JSON-able data)."""
from __future__ import annotations

import collections
import statistics
from typing import Any

from bench._coordcost import CoordinationCosts
from bench._e2e import RunFigures, pooled
from bench._flows import TITLES
from bench._probe import CONTEXT_COMMANDS
from bench._stats import Spread

MB = 1024 * 1024


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def coordination(runs: list[RunFigures], costs: CoordinationCosts | None,
                 commands: dict[str, int] | None) -> dict[str, Any]:
    """Lock waits (measured in the run) and the mechanism's cost (micro-timed x counts from the run)."""
    busy_ms = sum(r.busy_s for r in runs) * 1000
    lock_wait_ms = sum(sum(r.lock_wait_ms) for r in runs)
    attempts = sum(r.attempts for r in runs)
    cred_attempts = sum(r.credential_attempts for r in runs)
    cmds_by_title = {TITLES[k]: n for k, n in (commands or {}).items()}
    guarded_commands = sum(n * cmds_by_title.get(flow, 0) for r in runs for flow, n in r.attempts_by_flow.items())
    out: dict[str, Any] = {
        "job_time_ms": busy_ms, "attempts": attempts, "credential_attempts": cred_attempts,
        "lock_wait_ms": lock_wait_ms, "lock_wait_share": lock_wait_ms / busy_ms if busy_ms else 0.0,
        "guarded_commands": guarded_commands, "commands_per_job": dict(commands or {}),
        "audit_gap_median_ms": {k: _median([v for r in runs for v in r.audit_gaps_ms.get(k, [])])
                                for k in ("claim", "release", "lock_release")},
    }
    if costs is not None:
        mech_ms = (attempts * costs.slot_cycle_us + cred_attempts * costs.lock_cycle_us
                   + guarded_commands * costs.guard_us) / 1000
        out.update(micro_us=costs.as_dict(), mechanism_ms=mech_ms,
                   mechanism_share=mech_ms / busy_ms if busy_ms else 0.0)
        out["total_share"] = out["mechanism_share"] + out["lock_wait_share"]
    return out


def summarize(runs: list[RunFigures], costs: CoordinationCosts | None = None,
              commands: dict[str, int] | None = None) -> dict[str, Any]:
    cfg = runs[0].config
    throughput = Spread(tuple(r.throughput for r in runs))
    per_worker: dict[str, list[float]] = collections.defaultdict(list)
    for r in runs:
        for name, w in r.per_worker.items():
            per_worker[name].append(w["jobs"] / r.elapsed_s if r.elapsed_s else 0.0)
    launches: dict[str, int] = collections.Counter()
    for r in runs:
        launches.update(r.launches)
    passed = sum(r.passed for r in runs)
    return {
        "config": cfg.as_dict(),
        "runs": len(runs),
        "run_ids": [r.run_id for r in runs],
        "throughput": throughput.as_dict(),
        "throughput_per_worker": Spread(tuple(t / cfg.workers for t in throughput.values)).as_dict(),
        "per_worker": {name: Spread(tuple(v)).as_dict() for name, v in sorted(per_worker.items())},
        "elapsed_s": Spread(tuple(r.elapsed_s for r in runs)).as_dict(),
        "jobs": {"passed": passed, "failed": sum(r.failed for r in runs), "retries": sum(r.retries for r in runs)},
        "latency_ms": pooled(runs),
        "coordination": coordination(runs, costs, commands),
        "cpu": {"tree_s": Spread(tuple(r.cpu_s for r in runs)).as_dict(),
                "sampled_s": Spread(tuple(r.cpu_sampled_s for r in runs)).as_dict(),
                "rusage_s": Spread(tuple(r.cpu_self_s + r.cpu_children_s for r in runs)).as_dict(),
                "per_job_s": sum(r.cpu_s for r in runs) / passed if passed else 0.0,
                "utilisation": Spread(tuple(r.cpu_s / r.elapsed_s for r in runs if r.elapsed_s)).as_dict()},
        "memory": {"peak_rss_mb": max(r.peak_rss for r in runs) / MB,
                   "peak_rss_per_worker_mb": max(r.peak_rss for r in runs) / MB / cfg.workers,
                   "peak_processes": max(r.peak_procs for r in runs)},
        "browser_launches": dict(launches),
        "load_avg": Spread(tuple(x for r in runs for x in r.load_avg)).as_dict(),
    }


def _sp(d: dict[str, Any]) -> Spread:
    return Spread(tuple(d["values"]))


def lines(s: dict[str, Any]) -> list[str]:
    cfg = s["config"]
    out = [f"throughput: {_sp(s['throughput']).text(unit=' jobs/s')}",
           f"  per worker: {_sp(s['throughput_per_worker']).text(unit=' jobs/s')}"]
    for name, d in s["per_worker"].items():
        out.append(f"    {name}: {_sp(d).text(unit=' jobs/s')}")
    j = s["jobs"]
    out.append(f"jobs: {j['passed']} passed, {j['failed']} failed, {j['retries']} retries over {s['runs']} run(s); "
               f"wall {_sp(s['elapsed_s']).text('.1f', ' s')}")
    out.append("latency per flow (job, ms; pooled over runs):")
    for flow, p in s["latency_ms"]["per_flow"].items():
        out.append(f"  {flow:14s} n={p['n']:<4d} p50={p['p50']:8.1f} p95={p['p95']:8.1f} p99={p['p99']:8.1f}")
    out.append("latency per phase (steps of the phase summed per attempt, ms; '-' = steps with no phase):")
    for flow, phases in s["latency_ms"]["per_phase"].items():
        for phase, p in phases.items():
            out.append(f"  {flow:14s} {phase:8s} n={p['n']:<4d} p50={p['p50']:8.1f} p95={p['p95']:8.1f} "
                       f"p99={p['p99']:8.1f}")
    c = s["coordination"]
    out.append(f"coordination (job time {c['job_time_ms'] / 1000:.1f} s over {c['attempts']} attempts, "
               f"{c['credential_attempts']} with a credential lock):")
    out.append(f"  credential lock waits (measured in the run): {c['lock_wait_ms']:.1f} ms = "
               f"{100 * c['lock_wait_share']:.3f}% of job time")
    if "mechanism_ms" in c:
        m = c["micro_us"]
        out.append(f"  ownership + lock mechanism: {c['mechanism_ms']:.1f} ms = {100 * c['mechanism_share']:.3f}% "
                   f"(micro-timed here: slot claim..release {m['slot_cycle_us']:.0f} us, guard "
                   f"{m['guard_us']:.2f} us x {c['guarded_commands']} CDP commands, lock cycle "
                   f"{m['lock_cycle_us']:.0f} us; x counts from the run)")
        out.append(f"  total coordination share: {100 * c['total_share']:.3f}% of job time (target < 1%)")
    g = c["audit_gap_median_ms"]
    out.append(f"  in-run cross-check, median audit gaps (each includes one log write): lock->slot owned "
               f"{g['claim']:.3f} ms, job finished->slot released {g['release']:.3f} ms, slot->lock released "
               f"{g['lock_release']:.3f} ms")
    if c["commands_per_job"]:
        out.append("  CDP commands per job: " + ", ".join(
            f"{k}={n}" + (f" (incl. {CONTEXT_COMMANDS} for its browser context)" if k != "canvas" else "")
            for k, n in c["commands_per_job"].items()))
    cpu = s["cpu"]
    out.append(f"CPU (process tree incl. Chromium; larger of getrusage and sampling): "
               f"{_sp(cpu['tree_s']).text('.1f', ' s')}; "
               f"{cpu['per_job_s']:.2f} CPU-s per job; {_sp(cpu['utilisation']).text('.2f', ' cores busy')}")
    out.append(f"  getrusage of reaped descendants: {_sp(cpu['rusage_s']).text('.1f', ' s')}; sampled live tree every "
               f"0.25 s: {_sp(cpu['sampled_s']).text('.1f', ' s')}")
    mem = s["memory"]
    out.append(f"peak memory (sum of RSS over the tree, over-counts shared pages): {mem['peak_rss_mb']:.0f} MB, "
               f"{mem['peak_rss_per_worker_mb']:.0f} MB per worker, {mem['peak_processes']} processes")
    if s["browser_launches"]:
        total = sum(s["browser_launches"].values())
        out.append(f"browser launches: {total} for {j['passed'] + j['failed']} jobs (" + ", ".join(
            f"{why}: {n}" for why, n in sorted(s["browser_launches"].items())) + ")")
    load = _sp(s["load_avg"])
    out.append(f"machine load (1-min load average at start/end of each run, {cfg['workers']} worker(s) of ours "
               f"included): {load.low:.1f}..{load.high:.1f}")
    if cfg.get("inject_delay_ms"):
        out.append(f"note: {cfg['inject_delay_ms']:g} ms were injected after every step (deliberate slowdown)")
    return out


__all__ = ["summarize", "lines", "coordination"]
