"""End-of-run figures: outcomes, latency percentiles per flow, throughput, contention, telemetry loss."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from engine.execution.executor import JobReport
from engine.records.metrics import Histogram


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (``q`` in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(slots=True)
class RunSummary:
    run_id: str
    status: str
    mode: str
    workers: int
    elapsed_s: float
    outcomes: dict[str, int]
    retries: int
    per_flow: dict[str, dict[str, float]]
    per_worker: dict[str, dict[str, float]]
    throughput: float
    restarts: int = 0
    lost_attempts: int = 0
    reclaimed_slots: int = 0
    duplicates: int = 0
    unowned_uses: int = 0
    invalid_transitions: int = 0
    lock_wait: dict[str, float] = field(default_factory=dict)
    telemetry_lost: dict[str, int] = field(default_factory=dict)
    sessions_per_worker: int = 1
    # sessions_per_worker = "auto": the autoscaler's bounds, peak, changes and target over time (s since start)
    concurrency: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def lines(self) -> list[str]:
        o = self.outcomes
        shape = f"{self.workers} worker(s)" + (" x auto sessions" if self.concurrency is not None
                                               else f" x {self.sessions_per_worker} sessions"
                                               if self.sessions_per_worker > 1 else "")
        out = [f"run {self.run_id}: {self.status} ({self.mode}, {shape}) in {self.elapsed_s:.1f}s",
               f"  jobs: {o.get('passed', 0)} passed, {o.get('failed', 0)} failed, {o.get('pending', 0)} pending;"
               f" {self.retries} retries",
               f"  throughput: {self.throughput:.2f} jobs/s aggregate"]
        out += self.concurrency_lines()
        for name, w in sorted(self.per_worker.items()):
            out.append(f"    {name}: {w['jobs']:.0f} jobs, {w.get('jobs_per_s', 0.0):.2f} jobs/s")
        for flow, st in sorted(self.per_flow.items()):
            out.append(f"  {flow}: n={st['n']:.0f} p50={st['p50']:.0f}ms p95={st['p95']:.0f}ms p99={st['p99']:.0f}ms")
        out.append(f"  contention: lock wait n={self.lock_wait.get('count', 0):.0f} "
                   f"p99={self.lock_wait.get('p99_ms', 0.0):.1f}ms max={self.lock_wait.get('max_ms', 0.0):.1f}ms; "
                   f"restarts={self.restarts} lost attempts={self.lost_attempts} reclaimed slots={self.reclaimed_slots}")
        out.append(f"  safety: unowned session uses={self.unowned_uses} invalid transitions={self.invalid_transitions} "
                   f"duplicate outcomes refused={self.duplicates}")
        lost = sum(self.telemetry_lost.values())
        out.append("  telemetry: no records lost" if not lost else
                   "  telemetry: records lost per stream: "
                   + ", ".join(f"{k}={v}" for k, v in self.telemetry_lost.items() if v))
        return out


    def concurrency_lines(self, shown: int = 12) -> list[str]:
        """Autoscaled runs: the target's range and how it moved (the first ``shown`` changes, then the last)."""
        c = self.concurrency
        if c is None:
            return []
        steps = [f"{at:.0f}s:{t}" for at, t in c["timeline"]]
        if len(steps) > shown:
            steps = steps[:shown - 1] + [f"... {len(steps) - shown} more", steps[-1]]
        out = [f"  concurrency: auto {c['min']}..{c['max']} sessions, peak {c['peak']}, final {c['final']}, "
               f"{len(c['changes'])} change(s); over time: {' '.join(steps) or '-'}"]
        downs = [ch for ch in c["changes"] if str(ch["reason"]).startswith("down")]
        if downs:
            out.append(f"    last step down at {downs[-1]['at']:.0f}s: {downs[-1]['reason']}")
        return out


def flow_stats(reports: Iterable[JobReport]) -> dict[str, dict[str, float]]:
    """p50/p95/p99 of job duration per flow, from bounded histograms."""
    by_flow: dict[str, Histogram] = {}
    for r in reports:
        by_flow.setdefault(r.flow, Histogram()).record(r.duration_ms)
    return {flow: {"n": h.count, "p50": h.percentile(50), "p95": h.percentile(95), "p99": h.percentile(99)}
            for flow, h in by_flow.items()}


__all__ = ["RunSummary", "flow_stats", "percentile"]
