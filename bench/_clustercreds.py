"""``python -m bench cluster-credentials``: N actors × K credentials on a local multi-node Ray cluster.

Issue 16's acceptance: 8 actors, 3 credentials, 3 nodes, 60 s — no
credential ever held by two actors at once, and lease waits bounded.  The
run is the real engine on the Ray backend against the fixture site, every
job carrying one of the credentials, handed out with no credential affinity
(:class:`ContendedScheduler`) so that every idle actor competes for the
credentials' leases; the figures are read back from the run directory, not
assumed:

* **concurrent holders** per credential, from the coordinator's grant log
  (``lease_span`` audit records, written at the run's end on the
  coordinator's one clock) — a sweep over the grant/end instants; and, as a
  second witness, from the workers' own ``lock_acquired`` /
  ``lock_released`` audit records (wall clock; one host here);
* **lease waits**: the coordinator's first-ask-to-grant time of every
  credential grant (p50 / p95 / max), and the workers' measured wait (round
  trips and back-off included).

The test (``tests/engine/execution/test_cluster.py``) runs the same
:func:`analyse` on a short run.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.cli.console import Console

SLOW_FLOW = {"title": "credential-hold", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/slow?ms=${ms}", "timeout": 20000},
    {"type": "waitForExpression", "expression": "document.title === 'Drover slow'"},
]}


@dataclass(frozen=True, slots=True)
class WaitFigures:
    n: int
    p50_s: float
    p95_s: float
    max_s: float

    @classmethod
    def of(cls, values: list[float]) -> "WaitFigures":
        v = sorted(values)
        if not v:
            return cls(0, 0.0, 0.0, 0.0)
        rank = lambda q: v[min(len(v) - 1, max(0, math.ceil(q / 100 * len(v)) - 1))]  # noqa: E731 - nearest rank
        return cls(len(v), rank(50), rank(95), v[-1])


@dataclass(frozen=True, slots=True)
class CredentialFigures:
    """What one credential run showed; ``max_holders`` per credential must be 1 everywhere."""

    grants: dict[str, int]                 # credential -> grants in the coordinator's log
    max_holders: dict[str, int]            # credential -> most holders at one instant (coordinator's log)
    max_users: dict[str, int]              # credential -> most workers between acquired and released (audit)
    open_at_end: int                       # grants never released nor reclaimed (should be 0)
    coordinator_wait: WaitFigures          # first ask -> grant, coordinator clock
    worker_wait: WaitFigures               # as the worker measured it (round trips and back-off included)
    holders: int                           # distinct actor incarnations that held a credential

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _records(run_dir: Path, stream: str) -> list[dict[str, Any]]:
    path = run_dir / f"{stream}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of [start, end) intervals open at one instant (an end before a start at a tie)."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    most = now = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


def analyse(run_dir: Path) -> CredentialFigures:
    audit = _records(Path(run_dir), "audit")
    spans = [r for r in audit if r.get("event") == "lease_span" and str(r.get("resource", "")).startswith("cred:")]
    if not spans:
        raise RuntimeError(f"{run_dir}/audit.jsonl has no credential lease_span records: not a Ray run, or it "
                           "did not close cleanly")
    end_of_log = max(r["ended_s"] if r["ended_s"] is not None else r["granted_s"] for r in spans)
    by_cred: dict[str, list[tuple[float, float]]] = {}
    for r in spans:
        ended = r["ended_s"] if r["ended_s"] is not None else end_of_log + 1.0
        by_cred.setdefault(r["resource"][len("cred:"):], []).append((r["granted_s"], ended))
    users: dict[str, list[tuple[float, float]]] = {}
    opened: dict[tuple[str, str], float] = {}
    for r in sorted((r for r in audit if r.get("event") in ("lock_acquired", "lock_released")),
                    key=lambda r: r["ts"]):
        key = (r.get("scope"), r.get("worker"))
        ts = float(r["ts"])
        if r["event"] == "lock_acquired":
            opened[key] = ts
        elif key in opened:
            users.setdefault(str(key[0]), []).append((opened.pop(key), ts))
    worker_waits = [float(r["waited_s"]) for r in audit if r.get("event") == "lock_acquired" and "waited_s" in r]
    return CredentialFigures(
        grants={c: len(s) for c, s in sorted(by_cred.items())},
        max_holders={c: _most_at_once(s) for c, s in sorted(by_cred.items())},
        max_users={c: _most_at_once(s) for c, s in sorted(users.items())},
        open_at_end=sum(1 for r in spans if r["ended_s"] is None),
        coordinator_wait=WaitFigures.of([float(r["waited_s"]) for r in spans]),
        worker_wait=WaitFigures.of(worker_waits),
        holders=len({r["holder"] for r in spans}))


def write_batch(folder: Path, base_url: str, *, jobs: int, credentials: int, hold_ms: int) -> Path:
    """A batch whose jobs cycle over ``credentials`` credential scopes (locks only: the flow uses no secret)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hold.json").write_text(json.dumps(SLOW_FLOW))
    batch = folder / "batch.jsonl"
    with batch.open("w") as fh:
        for i in range(jobs):
            fh.write(json.dumps({"id": f"job-{i:03d}", "flow": "hold.json", "retries": 1,
                                 "credential": f"fixture/c{i % credentials}",
                                 "vars": {"BASE_URL": base_url, "ms": str(hold_ms)}}) + "\n")
    return batch


