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
* **store writes go to the coordinator** (:class:`~.store.CoordinatorStore`), which
  checks the lease's epoch against the store's fence in the same call;
* **log streams are shipped**: the worker writes its four streams to a
  private folder on its node and returns the new lines with each job's
  report; the driver appends them to the run directory, so ``trace``
  shows one timeline across nodes.  Failure artifacts are shipped the same
  way unless the run directory is on a filesystem the node shares with the
  driver (a marker file tells).

``--plugin`` modules: actors are not forked from the driver, so the driver
passes the active module names, the ``--strict`` flag and the folder each
module was imported from (:class:`PluginSpec`); the actor puts those
folders on its ``sys.path`` when they exist on its node and calls
:func:`navigation.steps.plugins.activate` before it builds its registry.

Credential profiles live on the node's disk, per credential, node and
worker index (``profiles/<credential>/<node>-w<N>``): a worker replaced on
another node starts that credential in a fresh profile (the flow logs in
again); the scheduler keeps a credential on the worker that has it open.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from coordination import process_age
from coordination.errors import LockTimeout
from coordination.leases import Grant, LeaseLost
from coordination.telemetry_context import STREAMS, bind, stream_logger
from engine.config import Settings
from engine.errors import WorkerWrittenOff
from engine.execution import assembly
from engine.execution.cluster.store import CoordinatorStore, RoundTrips, import_ray, unwrap
from engine.execution.executor import Coordination
from engine.records import rundir
from engine.records import streams as telemetry_streams
from engine.records.batch import Batch
from engine.records.store import Lease
from navigation.credentials import CredentialStore
from navigation.steps import plugins

ops = stream_logger("operational", __name__)
audit = stream_logger("audit", __name__)
perf = stream_logger("performance", __name__)

SAFETY = 0.8  # share of the ttl a grant is trusted for on this node's clock
MAX_SHIPPED_ARTIFACT_BYTES = 20 * 1024 * 1024
SHARED_MARKER = ".drover-run-dir"
IMPORTED_AT = time.monotonic()  # when this process imported the actor's module
# Imported by Ray's worker preload (``--worker-preload-modules``, which default_worker.py imports before it takes
# work: see instance.start_local_instance), not by the actor's creation on the run's clock.
PRELOADED = any(arg.startswith("--worker-preload-modules=") and __name__ in arg.split("=", 1)[1].split(",")
                for arg in sys.argv)


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """The driver's ``--plugin`` state, for an actor to activate: module names, ``--strict``, import roots."""

    modules: tuple[str, ...] = ()
    strict: bool = False
    roots: tuple[str, ...] = ()  # the sys.path folder each module was imported from on the driver

    @classmethod
    def of_this_process(cls) -> "PluginSpec":
        roots = []
        for name in plugins.active_plugins():
            module = sys.modules.get(name)
            path = getattr(module, "__file__", None)
            if not path:
                continue
            up = name.count(".") + (1 if os.path.basename(path) == "__init__.py" else 0)
            root = Path(path).resolve().parents[up]
            if str(root) not in roots:
                roots.append(str(root))
        return cls(plugins.active_plugins(), plugins.active_strict(), tuple(roots))

    def activate(self) -> None:
        """In the actor: the driver's import roots (where they exist on this node), then the modules."""
        for root in self.roots:
            if root not in sys.path and os.path.isdir(root):
                sys.path.append(root)
        plugins.activate(self.modules, strict=self.strict)


