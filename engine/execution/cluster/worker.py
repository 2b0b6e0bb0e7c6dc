"""A cluster worker: one Ray actor, one Chromium on its node, jobs run exactly as a forked worker runs them.

Same executor, same step chain, same artifacts (built by
:mod:`engine.execution.assembly`); what differs is how single-writer
coordination and recording reach the driver:

* **leases instead of shared memory**: the session slot and credential
  locks are leases from the :class:`~.coordinator.Coordinator`, renewed by
  a heartbeat thread every ``ttl / 3``; before every CDP send the guard
  checks, on this node's own monotonic clock, that every lease it holds is
  still inside ``0.8 × ttl`` of the renewal that granted it — a paused or
  cut-off worker stops sending before the coordinator can have given its
  lease to anyone else;
* **store writes go to the coordinator** (:class:`CoordinatorStore`), which
  checks the lease's epoch against the store's fence in the same call;
* **log streams are shipped**: the worker writes its four streams to a
  private folder on its node and returns the new lines with each job's
  report; the driver appends them to the run directory, so ``trace``
  shows one timeline across nodes.  Failure artifacts are shipped the same
  way unless the run directory is on a filesystem the node shares with the
  driver (a marker file tells).

Credential profiles live on the node's disk, per credential, node and
worker index (``profiles/<credential>/<node>-w<N>``): a worker replaced on
another node starts that credential in a fresh profile (the flow logs in
again); the scheduler keeps a credential on the worker that has it open.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from coordination.errors import LockTimeout
from coordination.leases import Grant, LeaseLost
from coordination.telemetry_context import STREAMS, bind, stream_logger
from engine.config import Settings
from engine.errors import ResultsStoreError
from engine.execution import assembly
from engine.execution.executor import Coordination
from engine.records import rundir
from engine.records import streams as telemetry_streams
from engine.records.batch import Batch
from engine.records.store import Lease
from navigation.credentials import CredentialStore

ops = stream_logger("operational", __name__)
audit = stream_logger("audit", __name__)

SAFETY = 0.8  # share of the ttl a grant is trusted for on this node's clock
MAX_SHIPPED_ARTIFACT_BYTES = 20 * 1024 * 1024
SHARED_MARKER = ".drover-run-dir"


def _ray():
    import ray  # noqa: PLC0415 - optional dependency, imported where it is used

    return ray


def _unwrap(exc: BaseException) -> BaseException:
    """A store error raised in the coordinator, as itself (Ray wraps remote exceptions)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, (ResultsStoreError, LeaseLost)) else exc


class CoordinatorStore:
    """The executor's results store on a cluster worker: every write is a call to the coordinator."""

    def __init__(self, coordinator: Any, holder: str) -> None:
        self.coordinator = coordinator
        self.holder = holder

    def _call(self, method: str, *args: Any, **kw: Any) -> Any:
        ray = _ray()
        try:
            return ray.get(getattr(self.coordinator, method).remote(*args, **kw))
        except ray.exceptions.RayTaskError as exc:
            raise _unwrap(exc) from None

    def next_attempt(self, run_id: str, job_id: str) -> int:
        return self._call("next_attempt", run_id, job_id)

    def start_attempt(self, run_id: str, job_id: str, attempt: int, worker: str, epoch: int = 0, *,
                      lease: Lease | None = None) -> None:
        assert lease is not None, "a cluster worker always writes under a lease"
        self._call("start_attempt", run_id, job_id, attempt, worker, lease, self.holder)

    def finish_attempt(self, run_id: str, job_id: str, attempt: int, lease: Lease, **kw: Any) -> None:
        self._call("finish_attempt", run_id, job_id, attempt, lease, self.holder, **kw)

    def close(self) -> None:
        return