class ContendedScheduler:
    """Head of the queue to whichever worker is idle, with no credential affinity, until ``deadline``.

    The engine's own scheduler keeps a credential on the worker that has
    it open and lets other workers wait rather than queue on its lock, so
    leases are hardly ever contended in a normal run.  This one makes every
    idle actor ask for the next job's credential at once — the lease
    coordinator, not the scheduler, has to keep them apart.
    """

    def __init__(self, job_ids: list[str], duration_s: float | None = None) -> None:
        self._queue = collections.deque(job_ids)
        self.duration_s = duration_s
        self.deadline: float | None = None  # from the first job handed out: actor start-up is not the duration

    def assign(self, worker: Any, others: Any) -> Any:
        from engine.execution.scheduling import STOP, Action, Decision  # noqa: PLC0415

        if self.deadline is None and self.duration_s:
            self.deadline = time.monotonic() + self.duration_s
        if not self._queue or (self.deadline is not None and time.monotonic() >= self.deadline):
            return STOP
        return Decision(Action.JOB, self._queue.popleft())

    def requeue(self, job_id: str) -> None:
        self._queue.appendleft(job_id)

    def __len__(self) -> int:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return 0
        return len(self._queue)


@dataclass(frozen=True, slots=True)
class ContendedRun:
    run_id: str
    run_dir: Path
    store_path: str
    elapsed_s: float
    outcomes: dict[str, int]  # passed / failed / pending (pending: not started by the deadline)
    unowned_uses: int
    duplicates: int


def contended_run(base_url: str, work: Path, *, actors: int, credentials: int, jobs: int,
                  duration_s: float | None = None, hold_ms: int = 300, lease_ttl: float = 10.0) -> ContendedRun:
    """``jobs`` credential jobs on ``actors`` Ray actors (Ray already initialised), contended (see
    :class:`ContendedScheduler`); with ``duration_s`` no job starts later than that after the first."""
    from coordination.telemetry_context import bind  # noqa: PLC0415
    from engine.config import Settings  # noqa: PLC0415
    from engine.execution.runs import RunRequest, build_supervisor, prepare  # noqa: PLC0415
    from engine.records import streams  # noqa: PLC0415
    from engine.records.store import ResultsStore  # noqa: PLC0415

    batch = write_batch(work, base_url, jobs=jobs, credentials=credentials, hold_ms=hold_ms)
    settings = Settings(workers=actors, state_dir=str(work / "state"), backend="ray", lease_ttl=lease_ttl)
    prepared = prepare(RunRequest(str(batch), settings))
    sinks = streams.install(prepared.run_dir)
    t0 = time.monotonic()
    try:
        with bind(run_id=prepared.run_id, correlation_id=prepared.run_id, worker="supervisor"):
            sup = build_supervisor(settings, prepared, None,
                                   scheduler=ContendedScheduler(list(prepared.job_ids), duration_s))
            out = sup.run()
    finally:
        sinks.close()
        prepared.release()
    elapsed = time.monotonic() - t0
    with ResultsStore(prepared.store_path) as store:
        counts = store.counts(prepared.run_id)
    return ContendedRun(prepared.run_id, prepared.run_dir, prepared.store_path, elapsed,
                        {k: counts[k] for k in ("passed", "failed", "pending")},
                        out.table_totals.unowned_uses, out.duplicates)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--actors", type=int, default=8, help="Ray actors (workers), default 8")
    p.add_argument("--credentials", type=int, default=3, help="credentials the jobs share, default 3")
    p.add_argument("--nodes", type=int, default=3, help="nodes of the local Ray cluster, default 3")
    p.add_argument("--duration", type=float, default=60.0, help="seconds during which jobs start, default 60")
    p.add_argument("--hold-ms", type=int, default=300, help="how long each job holds its credential (ms)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")