class LeaseCoordination(Coordination):
    """Session slot and credential locks as coordinator leases, renewed by a heartbeat thread."""

    def __init__(self, coordinator: Any, index: int, holder: str, ttl: float, lock_timeout: float,
                 trips: RoundTrips | None = None) -> None:
        super().__init__()
        self.trips = trips or RoundTrips()
        self.coordinator = coordinator
        self.index = index
        self.holder = holder
        self.ttl = ttl
        self.lock_timeout = lock_timeout
        self._held: dict[str, tuple[int, float]] = {}  # resource -> (epoch, trusted until, monotonic)
        self._lost: set[str] = set()
        self._written_off = False  # its slot was reclaimed: it takes nothing up again (see session)
        self._stopped: set[tuple[str, int]] = set()  # (resource, epoch) the guard has refused: the actor knows
        self._lock = threading.Lock()
        self.unowned_uses = 0  # sends after the actor knew its lease was gone (the guard makes them impossible)
        self.lapsed_stops = 0  # sends the guard refused because a lease lapsed or was lost: fencing at work
        self.lease_waits: list[float] = []

    def _ask(self, resource: str) -> Grant | None:
        """One ask for ``resource``; a grant is trusted from when it was asked for."""
        sent = time.monotonic()
        grant = self.trips.call(lambda: self.coordinator.acquire.remote(resource, self.holder))
        if grant is not None:
            with self._lock:
                self._held[resource] = (grant.epoch, sent + SAFETY * grant.ttl)
                self._lost.discard(resource)
        return grant

    def _acquire(self, resource: str, timeout: float) -> tuple[Grant, float]:
        start = time.monotonic()
        delay = 0.02
        while True:
            grant = self._ask(resource)
            if grant is not None:
                return grant, time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise LockTimeout(f"{resource} not granted within {timeout:.0f}s", scope=resource, timeout=timeout,
                                  waited=time.monotonic() - start)
            time.sleep(delay)
            delay = min(0.5, delay * 1.5)

    def _release(self, resource: str, epoch: int) -> None:
        with self._lock:
            self._held.pop(resource, None)
        self.trips.call(lambda: self.coordinator.release.remote(resource, self.holder, epoch))

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
            # Recorded before the release is sent: the worker has stopped using the credential by now, and a
            # record stamped after the round trip would overlap the next holder's (a false double use).
            audit.info("credential lease released", extra={"event": "lock_released", "scope": scope})
            self._release(grant.resource, grant.epoch)

    @contextlib.contextmanager
    def session(self) -> Iterator[Lease]:
        """The worker's session slot lease, kept from job to job (renewed by the heartbeat) until :meth:`close`.

        The slot is this worker's for as long as it lives, so asking for it
        and giving it back around every job cost two coordinator round trips
        per job and bought nothing: the fence is raised by a reclaim, not by
        a new grant per attempt.  A lease that lapsed on this node's clock is
        asked for again: the coordinator gives the same epoch back while it
        is still ours.  One it reclaimed (a refused renewal, or a new epoch
        on asking again) is never taken up again: the driver wrote this
        worker off with that reclaim and re-queued its job, so whatever it
        would start now would race the job's new holder.
        """
        yield self._slot()

    def _slot(self) -> Lease:
        resource = f"slot:{self.index}"
        with self._lock:
            held = self._held.get(resource)
            if self._written_off or (held is not None and resource in self._lost):
                self._written_off = True
                raise LeaseLost(f"{self.holder}: {resource} was reclaimed: written off",
                                resource=resource, holder=self.holder, epoch=held[0] if held else None)
            if held is not None and time.monotonic() < held[1]:
                return Lease(resource, held[0])
        if held is not None:
            # Ours once, lapsed on this clock: one ask, no waiting.  Held by another (our replacement) means it
            # was reclaimed; waiting in line for it would keep a job the driver sent ahead to this actor (see
            # the backend's queue) — and the credential lease it took first — until the lock timeout.
            grant = self._ask(resource)
            if grant is None:
                with self._lock:
                    self._written_off = True
                raise LeaseLost(f"{self.holder}: {resource} is held by another: written off",
                                resource=resource, holder=self.holder, epoch=held[0])
        else:
            grant, _ = self._acquire(resource, self.lock_timeout)
        if held is not None and held[0] != grant.epoch:
            with self._lock:
                self._written_off = True
            self._release(resource, grant.epoch)
            raise LeaseLost(f"{self.holder}: {resource} was reclaimed (epoch {held[0]} -> {grant.epoch}): "
                            "written off", resource=resource, holder=self.holder, epoch=held[0])
        if held is None:
            audit.info("session slot owned", extra={"event": "slot_owned", "slot": self.index, "epoch": grant.epoch})
        return Lease(grant.resource, grant.epoch)

    def close(self) -> None:
        """Give the session slot back (the worker stops)."""
        resource = f"slot:{self.index}"
        with self._lock:
            held = self._held.get(resource)
        if held is not None:
            self._release(resource, held[0])
            audit.info("session slot released", extra={"event": "slot_released", "slot": self.index,
                                                       "epoch": held[0]})

    def guard(self) -> None:
        """Before every CDP command: every lease held is still trusted on this node's clock.

        A refusal is the guard doing its job, not an unowned use: the
        command is not sent.  A lease can lapse while its actor is
        legitimately busy (paused, starved, its renewals slow), and the
        first send after that is where the actor finds out — counted as a
        *lapsed stop* and logged once per lease.  Nothing is ever sent on a
        lapsed lease, so ``unowned_uses`` stays 0 on a cluster worker; the
        stale writes a lapsed holder still tries are refused and counted by
        the store's fence.
        """
        now = time.monotonic()
        with self._lock:
            for resource, (epoch, trusted_until) in self._held.items():
                if resource in self._lost or now >= trusted_until:
                    self.lapsed_stops += 1
                    if (resource, epoch) not in self._stopped:
                        self._stopped.add((resource, epoch))
                        audit.warning("lease lapsed: sends stopped", extra={
                            "event": "lease_lapsed_stop", "resource": resource, "epoch": epoch,
                            "renewal_refused": resource in self._lost, "late_s": round(now - trusted_until, 3)})
                    raise LeaseLost(f"{self.holder}: the lease on {resource} (epoch {epoch}) has lapsed",
                                    resource=resource, holder=self.holder, epoch=epoch)

    def renew_all(self) -> None:
        """The heartbeat: extend every lease held; a refused renewal marks it lost (the guard stops sends)."""
        ray = import_ray()
        with self._lock:
            held = dict(self._held)
        for resource, (epoch, _) in held.items():
            sent = time.monotonic()
            try:
                grant = ray.get(self.coordinator.renew.remote(resource, self.holder, epoch), timeout=self.ttl / 3)
            except ray.exceptions.RayTaskError as exc:
                if not isinstance(unwrap(exc), LeaseLost):
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
                 credentials_path: str | None, batch: Batch, coordinator: Any, incarnation: str,
                 plugin_spec: PluginSpec | None = None) -> None:
        ray = import_ray()
        (plugin_spec or PluginSpec()).activate()  # before anything builds a registry
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
        self.trips = RoundTrips()
        self.coord = LeaseCoordination(coordinator, index, self.holder, settings.lease_ttl, settings.lock_timeout,
                                       self.trips)
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, daemon=True, name="drover-lease-heartbeat").start()
        with self._bound():
            self.lifecycle = assembly.open_lifecycle(settings, cohort=self.name, seed=seed,
                                                     before_send=self.coord.guard, index=index)
            place = assembly.ExecutorPlace(run_id, self.run_dir, state_dir, batch, seed)
            self.store = CoordinatorStore(coordinator, self.holder, self.trips)
            self.executor = assembly.build_executor(
                settings, place, store=self.store,
                lifecycle=self.lifecycle,
                credentials=CredentialStore.load(credentials_path or None), coordination=self.coord,
                worker_name=self.name, profile_owner=f"{self.node}-{self.name}")
            ops.info("worker started", extra={"event": "worker_started", "pid": os.getpid(), "node": self.node})
        self.batch = batch
        self._failed: str | None = None  # what an earlier job raised: this actor runs nothing more (see run)

    def _bound(self) -> Any:
        return bind(run_id=self.run_id, correlation_id=self.run_id, worker=self.name, session=f"s{self.index}")

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(0.2, self.coord.ttl / 3)):
            try:
                self.coord.renew_all()
            except Exception as exc:  # noqa: BLE001 - the heartbeat must keep running; each failure is logged
                ops.error("lease heartbeat failed", extra={"event": "heartbeat_failed", "error": repr(exc)})

    def ready(self) -> dict[str, Any]:
        """Warm start, as a forked worker does before its first "ready": the browser, and the first job's
        context and page, are up before the driver sends a job (a failure is logged; the first job starts
        the browser).  Measured without it: a Ray worker's first job began 0.5-0.9 s after a local one's."""
        self._ready_at = time.monotonic()
        with self._bound():
            try:
                self.executor.warm()
            except (LockTimeout, LeaseLost) as exc:  # the slot is not ours yet (or any more): the first job asks
                ops.warning("warm start skipped: no session slot lease", extra={
                    "event": "warm_start_failed", "error": str(exc)})
        return {"pid": os.getpid(), "node": self.node, "host": os.uname().nodename,
                "process_age_s": round(process_age(), 3), "module_age_s": round(time.monotonic() - IMPORTED_AT, 3),
                "preloaded": PRELOADED,
                "warm_s": round(time.monotonic() - self._ready_at, 3)}

    def run(self, job_id: str, first_attempt: int | None = None) -> tuple:
        """Run one job; raise what it raised.  After a job that raised, refuse every later one.

        The driver keeps jobs queued on the actor (``ray_queue_depth``), and
        a job that raised is a dead worker to it: it re-queues every job of
        this actor's queue and kills the actor.  Until the kill lands, this
        actor would otherwise start the next queued job, which by then also
        runs elsewhere.
        """
        if self._failed is not None:
            raise WorkerWrittenOff(f"{self.holder}: job {job_id} not run: an earlier job raised ({self._failed})")
        t0 = time.monotonic()
        n0, s0 = self.trips.n, self.trips.seconds
        self.store.expect(job_id, first_attempt)
        with self._bound():
            try:
                report = self.executor.run(self.batch.job(job_id))
                self.store.settle()  # every attempt ends in a finish, which takes its start; this is the check
                final = self.store.take_final(job_id)
            except BaseException as exc:
                self._failed = f"{type(exc).__name__} in job {job_id}"
                raise
            finally:
                self.store.expect(job_id, None)
                self.store.drop_unsettled()
            seconds = time.monotonic() - t0
            perf.info("coordinator round trips of a job", extra={
                "event": "cluster_round_trips", "job_id": job_id, "round_trips": self.trips.n - n0,
                "round_trip_ms": round((self.trips.seconds - s0) * 1000, 3), "job_ms": round(seconds * 1000, 3)})
        return (report, self.lifecycle.stats.forced_reconnects, seconds, telemetry_streams.local_losses(),
                self._new_lines(), self._artifacts(job_id),
                {"unowned_uses": self.coord.unowned_uses, "lapsed_stops": self.coord.lapsed_stops}, final)

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
            self.coord.close()
            ops.info("worker stopped", extra={"event": "worker_stopped", "pid": os.getpid()})
        lines = self._new_lines()
        self.sinks.close()
        try:
            shutil.rmtree(self.private)  # its lines are shipped: the private copy of the streams goes
        except OSError as exc:
            ops.warning("worker's private log folder not removed", extra={
                "event": "private_dir_left", "path": str(self.private), "error": str(exc)})
        return lines


__all__ = ["ClusterWorker", "CoordinatorStore", "LeaseCoordination", "PluginSpec", "RoundTrips"]