class LeaseCoordination(Coordination):
    """Session slot and credential locks as coordinator leases, renewed by a heartbeat thread."""

    def __init__(self, coordinator: Any, index: int, holder: str, ttl: float, lock_timeout: float) -> None:
        super().__init__()
        self.coordinator = coordinator
        self.index = index
        self.holder = holder
        self.ttl = ttl
        self.lock_timeout = lock_timeout
        self._held: dict[str, tuple[int, float]] = {}  # resource -> (epoch, trusted until, monotonic)
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self.unowned_uses = 0
        self.lease_waits: list[float] = []

    def _acquire(self, resource: str, timeout: float) -> tuple[Grant, float]:
        ray = _ray()
        start = time.monotonic()
        delay = 0.02
        while True:
            sent = time.monotonic()
            grant = ray.get(self.coordinator.acquire.remote(resource, self.holder))
            if grant is not None:
                with self._lock:
                    self._held[resource] = (grant.epoch, sent + SAFETY * grant.ttl)
                    self._lost.discard(resource)
                return grant, time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise LockTimeout(f"{resource} not granted within {timeout:.0f}s", scope=resource, timeout=timeout,
                                  waited=time.monotonic() - start)
            time.sleep(delay)
            delay = min(0.5, delay * 1.5)

    def _release(self, resource: str, epoch: int) -> None:
        with self._lock:
            self._held.pop(resource, None)
        _ray().get(self.coordinator.release.remote(resource, self.holder, epoch))

    @contextlib.contextmanager
    def credential(self, scope: str | None) -> Iterator[float]:
        if scope is None:
            yield 0.0
            return
        grant, waited = self._acquire(f"cred:{scope}", self.lock_timeout)
        self.lease_waits.append(waited)
        audit.info("credential lease acquired", extra={"event": "lock_acquired", "scope": scope,
                                                       "lock_epoch": grant.epoch, "waited_s": round(waited, 6)})
        try:
            yield waited
        finally:
            self._release(grant.resource, grant.epoch)
            audit.info("credential lease released", extra={"event": "lock_released", "scope": scope})

    @contextlib.contextmanager
    def session(self) -> Iterator[Lease]:
        grant, _ = self._acquire(f"slot:{self.index}", self.lock_timeout)
        audit.info("session slot owned", extra={"event": "slot_owned", "slot": self.index, "epoch": grant.epoch})
        try:
            yield Lease(grant.resource, grant.epoch)
        finally:
            self._release(grant.resource, grant.epoch)
            audit.info("session slot released", extra={"event": "slot_released", "slot": self.index,
                                                       "epoch": grant.epoch})

    def guard(self) -> None:
        """Before every CDP command: every lease held is still trusted on this node's clock."""
        now = time.monotonic()
        with self._lock:
            for resource, (epoch, trusted_until) in self._held.items():
                if resource in self._lost or now >= trusted_until:
                    self.unowned_uses += 1
                    audit.error("unowned session use refused", extra={
                        "event": "unowned_use", "resource": resource, "epoch": epoch,
                        "late_s": round(now - trusted_until, 3)})
                    raise LeaseLost(f"{self.holder}: the lease on {resource} (epoch {epoch}) has lapsed",
                                    resource=resource, holder=self.holder, epoch=epoch)

    def renew_all(self) -> None:
        """The heartbeat: extend every lease held; a refused renewal marks it lost (the guard stops sends)."""
        ray = _ray()
        with self._lock:
            held = dict(self._held)
        for resource, (epoch, _) in held.items():
            sent = time.monotonic()
            try:
                grant = ray.get(self.coordinator.renew.remote(resource, self.holder, epoch), timeout=self.ttl / 3)
            except ray.exceptions.RayTaskError as exc:
                if not isinstance(_unwrap(exc), LeaseLost):
                    raise
                with self._lock:
                    self._lost.add(resource)
                ops.error("lease lost: renewal refused", extra={"event": "lease_lost", "resource": resource,
                                                                "epoch": epoch})
                continue
            except ray.exceptions.GetTimeoutError:
                ops.warning("lease renewal timed out; the guard stops sends if it lapses",
                            extra={"event": "lease_renew_timeout", "resource": resource})
                continue
            with self._lock:
                if resource in self._held and self._held[resource][0] == grant.epoch:
                    self._held[resource] = (grant.epoch, sent + SAFETY * grant.ttl)