def cluster_credentials_command(args: argparse.Namespace, console: Console) -> int:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
    os.environ.setdefault("RAY_kill_child_processes_on_worker_exit", "false")  # as the backend sets it
    import ray  # noqa: PLC0415 - optional
    from ray.cluster_utils import Cluster  # noqa: PLC0415

    from bench._run import UsageError  # noqa: PLC0415
    from bench._site import SiteProcess  # noqa: PLC0415

    if min(args.actors, args.credentials, args.nodes) < 1 or args.duration <= 0:
        raise UsageError("--actors, --credentials, --nodes must be >= 1 and --duration > 0")
    t0 = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(args.nodes - 1):
            cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False, include_dashboard=False)
        cluster.wait_for_nodes()
        console.line(f"cluster of {args.nodes} nodes up in {time.monotonic() - t0:.1f} s")
        with SiteProcess() as site, tempfile.TemporaryDirectory(prefix="drover-bench-creds-") as tmp:
            # enough jobs to keep every credential busy for the whole duration; the deadline stops the rest
            jobs = int(args.duration * args.credentials / (args.hold_ms / 1000.0)) + args.actors
            run = contended_run(site.base_url, Path(tmp), actors=args.actors, credentials=args.credentials,
                                jobs=jobs, duration_s=args.duration, hold_ms=args.hold_ms)
            figures = analyse(run.run_dir)
    finally:
        ray.shutdown()
        cluster.shutdown()
    cw, ww = figures.coordinator_wait, figures.worker_wait
    console.line(f"{args.actors} actors x {args.credentials} credentials on {args.nodes} nodes, "
                 f"{args.duration:.0f} s ({run.elapsed_s:.1f} s with start-up and drain): "
                 f"{run.outcomes['passed']} passed, "
                 f"{run.outcomes['failed']} failed, {run.outcomes['pending']} not started by the deadline, "
                 f"{figures.holders} actor incarnations held a credential")
    console.line(f"grants per credential: {figures.grants}")
    console.line(f"max concurrent holders (coordinator grant log): {figures.max_holders}; "
                 f"(workers' audit spans): {figures.max_users}; grants open at the end: {figures.open_at_end}")
    console.line(f"lease wait (coordinator, first ask -> grant): n={cw.n} p50={cw.p50_s:.3f} s "
                 f"p95={cw.p95_s:.3f} s max={cw.max_s:.3f} s")
    console.line(f"lease wait (worker, round trips included):   n={ww.n} p50={ww.p50_s:.3f} s "
                 f"p95={ww.p95_s:.3f} s max={ww.max_s:.3f} s")
    console.line(f"safety: unowned uses={run.unowned_uses} duplicates={run.duplicates}")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures.to_json(), "outcomes": run.outcomes},
                                              indent=2))
    double = any(v > 1 for v in list(figures.max_holders.values()) + list(figures.max_users.values()))
    return 1 if double or run.duplicates or run.unowned_uses or run.outcomes["failed"] else 0


__all__ = ["CredentialFigures", "WaitFigures", "ContendedScheduler", "ContendedRun", "analyse", "contended_run",
           "write_batch", "add_arguments", "cluster_credentials_command"]