class ClusterWorker:
    """The body of the Ray actor (``ray.remote`` is applied by the backend)."""

    def __init__(self, index: int, run_id: str, run_dir: str, state_dir: str, settings: Settings, seed: int,
                 credentials_path: str | None, batch: Batch, coordinator: Any, incarnation: str) -> None:
        ray = _ray()
        self.index = index
        self.name = f"w{index}"
        self.run_id = run_id
        self.run_dir = Path(run_dir)
        self.node = ray.get_runtime_context().get_node_id()[:12]
        self.holder = f"{self.name}#{incarnation}"
        self.shared_fs = (self.run_dir / SHARED_MARKER).exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)  # the same path on every node: artifact names match
        self.private = Path(tempfile.mkdtemp(prefix=f"drover-{run_id}-{self.name}-"))
        self._offsets: dict[str, int] = {}
        self.sinks = telemetry_streams.install(self.private)
        telemetry_streams.reset_local_losses()
        self.coord = LeaseCoordination(coordinator, index, self.holder, settings.lease_ttl, settings.lock_timeout)
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, daemon=True, name="drover-lease-heartbeat").start()
        with self._bound():
            self.lifecycle = assembly.open_lifecycle(settings, cohort=self.name, seed=seed,
                                                     before_send=self.coord.guard)
            place = assembly.ExecutorPlace(run_id, self.run_dir, state_dir, batch, seed)
            self.executor = assembly.build_executor(
                settings, place, store=CoordinatorStore(coordinator, self.holder), lifecycle=self.lifecycle,
                credentials=CredentialStore.load(credentials_path or None), coordination=self.coord,
                worker_name=self.name, profile_owner=f"{self.node}-{self.name}")
            ops.info("worker started", extra={"event": "worker_started", "pid": os.getpid(), "node": self.node})
        self.batch = batch

    def _bound(self) -> Any:
        return bind(run_id=self.run_id, correlation_id=self.run_id, worker=self.name, session=f"s{self.index}")

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(0.2, self.coord.ttl / 3)):
            try:
                self.coord.renew_all()
            except Exception as exc:  # noqa: BLE001 - the heartbeat must keep running; each failure is logged
                ops.error("lease heartbeat failed", extra={"event": "heartbeat_failed", "error": repr(exc)})

    def ready(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "node": self.node, "host": os.uname().nodename}

    def run(self, job_id: str) -> tuple:
        t0 = time.monotonic()
        with self._bound():
            report = self.executor.run(self.batch.job(job_id))
        seconds = time.monotonic() - t0
        return (report, self.lifecycle.stats.forced_reconnects, seconds, telemetry_streams.local_losses(),
                self._new_lines(), self._artifacts(job_id), self.coord.unowned_uses)

    def _new_lines(self) -> dict[str, bytes]:
        out = {}
        for stream in STREAMS:
            path = rundir.stream_path(self.private, stream)
            if not path.exists():
                continue
            start = self._offsets.get(stream, 0)
            with path.open("rb") as fh:
                fh.seek(start)
                data = fh.read()
            cut = data.rfind(b"\n") + 1  # whole lines only; the rest next time
            if cut:
                out[stream] = data[:cut]
                self._offsets[stream] = start + cut
        return out

    def _artifacts(self, job_id: str) -> dict[str, bytes]:
        if self.shared_fs:
            return {}
        root = self.run_dir / "artifacts" / job_id
        out, total = {}, 0
        for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []:
            size = path.stat().st_size
            if total + size > MAX_SHIPPED_ARTIFACT_BYTES:
                ops.warning("artifact not shipped: over the per-job cap", extra={
                    "event": "artifact_not_shipped", "path": str(path), "bytes": size})
                continue
            out[str(path.relative_to(self.run_dir))] = path.read_bytes()
            total += size
        return out

    def stop(self) -> dict[str, bytes]:
        """Close the browser; return the last log lines."""
        self._stop.set()
        with self._bound():
            self.lifecycle.close()
            ops.info("worker stopped", extra={"event": "worker_stopped", "pid": os.getpid()})
        lines = self._new_lines()
        self.sinks.close()
        return lines


__all__ = ["ClusterWorker", "CoordinatorStore", "LeaseCoordination"]
